"""Routes: /health for the pipeline's checks, /hello/{name} for people."""
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request):
    return JSONResponse({"status": "ok", "revision": os.environ.get("REVISION", "dev")})


async def hello(request):
    return JSONResponse({"message": f"hello, {request.path_params['name']}"})


app = Starlette(routes=[Route("/health", health), Route("/hello/{name}", hello)])
