"""Control-plane operations on models: recipes, solutions, solution versions and their metrics, campaigns, batch
inference jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recsmith.api.personalize.protocol import Call

OPERATIONS: dict[str, Callable[[Call], dict[str, Any]]] = {}
