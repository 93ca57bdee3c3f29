"""Reference Flask app for ``serve_load.py``: the shape of the original Flask design, on recsmith's trained models.

Usage::

    RECSMITH_HOME=/path/to/home \\
    RECSMITH_REFERENCE_CAMPAIGNS='{"movies/knn": "/path/to/home/artifacts/solution-version-1"}' \\
    gunicorn -w 2 -b 127.0.0.1:8766 --chdir benchmarks 'flask_reference:create_app()'

It answers the same URL and JSON shape as the recsmith service::

    POST /v1/dataset-groups/{group}/campaigns/{campaign}/recommendations
    {"user_id": "42", "num_results": 25, "exclude_seen": true, "filter": "genre", "filter_values": {"GENRE": "Drama"}}
    -> {"items": [{"item_id": ..., "score": ..., "reason": ...}], "recommendation_id": "..."}

and ``GET /ready``. Per request it does what the original design did: score *every* item for the user with
the model (``recipe.recommend`` with ``k = n_items``: dense scores and a full sort of all items), apply the
genre filter by looping over the item metadata in Python, and return the first ``num_results``. The filter
is always ``Items.GENRES IN ($GENRE)`` (categorical values split on ``|``), whatever its name. No
authentication (an ``Authorization`` header is accepted and ignored).

Configuration (environment):

``RECSMITH_REFERENCE_CAMPAIGNS``
    JSON object ``{"group/campaign": "artifact folder"}`` (the ``artifact_uri`` of a solution version).
``RECSMITH_HOME`` / ``RECSMITH_DATABASE_URL``
    The recsmith store the item metadata is read from (``Store.read_items``), as for the CLI.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np
from flask import Flask, jsonify, request

from recsmith.recipes.bundle import TrainedModel
from recsmith.settings import Settings
from recsmith.store.store import Store

CAMPAIGNS_ENV = "RECSMITH_REFERENCE_CAMPAIGNS"


class Campaign:
    """One served model with its group's item metadata."""

    def __init__(self, model: TrainedModel, metadata: dict[str, dict[str, Any]]) -> None:
        self.model = model
        self.metadata = metadata
        self.raw_ids: list[str] = [str(x) for x in model.items.ids.tolist()]
        self.popular_order = np.argsort(-model.popularity, kind="stable")

    def recommend(self, user_id: str, k: int, exclude_seen: bool, genre: str | None) -> list[dict[str, Any]]:
        """Score all items, filter in Python, take the first ``k`` of the fully sorted list."""
        model = self.model
        if user_id in model.users:
            rec = model.recipe.recommend(np.array([model.users.index(user_id)], dtype=np.int32),
                                         k=model.recipe.n_items, exclude_seen=exclude_seen)
            ranked = zip(rec.ids[0].tolist(), rec.scores[0].tolist(), strict=True)
            reason = "personalized"
        else:
            ranked = ((int(i), float(model.popularity[i])) for i in self.popular_order)
            reason = "popular"
        allowed: set[str] | None = None
        if genre is not None:
            allowed = set()
            for item_id, fields in self.metadata.items():
                if genre in str(fields.get("GENRES") or "").split("|"):
                    allowed.add(item_id)
        out: list[dict[str, Any]] = []
        for index, score in ranked:
            if index < 0:
                continue
            item_id = self.raw_ids[index]
            if allowed is not None and item_id not in allowed:
                continue
            out.append({"item_id": item_id, "score": score, "reason": reason})
            if len(out) >= k:
                break
        return out


def _load_campaigns() -> dict[tuple[str, str], Campaign]:
    raw = os.environ.get(CAMPAIGNS_ENV)
    if not raw:
        raise RuntimeError(f"set {CAMPAIGNS_ENV} to a JSON object {{\"group/campaign\": \"artifact folder\"}}")
    store = Store.from_settings(Settings())
    metadata: dict[str, dict[str, dict[str, Any]]] = {}
    campaigns: dict[tuple[str, str], Campaign] = {}
    try:
        for key, artifact in json.loads(raw).items():
            group, campaign = key.split("/", 1)
            if group not in metadata:
                metadata[group] = store.read_items(store.get_dataset_group(group).id)
            campaigns[(group, campaign)] = Campaign(TrainedModel.load(artifact), metadata[group])
    finally:
        store.close()
    return campaigns


def create_app() -> Flask:
    """The Flask app (a gunicorn ``app factory``); loads every configured campaign at start."""
    app = Flask(__name__)
    campaigns = _load_campaigns()

    @app.get("/ready")
    def ready() -> Any:
        return jsonify({"status": "ready", "campaigns": sorted("/".join(key) for key in campaigns)})

    @app.post("/v1/dataset-groups/<group>/campaigns/<campaign>/recommendations")
    def recommendations(group: str, campaign: str) -> Any:
        served = campaigns.get((group, campaign))
        if served is None:
            return jsonify({"error": f"no campaign {group}/{campaign}"}), 404
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or "user_id" not in body:
            return jsonify({"error": "the body must be a JSON object with user_id"}), 400
        genre = None
        if body.get("filter"):
            genre = str((body.get("filter_values") or {}).get("GENRE", ""))
        items = served.recommend(str(body["user_id"]), int(body.get("num_results", 25)),
                                 bool(body.get("exclude_seen", True)), genre)
        return jsonify({"items": items, "recommendation_id": uuid.uuid4().hex})

    return app
