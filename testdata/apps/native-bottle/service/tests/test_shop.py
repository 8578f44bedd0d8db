import io
import json
from wsgiref.util import setup_testing_defaults

from shop import app


def call(path):
    env = {"PATH_INFO": path, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(env)
    status = []
    body = b"".join(app(env, lambda s, h, exc=None: status.append(s)))
    return status[0], body


def test_ping():
    status, body = call("/ping")
    assert status.startswith("200")
    assert json.loads(body) == {"pong": True}


def test_missing_item():
    status, _ = call("/items/9")
    assert status.startswith("404")
