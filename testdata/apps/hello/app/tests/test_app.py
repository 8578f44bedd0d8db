from webapp import create_app


def test_healthz():
    client = create_app().test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
