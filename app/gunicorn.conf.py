"""gunicorn settings for the container: `gunicorn -c gunicorn.conf.py "webapp:create_app()"`.

One worker process with threads: the notes store lives in process memory, so several worker
processes would each keep their own notes. Override with GUNICORN_* env vars if that changes.
"""
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# Logs to stdout/stderr so `docker logs` (and the awslogs/journald driver) picks them up.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
