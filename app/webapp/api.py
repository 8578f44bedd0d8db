"""The JSON API: /api/greeting and /api/notes."""
import re

from flask import Blueprint, abort, current_app, jsonify, request, url_for

from .notes import MAX_TEXT

bp = Blueprint("api", __name__, url_prefix="/api")

# Letters (any script), digits, spaces, and . ' - ; 1 to 64 characters.
NAME_RE = re.compile(r"^[^\W_](?:[\w .'-]{0,62}[^\W_])?$")


def _bad_request(message):
    response = jsonify(error="Bad Request", message=message)
    response.status_code = 400
    return response


@bp.get("/greeting")
def greeting():
    name = request.args.get("name", "world")
    if not NAME_RE.match(name):
        return _bad_request(
            "name must be 1-64 letters, digits, spaces or .'- and start and end with a letter "
            "or digit"
        )
    return jsonify(greeting=f"Hello, {name}!")


@bp.get("/notes")
def list_notes():
    return jsonify(notes=current_app.extensions["notes"].all())


@bp.post("/notes")
def create_note():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object, sent as application/json")
    unknown = sorted(set(body) - {"text"})
    if unknown:
        return _bad_request(f"unknown fields: {', '.join(unknown)}")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _bad_request("text must be a non-empty string")
    if len(text) > MAX_TEXT:
        return _bad_request(f"text must be at most {MAX_TEXT} characters")
    note = current_app.extensions["notes"].add(text.strip())
    response = jsonify(note)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_note", note_id=note["id"])
    return response


@bp.get("/notes/<int:note_id>")
def get_note(note_id):
    note = current_app.extensions["notes"].get(note_id)
    if note is None:
        abort(404, description=f"note {note_id} not found")
    return jsonify(note)
