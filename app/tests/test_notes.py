import pytest


def test_empty_list(client):
    resp = client.get("/api/notes")
    assert resp.status_code == 200
    assert resp.get_json() == {"notes": []}


def test_create_then_get_and_list(client):
    resp = client.post("/api/notes", json={"text": "  buy milk "})
    assert resp.status_code == 201
    note = resp.get_json()
    assert note["id"] == 1
    assert note["text"] == "buy milk"
    assert note["created"].endswith("+00:00")
    assert resp.headers["Location"] == "/api/notes/1"

    assert client.get("/api/notes/1").get_json() == note
    client.post("/api/notes", json={"text": "second"})
    notes = client.get("/api/notes").get_json()["notes"]
    assert [n["id"] for n in notes] == [1, 2]


def test_apps_do_not_share_notes(app):
    from webapp import create_app

    app.test_client().post("/api/notes", json={"text": "one"})
    assert create_app().test_client().get("/api/notes").get_json() == {"notes": []}


def test_missing_note_is_json_404(client):
    resp = client.get("/api/notes/42")
    assert resp.status_code == 404
    assert resp.get_json() == {"error": "Not Found", "message": "note 42 not found"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data": "not json", "content_type": "application/json"}, "JSON object"),
        ({"data": '{"text": "x"}', "content_type": "text/plain"}, "JSON object"),
        ({"json": ["a list"]}, "JSON object"),
        ({"json": {}}, "text must be"),
        ({"json": {"text": ""}}, "text must be"),
        ({"json": {"text": "   "}}, "text must be"),
        ({"json": {"text": 5}}, "text must be"),
        ({"json": {"text": "x" * 501}}, "at most 500"),
        ({"json": {"text": "x", "extra": 1}}, "unknown fields: extra"),
    ],
)
def test_invalid_bodies_are_400_json(client, kwargs, message):
    resp = client.post("/api/notes", **kwargs)
    assert resp.status_code == 400
    assert message in resp.get_json()["message"]
    assert client.get("/api/notes").get_json() == {"notes": []}


def test_oversized_body_is_json_413(client):
    resp = client.post("/api/notes", json={"text": "x" * 20000})
    assert resp.status_code == 413
    assert resp.is_json


def test_put_on_collection_is_json_405(client):
    resp = client.put("/api/notes", json={"text": "x"})
    assert resp.status_code == 405
    assert resp.get_json()["error"] == "Method Not Allowed"
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
