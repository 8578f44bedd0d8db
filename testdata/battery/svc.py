"""The battery's service: the same answer as WSGI (app) and ASGI (asgi), no framework."""
import os
import sys


def body():
    return f"ok python {sys.version.split()[0]} uid {os.getuid()}\n".encode()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body()]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body()})
