import pytest

from webapp import create_app


@pytest.fixture
def app():
    return create_app({"TESTING": True, "APP_VERSION": "1.2.3", "REVISION": "abc123"})


@pytest.fixture
def client(app):
    return app.test_client()
