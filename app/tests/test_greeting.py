import pytest


def test_default_greeting(client):
    resp = client.get("/api/greeting")
    assert resp.status_code == 200
    assert resp.get_json() == {"greeting": "Hello, world!"}


@pytest.mark.parametrize("name", ["Ada", "Jean-Luc", "O'Brien", "Zoë", "Dr. Who", "x" * 64])
def test_valid_names(client, name):
    resp = client.get("/api/greeting", query_string={"name": name})
    assert resp.status_code == 200
    assert resp.get_json() == {"greeting": f"Hello, {name}!"}


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "<script>", "a;b", "-lead", "trail ", "_x"])
def test_invalid_names_are_400_json(client, name):
    resp = client.get("/api/greeting", query_string={"name": name})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "Bad Request"
    assert "name" in body["message"]
