"""A tiny Starlette service."""
