from starlette.testclient import TestClient

from hello_api.app import app


def test_health():
    r = TestClient(app).get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_hello():
    assert TestClient(app).get("/hello/ada").json() == {"message": "hello, ada"}
