"""The HTTP API (FastAPI): ``create_app(settings)`` builds it; ``recsmith serve`` runs it under uvicorn."""

from recsmith.api.app import create_app

__all__ = ["create_app"]
