from webapp import create_app


def test_healthz_reports_version_and_revision(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "version": "1.2.3", "revision": "abc123"}


def test_healthz_reads_environment(monkeypatch):
    monkeypatch.setenv("APP_VERSION", "9.9.9")
    monkeypatch.setenv("REVISION", "deadbeef")
    body = create_app().test_client().get("/healthz").get_json()
    assert body["version"] == "9.9.9"
    assert body["revision"] == "deadbeef"


def test_healthz_defaults_without_environment(monkeypatch):
    monkeypatch.delenv("APP_VERSION", raising=False)
    monkeypatch.delenv("REVISION", raising=False)
    body = create_app().test_client().get("/healthz").get_json()
    assert body == {"status": "ok", "version": "dev", "revision": "unknown"}


def test_unknown_path_is_json_404(client):
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.is_json
    assert resp.get_json()["error"] == "Not Found"


def test_wrong_method_is_json_405_with_allow(client):
    resp = client.post("/healthz")
    assert resp.status_code == 405
    assert resp.is_json
    assert "GET" in resp.headers["Allow"]
