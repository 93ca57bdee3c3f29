"""Answering batch jobs' lines (batch inference and batch segment jobs) through the serving pipeline.

:class:`InferenceScorer` answers Amazon Personalize's batch inference lines (``{"userId"}``, ``{"itemId"}``,
``{"userId", "itemList"}``, each with optional ``filterValues``) with :class:`~recsmith.serving.campaign.
CampaignRuntime`, users scored in blocks (:meth:`~recsmith.serving.campaign.CampaignRuntime.answer_users`), so
a line's answer is the campaign's answer for the same user. :class:`SegmentScorer` answers batch segment lines
(``{"itemId"}``, ``{"itemAttributes"}``) with the recipe's :meth:`~recsmith.recipes.base.Recipe.top_users`.
Each gives one record per line, ``{"input", "output", "error"}``; a bad line's record has its ``error``. The job
(:mod:`recsmith.jobs.batch`) and the Spark engine (:mod:`recsmith.engines.spark_batch`) both answer with these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from recsmith.errors import DataError, RecsmithError

if TYPE_CHECKING:
    from recsmith.serving.campaign import LoadedCampaign
    from recsmith.settings import Settings
    from recsmith.store.store import Store

PART_LINES = 10_000
"""Input lines answered at once (and per part of a job's output: what a resumed job may have to redo at most)."""
BLOCK_USERS = 1_000
"""Users scored in one recipe call."""
INFERENCE_KEYS = ("recommendedItems", "scores", "reasons")
"""The keys of a batch inference line's ``output``."""
SEGMENT_KEYS = ("usersList", "scores")
"""The keys of a batch segment line's ``output``."""
INFERENCE_FIELDS = {"userId", "itemId", "itemList", "filterValues"}
SEGMENT_FIELDS = {"itemId", "itemAttributes"}


def scorer_for(store: Store, settings: Settings, job: Mapping[str, Any]) -> InferenceScorer | SegmentScorer:
    """The scorer of a job's lines: its solution version loaded as a campaign would serve it."""
    from recsmith.serving.campaign import load_version

    deployed = load_version(store, int(job["solution_version_id"]), encryption_key=settings.encryption_key)
    config = job["config"]
    if job["kind"] == "segment":
        return SegmentScorer(store, deployed, num_users=int(config["num_users"]))
    return InferenceScorer(store, deployed, num_results=int(config["num_results"]), filter=config.get("filter"),
                           filter_values=config.get("filter_values") or None)


def worker_environment(settings: Settings) -> dict[str, Any]:
    """What another process (a job's worker, a Spark executor) needs to open the same store and artifacts:
    :class:`~recsmith.settings.Settings` fields, passed to it in memory (never written anywhere)."""
    environment: dict[str, Any] = {"home": str(settings.home), "database_url": settings.resolved_database_url(),
                                   "artifact_dir": str(settings.resolved_artifact_dir())}
    if settings.encryption_key is not None:
        environment["encryption_key"] = settings.encryption_key.get_secret_value()
    return environment


def worker_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """What another process needs of a job's record to answer its lines (:func:`answer_in_worker`)."""
    return {key: job[key] for key in ("id", "kind", "solution_version_id", "dataset_group_id", "config")}


_WORKER: dict[str, Any] = {}
"""The scorer of this worker process, made by its first part (a process answers parts of one job)."""


def answer_in_worker(environment: Mapping[str, Any], job: Mapping[str, Any], lines: Sequence[tuple[int, str]]
                     ) -> list[dict[str, Any]]:
    """Answer ``lines`` in a worker process: the store and the version are opened once per process (from
    :func:`worker_environment`), with one BLAS thread (the processes share the cores)."""
    if _WORKER.get("job") != job["id"]:
        from threadpoolctl import threadpool_limits

        from recsmith.settings import Settings
        from recsmith.store.store import Store

        threadpool_limits(1)
        settings = Settings(**environment)
        store = Store.from_settings(settings)
        _WORKER.update(job=job["id"], scorer=scorer_for(store, settings, job))
    return _WORKER["scorer"].answer(lines)


def _parse(text: str, number: int, fields: set[str]) -> dict[str, Any]:
    """One input line as a JSON object with only ``fields``.

    Raises
    ------
    DataError
        For a line that is not a JSON object, or has other keys, naming the line and what is wrong.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise DataError(f"line {number}: expected a JSON object such as {{\"userId\": \"42\"}}, got "
                        f"{type(value).__name__}")
    unknown = sorted(set(value) - fields)
    if unknown:
        raise DataError(f"line {number}: unknown field(s) {', '.join(map(repr, unknown))}; a line has "
                        f"{', '.join(sorted(fields))}")
    return value


def _text_id(value: Any, field: str, number: int) -> str:
    """A line's id field as a string (an integer is taken as its digits)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise DataError(f"line {number}: {field} must be a non-empty string, got {value!r}")
    return str(value)


def _error(given: Any, message: str) -> dict[str, Any]:
    return {"input": given, "output": None, "error": message}


class InferenceScorer:
    """Answers batch inference lines from a loaded solution version through the campaign pipeline.

    Parameters
    ----------
    store : Store
        The store (histories, filters, item metadata).
    deployed : LoadedCampaign
        The version, loaded as a campaign serves it (:func:`recsmith.serving.campaign.load_version`).
    num_results : int
        Items per line.
    filter : str, optional
        A stored filter of the group, by name.
    filter_values : mapping, optional
        Its values for every line (a line's ``filterValues`` override them).
    """

    def __init__(self, store: Store, deployed: LoadedCampaign, *, num_results: int, filter: str | None = None,
                 filter_values: Mapping[str, Any] | None = None) -> None:
        from recsmith.serving.campaign import CampaignRuntime

        self.store, self.deployed = store, deployed
        self.runtime = CampaignRuntime(store)
        self.num_results, self.filter, self.filter_values = num_results, filter, dict(filter_values or {})

    def answer(self, lines: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
        """One output record per input line, in order (a bad line's record has its ``error``)."""
        records: list[dict[str, Any] | None] = [None] * len(lines)
        plain: list[tuple[int, str]] = []  # (position, user id): scored in blocks
        requests: list[tuple[int, dict[str, Any], int]] = []
        parsed: dict[int, dict[str, Any]] = {}
        for position, (number, text) in enumerate(lines):
            try:
                request = parsed[position] = _parse(text, number, INFERENCE_FIELDS)
                requests.append((position, request, number))
            except DataError as exc:
                records[position] = _error(text, str(exc))
        unknown = self._unknown_users([(pos, req, num) for pos, req, num in requests if "userId" in req])
        for position, request, number in requests:
            if position in unknown:
                records[position] = _error(request, unknown[position])
                continue
            try:
                user = _text_id(request["userId"], "userId", number) if "userId" in request else None
                if user is not None and set(request) == {"userId"}:
                    plain.append((position, user))
                    continue
                records[position] = self._one(request, number, user)
            except RecsmithError as exc:
                records[position] = _error(request, f"line {number}: {exc}")
        for start in range(0, len(plain), BLOCK_USERS):
            block = plain[start:start + BLOCK_USERS]
            try:
                answers = self.runtime.answer_users(self.deployed, [user for _, user in block],
                                                    num_results=self.num_results, filter=self.filter,
                                                    filter_values=self.filter_values or None)
            except RecsmithError:  # the block failed as a whole: answer its lines one by one to tell which
                for position, user in block:
                    number = lines[position][0]
                    try:
                        records[position] = self._one({"userId": user}, number, user)
                    except RecsmithError as exc:
                        records[position] = _error(parsed[position], f"line {number}: {exc}")
                continue
            for (position, _), answer in zip(block, answers, strict=True):
                records[position] = _record(parsed[position], answer)
        return [record for record in records if record is not None]

    def _unknown_users(self, requests: Sequence[tuple[int, dict[str, Any], int]]) -> dict[int, str]:
        """The positions of lines whose user the dataset group does not have (no interactions, no user record),
        with their error."""
        model = self.deployed.model
        asked = {pos: str(req["userId"]) for pos, req, _ in requests
                 if isinstance(req["userId"], str | int) and not isinstance(req["userId"], bool)
                 and str(req["userId"]) not in model.users}
        if not asked:
            return {}
        present = self.store.present_users(self.deployed.group_id, list(asked.values()))
        numbers = {pos: num for pos, _, num in requests}
        return {pos: f"line {numbers[pos]}: user {user!r} is not in dataset group {self.deployed.group!r} (no "
                     "interactions, no user record); check the id, or import the user first"
                for pos, user in asked.items() if user not in present}

    def _one(self, request: Mapping[str, Any], number: int, user: str | None) -> dict[str, Any]:
        """One line answered on its own: related items, a ranking, or a user with their own filter values."""
        values = self.filter_values
        if "filterValues" in request:
            own = request["filterValues"]
            if self.filter is None:
                raise DataError("filterValues given, but the job has no filter; create the job with --filter NAME")
            if not isinstance(own, dict):
                raise DataError(f"filterValues must be an object of $PARAM values, got {own!r}")
            values = values | own
        if "itemList" in request:
            items = request["itemList"]
            if user is None:
                raise DataError("itemList (personalized ranking) needs a userId")
            if "itemId" in request:
                raise DataError("give itemId (related items) or itemList (a ranking), not both")
            if not isinstance(items, list) or not items or not all(isinstance(i, str | int) for i in items):
                raise DataError(f"itemList must be a non-empty list of item ids, got {items!r}")
            answer = self.runtime.rank_with(self.deployed, user_id=user, input_list=[str(i) for i in items],
                                            filter=self.filter, filter_values=values or None, log=False)
        elif "itemId" in request:
            if user is not None:
                raise DataError("give userId (recommendations) or itemId (related items), not both")
            item = _text_id(request["itemId"], "itemId", number)
            if item not in self.deployed.model.items and item not in self.deployed.metadata:
                raise DataError(f"item {item!r} is not in dataset group {self.deployed.group!r}")
            answer = self.runtime.answer(self.deployed, item_id=item, num_results=self.num_results,
                                         filter=self.filter, filter_values=values or None, log=False)
        elif user is not None:
            answer = self.runtime.answer(self.deployed, user_id=user, num_results=self.num_results,
                                         filter=self.filter, filter_values=values or None, log=False)
        else:
            raise DataError("a line needs userId (recommendations), itemId (related items) or userId and "
                            "itemList (a ranking)")
        return _record(dict(request), answer)


def _record(given: Any, answer: Mapping[str, Any]) -> dict[str, Any]:
    items = answer["items"]
    return {"input": given, "output": {"recommendedItems": [item["item_id"] for item in items],
                                       "scores": [item["score"] for item in items],
                                       "reasons": [item["reason"] for item in items]}, "error": None}


class SegmentScorer:
    """Answers batch segment lines: the users of a loaded solution version most likely to interact with an item
    (Item-Affinity) or with the items an attribute expression selects (Item-Attribute-Affinity), ranked by the
    recipe's :meth:`~recsmith.recipes.base.Recipe.top_users`. Users deleted since training are left out.

    Parameters
    ----------
    store : Store
        The store.
    deployed : LoadedCampaign
        The version, loaded as a campaign serves it.
    num_users : int
        Users per line.
    """

    def __init__(self, store: Store, deployed: LoadedCampaign, *, num_users: int) -> None:
        self.store, self.deployed, self.num_users = store, deployed, num_users

    def answer(self, lines: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
        """One output record per input line, in order."""
        import numpy as np

        from recsmith.data.filters import item_attribute_mask

        model = self.deployed.model
        records: list[dict[str, Any] | None] = [None] * len(lines)
        sets: list[np.ndarray] = []
        asked: list[tuple[int, dict[str, Any]]] = []
        visible = self.deployed.visible_items
        for position, (number, text) in enumerate(lines):
            try:
                request = _parse(text, number, SEGMENT_FIELDS)
                if ("itemId" in request) == ("itemAttributes" in request):
                    raise DataError(f"line {number}: give itemId (Item-Affinity) or itemAttributes "
                                    "(Item-Attribute-Affinity)")
                if "itemId" in request:
                    item = _text_id(request["itemId"], "itemId", number)
                    if item not in model.items:
                        raise DataError(f"line {number}: item {item!r} is not known to solution version "
                                        f"{self.deployed.version_id} (it was put after training, or is not in "
                                        f"dataset group {self.deployed.group!r})")
                    chosen = np.array([model.items.index(item)], dtype=np.int64)
                else:
                    expression = request["itemAttributes"]
                    if not isinstance(expression, str) or not expression.strip():
                        raise DataError(f"line {number}: itemAttributes must be an expression such as "
                                        "'ITEMS.GENRES = \"Comedy\"'")
                    mask = item_attribute_mask(expression, self.deployed.catalog)[:len(model.items)]
                    chosen = np.flatnonzero(mask if visible is None else mask & visible)
                    if not len(chosen):
                        raise DataError(f"line {number}: no item of the model matches {expression!r}")
                sets.append(chosen)
                asked.append((position, request))
            except RecsmithError as exc:
                records[position] = _error(text, str(exc) if str(exc).startswith("line ") else
                                           f"line {number}: {exc}")
        if asked:
            hidden = self._hidden_users()
            extra = len(hidden)
            ranked = model.recipe.top_users(sets, self.num_users + extra)
            raw = model.users.ids
            for row, (position, request) in enumerate(asked):
                ids, scores = ranked.ids[row], ranked.scores[row]
                keep = (ids >= 0) & np.isfinite(scores)
                if extra:
                    keep &= ~np.isin(ids, hidden)
                ids, scores = ids[keep][:self.num_users], scores[keep][:self.num_users]
                records[position] = {"input": request, "output": {"usersList": [str(raw[i]) for i in ids.tolist()],
                                                                  "scores": scores.tolist()}, "error": None}
        return [record for record in records if record is not None]

    def _hidden_users(self) -> Any:
        """Dense indices of the model's users deleted since training."""
        import numpy as np

        hidden = self.deployed.hidden_users
        if not hidden:
            return np.empty(0, dtype=np.int64)
        users = self.deployed.model.users
        return np.array([i for i, user in enumerate(users.ids.tolist()) if self.store.entity_hash(str(user)) in hidden],
                        dtype=np.int64)


def answer_all(scorer: InferenceScorer | SegmentScorer, lines: Iterable[tuple[int, str]]) -> Iterator[dict[str, Any]]:
    """Every line's record, answered :data:`PART_LINES` lines at a time (what a Spark partition runs)."""
    for chunk in chunks(lines, PART_LINES):
        yield from scorer.answer(chunk)


def chunks(lines: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    """``lines`` in lists of ``size`` (the last may be shorter)."""
    iterator = iter(lines)
    while chunk := list(islice(iterator, size)):
        yield chunk


