"""A tiny Falcon ASGI service."""
