"""Fixture service for the pipeline tests."""
import os

from flask import Flask, jsonify


def create_app():
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", revision=os.environ.get("REVISION", "unknown"))

    return app
