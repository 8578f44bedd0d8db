"""GET $HEALTH_PATH (default /healthz) -> HEALTH_STATUS with {"status", "version", "setting"};
FAIL_AFTER=N (seconds, 0: never) answers 500 from N seconds after the start on (a version that
passes its check and fails later);
exits on SIGTERM (it runs as PID 1). HEALTH_PATH and APP_SETTING come from the container's
environment (e.g. the instance's app env file), not from the image."""
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "dev")
STATUS = int(os.environ.get("HEALTH_STATUS", "200"))
HEALTH_PATH = os.environ.get("HEALTH_PATH", "/healthz")
SETTING = os.environ.get("APP_SETTING", "")
FAIL_AFTER = int(os.environ.get("FAIL_AFTER", "0"))
STARTED = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != HEALTH_PATH:
            self.send_error(404)
            return
        status = STATUS
        if FAIL_AFTER and time.monotonic() - STARTED >= FAIL_AFTER:
            status = 500
        body = json.dumps({"status": "ok" if status < 400 else "failing", "version": VERSION, "setting": SETTING}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if status >= 400:
            print(f"healthz answered {status}: version {VERSION} is broken on purpose", file=sys.stderr)

    def log_message(self, format, *args):
        pass


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    print(f"serving version {VERSION} on :8080", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
