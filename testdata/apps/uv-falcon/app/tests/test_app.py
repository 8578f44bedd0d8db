from falcon import testing

from notes_svc.app import app


def test_status():
    assert testing.TestClient(app).simulate_get("/status").json == {"ok": True}


def test_post_then_list():
    client = testing.TestClient(app)
    assert client.simulate_post("/notes", json={"text": "hi"}).status_code == 201
    assert client.simulate_get("/notes").json == {"notes": [{"text": "hi"}]}
