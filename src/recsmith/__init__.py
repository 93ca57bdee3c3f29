"""recsmith: a self-hosted recommendation engine."""

from __future__ import annotations

__version__ = "0.1.0"
