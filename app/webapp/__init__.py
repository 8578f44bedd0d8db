"""The webapp service: a small Flask app built by `create_app()`."""
import json
import os

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .api import bp as api_bp
from .notes import NoteStore


def create_app(config=None):
    """Build the app. `config` (a mapping) overrides the defaults read from the environment."""
    app = Flask(__name__)
    app.config.update(
        APP_VERSION=os.environ.get("APP_VERSION", "dev"),
        REVISION=os.environ.get("REVISION", "unknown"),
        MAX_CONTENT_LENGTH=16 * 1024,  # request bodies are small JSON documents
    )
    if config:
        app.config.update(config)

    app.extensions["notes"] = NoteStore()

    @app.get("/healthz")
    def healthz():
        return jsonify(
            status="ok",
            version=app.config["APP_VERSION"],
            revision=app.config["REVISION"],
        )

    @app.errorhandler(HTTPException)
    def http_error(err):
        """Every HTTP error (404, 405, 400, 413 ...) as JSON instead of an HTML page."""
        response = err.get_response()  # keeps the error's headers, e.g. Allow on a 405
        response.data = json.dumps({"error": err.name, "message": err.description})
        response.content_type = "application/json"
        return response

    app.register_blueprint(api_bp)
    return app
