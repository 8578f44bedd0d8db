"""GET $HEALTH_PATH (default /healthz) -> HEALTH_STATUS with {"status", "version", "setting"};
exits on SIGTERM (it runs as PID 1). HEALTH_PATH and APP_SETTING come from the container's
environment (e.g. the instance's app env file), not from the image."""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "dev")
STATUS = int(os.environ.get("HEALTH_STATUS", "200"))
HEALTH_PATH = os.environ.get("HEALTH_PATH", "/healthz")
SETTING = os.environ.get("APP_SETTING", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != HEALTH_PATH:
            self.send_error(404)
            return
        body = json.dumps({"status": "ok" if STATUS < 400 else "failing", "version": VERSION, "setting": SETTING}).encode()
        self.send_response(STATUS)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if STATUS >= 400:
            print(f"healthz answered {STATUS}: version {VERSION} is broken on purpose", file=sys.stderr)

    def log_message(self, format, *args):
        pass


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    print(f"serving version {VERSION} on :8080", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
