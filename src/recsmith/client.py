"""A typed Python client for recsmith's HTTP API.

Examples
--------
>>> from recsmith.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="rsk_...") as client:  # doctest: +SKIP
...     result = client.recommend("movies", "knn", user_id="42", num_results=10,
...                               filter="genre", filter_values={"GENRE": "Comedy"})
...     [item.item_id for item in result.items]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from recsmith.errors import ConfigError, ConflictError, NotFoundError, RecsmithError

__all__ = ["APIError", "Client", "Conflict", "Recommendation", "Recommendations"]


class APIError(RecsmithError):
    """The server answered with an error.

    Attributes
    ----------
    status : int
        The HTTP status.
    message : str
        The server's message (it names the field or value at fault).
    field : str or None
        The request field at fault, when the server says.
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.field = field


class NotFound(APIError, NotFoundError):
    """404: no such dataset group, campaign, filter or key."""


class BadRequest(APIError, ConfigError):
    """400 or 422: the request was invalid."""


class Conflict(APIError, ConflictError):
    """409: the resource is in use; ``campaigns`` names the campaigns in the way, when they are."""


@dataclass(frozen=True)
class Recommendation:
    """One recommended item."""

    item_id: str
    score: float | None
    reason: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Recommendations:
    """A response: items best first, and its id (to link later events to it)."""

    items: list[Recommendation]
    recommendation_id: str
    solution_version_id: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Recommendations:
        """Build from the API's JSON."""
        return cls([Recommendation(i["item_id"], i["score"], i["reason"], i.get("metadata")) for i in body["items"]],
                   body["recommendation_id"], body["solution_version_id"])


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Client:
    """recsmith over HTTP.

    Parameters
    ----------
    url : str
        The server's base URL, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``Authorization: Bearer <api_key>``; health, readiness and metrics need none.
    timeout : float
        Seconds per request.
    transport : httpx.BaseTransport, optional
        For tests (e.g. an ASGI transport).
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ plumbing
    def _call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        response = self._http.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", {})
            except ValueError:
                detail = {"message": response.text}
            message, field = str(detail.get("message", response.reason_phrase)), detail.get("field")
            kind = {404: NotFound, 400: BadRequest, 422: BadRequest, 409: Conflict}.get(response.status_code, APIError)
            problem = kind(response.status_code, message, field)
            if isinstance(problem, Conflict):
                problem.campaigns = tuple(detail.get("campaigns") or ())
            raise problem
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    @staticmethod
    def _campaign(group: str, campaign: str) -> str:
        return f"/v1/dataset-groups/{group}/campaigns/{campaign}"

    # ----------------------------------------------------------------------------------- health, metrics
    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return self._call("GET", "/health")

    def ready(self) -> bool:
        """``GET /ready``: True once every campaign is loaded."""
        return self._http.get("/ready").status_code == 200

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus exposition text."""
        return self._call("GET", "/metrics")

    # ----------------------------------------------------------------------------------- recommendations
    def recommend(self, group: str, campaign: str, *, user_id: str | None = None, item_id: str | None = None,
                  session_id: str | None = None, num_results: int = 25, filter: str | None = None,
                  filter_values: Mapping[str, Any] | None = None, exclude: Sequence[str] = (),
                  exclude_seen: bool | None = None, context: Mapping[str, Any] | None = None,
                  metadata_columns: Sequence[str] = (), promotion: Mapping[str, Any] | None = None,
                  suppress_served_minutes: float | None = None) -> Recommendations:
        """Recommendations for ``user_id``, for an anonymous ``session_id`` (alone), or items related to
        ``item_id``.

        ``promotion`` is ``{"name", "filter", "filter_values"?, "percent"?}``; ``suppress_served_minutes`` leaves
        out items served to the user in that many minutes that they have not acted on.
        """
        body = _drop_none({"user_id": user_id, "session_id": session_id, "item_id": item_id,
                           "suppress_served_minutes": suppress_served_minutes,
                           "num_results": num_results, "filter": filter,
                           "filter_values": dict(filter_values or {}), "exclude": list(exclude),
                           "exclude_seen": exclude_seen, "context": dict(context or {}),
                           "metadata_columns": list(metadata_columns),
                           "promotion": dict(promotion) if promotion else None})
        return Recommendations.from_json(self._call("POST", self._campaign(group, campaign) + "/recommendations",
                                                    json=body))

    def rank(self, group: str, campaign: str, *, user_id: str, input_list: Sequence[str], filter: str | None = None,
             filter_values: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None,
             metadata_columns: Sequence[str] = ()) -> Recommendations:
        """Personalized ranking of ``input_list`` for ``user_id`` (unknown items last)."""
        body = _drop_none({"user_id": user_id, "input_list": list(input_list), "filter": filter,
                           "filter_values": dict(filter_values or {}), "context": dict(context or {}),
                           "metadata_columns": list(metadata_columns)})
        return Recommendations.from_json(self._call("POST", self._campaign(group, campaign) + "/personalized-ranking",
                                                    json=body))

    # ------------------------------------------------------------------------------------------ campaigns
    def create_campaign(self, group: str, name: str, solution_version_id: int,
                        config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Deploy a solution version (admin)."""
        return self._call("POST", f"/v1/dataset-groups/{group}/campaigns",
                          json={"name": name, "solution_version_id": solution_version_id, "config": dict(config or {})})

    def update_campaign(self, group: str, name: str, *, solution_version_id: int | None = None,
                        config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Switch a campaign to another version and/or config (admin); the swap happens in the background."""
        return self._call("PUT", self._campaign(group, name), json=_drop_none(
            {"solution_version_id": solution_version_id, "config": None if config is None else dict(config)}))

    def list_campaigns(self, group: str) -> list[dict[str, Any]]:
        """The group's campaigns."""
        return self._call("GET", f"/v1/dataset-groups/{group}/campaigns")

    def describe_campaign(self, group: str, name: str) -> dict[str, Any]:
        """A campaign with the version this server serves (``status`` ACTIVE once loaded)."""
        return self._call("GET", self._campaign(group, name))

    def delete_campaign(self, group: str, name: str) -> None:
        """Stop serving and delete a campaign (admin)."""
        self._call("DELETE", self._campaign(group, name))

    # --------------------------------------------------------------------------------------------- events
    def put_events(self, group: str, *, session_id: str, events: Sequence[Mapping[str, Any]],
                   user_id: str | None = None) -> dict[str, int]:
        """Record up to 100 events (write role): each ``{"event_type", "item_id", "sent_at", "event_id"?,
        "event_value"?, "properties"?, "recommendation_id"?, "impression"?}``; ``sent_at`` a datetime, ISO
        text or epoch seconds. Returns ``{"accepted", "duplicates"}`` once they are committed."""
        body = _drop_none({"user_id": user_id, "session_id": session_id,
                           "events": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in e.items()}
                                      for e in events]})
        return self._call("POST", f"/v1/dataset-groups/{group}/events", json=body)

    def put_users(self, group: str, users: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Create or replace up to 100 users (write role): each ``{"user_id", "properties"?: {FIELD: value}}``,
        checked against the group's users schema. Returns ``{"stored"}``."""
        return self._call("PUT", f"/v1/dataset-groups/{group}/users", json={"users": [dict(u) for u in users]})

    def put_items(self, group: str, items: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Create or replace up to 100 items (write role): each ``{"item_id", "properties"?: {FIELD: value}}``;
        recommendable at once through filters and fallbacks. Returns ``{"stored"}``."""
        return self._call("PUT", f"/v1/dataset-groups/{group}/items", json={"items": [dict(i) for i in items]})

    def delete_user(self, group: str, user_id: str) -> dict[str, Any]:
        """Delete a user's interactions and metadata (write role); campaigns stop serving them at once."""
        return self._call("DELETE", f"/v1/dataset-groups/{group}/users/{quote(user_id, safe='')}")

    def delete_item(self, group: str, item_id: str) -> dict[str, Any]:
        """Stop recommending an item at once and drop its metadata (write role)."""
        return self._call("DELETE", f"/v1/dataset-groups/{group}/items/{quote(item_id, safe='')}")

    # -------------------------------------------------------------------------------------------- filters
    def create_filter(self, group: str, name: str, expression: str) -> dict[str, Any]:
        """Store a filter (admin)."""
        return self._call("POST", f"/v1/dataset-groups/{group}/filters", json={"name": name, "expression": expression})

    def list_filters(self, group: str) -> list[dict[str, Any]]:
        """The group's filters."""
        return self._call("GET", f"/v1/dataset-groups/{group}/filters")

    def get_filter(self, group: str, name: str) -> dict[str, Any]:
        """One filter, with its parameters."""
        return self._call("GET", f"/v1/dataset-groups/{group}/filters/{name}")

    def delete_filter(self, group: str, name: str) -> None:
        """Delete a filter (admin)."""
        self._call("DELETE", f"/v1/dataset-groups/{group}/filters/{name}")

    # ------------------------------------------------------------------------ dataset groups, solution versions
    def list_dataset_groups(self) -> list[dict[str, Any]]:
        """Every dataset group with its counts (a key for every group)."""
        return self._call("GET", "/v1/dataset-groups")

    def delete_dataset_group(self, group: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a dataset group and everything in it (admin); ``force`` deletes its campaigns too, else a
        :class:`Conflict` naming them while it has any. Returns what was deleted."""
        return self._call("DELETE", f"/v1/dataset-groups/{quote(group, safe='')}",
                          params={"force": "true"} if force else None)

    def list_solution_versions(self, group: str) -> list[dict[str, Any]]:
        """The group's solution versions, oldest first, with the campaigns serving each."""
        return self._call("GET", f"/v1/dataset-groups/{quote(group, safe='')}/solution-versions")

    def delete_solution_version(self, group: str, version_id: int) -> dict[str, Any]:
        """Delete a solution version and its artifact (admin); a :class:`Conflict` naming the campaigns while any
        serves it. Returns what was deleted."""
        return self._call("DELETE", f"/v1/dataset-groups/{quote(group, safe='')}/solution-versions/{int(version_id)}")

    # ---------------------------------------------------------------------------------------- batch jobs
    def create_batch_inference_job(self, group: str, solution_version_id: int, *, input: str | None = None,
                                   all_users: bool = False, output: str | None = None,
                                   output_table: str | None = None, db_url: str | None = None,
                                   num_results: int = 25, filter: str | None = None,
                                   filter_values: Mapping[str, Any] | None = None,
                                   engine: str = "local") -> dict[str, Any]:
        """Start a batch inference job on the server (it answers at once, ``CREATE_PENDING``); ``input`` and
        ``output`` are paths or fsspec URLs the server can read and write. Poll it with
        :meth:`describe_batch_inference_job` or :meth:`wait_for_batch_job`."""
        body = _drop_none({"solution_version_id": solution_version_id, "input": input, "all_users": all_users,
                           "output": output, "output_table": output_table, "db_url": db_url,
                           "num_results": num_results, "filter": filter,
                           "filter_values": dict(filter_values) if filter_values else None, "engine": engine})
        return self._call("POST", f"/v1/dataset-groups/{group}/batch-inference-jobs", json=body)

    def describe_batch_inference_job(self, group: str, job_id: int) -> dict[str, Any]:
        """A batch inference job: status, counts, duration, error."""
        return self._call("GET", f"/v1/dataset-groups/{group}/batch-inference-jobs/{job_id}")

    def list_batch_inference_jobs(self, group: str) -> list[dict[str, Any]]:
        """The group's batch inference jobs, oldest first."""
        return self._call("GET", f"/v1/dataset-groups/{group}/batch-inference-jobs")

    def create_batch_segment_job(self, group: str, solution_version_id: int, *, input: str, output: str,
                                 num_users: int = 100) -> dict[str, Any]:
        """Start a batch segment job on the server (``CREATE_PENDING``)."""
        return self._call("POST", f"/v1/dataset-groups/{group}/batch-segment-jobs",
                          json={"solution_version_id": solution_version_id, "input": input, "output": output,
                                "num_users": num_users})

    def describe_batch_segment_job(self, group: str, job_id: int) -> dict[str, Any]:
        """A batch segment job."""
        return self._call("GET", f"/v1/dataset-groups/{group}/batch-segment-jobs/{job_id}")

    def list_batch_segment_jobs(self, group: str) -> list[dict[str, Any]]:
        """The group's batch segment jobs, oldest first."""
        return self._call("GET", f"/v1/dataset-groups/{group}/batch-segment-jobs")

    def wait_for_batch_job(self, group: str, job_id: int, *, kind: str = "inference", timeout: float = 600.0,
                           poll: float = 0.2) -> dict[str, Any]:
        """Poll a batch job until it is ``ACTIVE`` or ``CREATE_FAILED`` (returned either way).

        Raises
        ------
        TimeoutError
            If it is still running after ``timeout`` seconds.
        """
        import time

        describe = self.describe_batch_segment_job if kind == "segment" else self.describe_batch_inference_job
        deadline = time.monotonic() + timeout
        while True:
            job = describe(group, job_id)
            if job["status"] in ("ACTIVE", "CREATE_FAILED"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {kind} job {job_id} is still {job['status']} after {timeout:.0f} s")
            time.sleep(poll)
