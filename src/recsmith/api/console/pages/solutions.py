"""Solutions and versions: params, status, metrics with confidence intervals, comparing two versions,
evaluation reports, training and tuning (admins).

Every page reads what the ``/v1`` routes and the CLI read: the versions through
:func:`recsmith.api.routes.solution_versions.version_views` / ``version_view``, a version's stored evaluation
(:func:`recsmith.jobs.training.offline_evaluation`, its report drawn by :func:`recsmith.jobs.training.
evaluation_report`), recommendations through the serving pipeline (``load_version`` and the runtime's
``answer_users``), trainings through :func:`recsmith.jobs.training.start_training` and tunes through
:func:`recsmith.tuning.tune_recipe` with the studies kept where ``recsmith tune`` keeps them. Long work runs in
the server's background jobs; its progress is read back from the store (or the study storage), so every worker
shows it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import error_page, is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.routes.solution_versions import serving_map, version_view, version_views
from recsmith.errors import ConfigError, DataError, NotFoundError
from recsmith.evaluation.metrics import canonical_metric
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.runs import ACTIVE, FAILED
from recsmith.jobs.training import evaluation_report, read_progress, start_training, tuning_interactions
from recsmith.recipes import available, create
from recsmith.recipes.registry import canonical_name, recipe_name
from recsmith.serving.campaign import LoadedCampaign, load_version
from recsmith.store.audit_records import acting_as
from recsmith.store.store import Store
from recsmith.tuning import (
    check_settings,
    group_study_names,
    read_study,
    set_study_attr,
    study_name,
    tunable_recipes,
    tune_recipe,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

ACTIVE_NAV = "solutions"
COMPARE_USERS = 100
"""Users whose top-10s are compared (a fixed-seed sample of the users both versions know)."""
COMPARE_K = 10
COMPARE_SEED = 0
TUNE_MAX_TRIALS = 500
TUNE_MAX_SECONDS = 6 * 3600.0
TUNE_GRACE_SECONDS = 120.0
"""How long after its timeout a tune's trials are still polled (the last trial finishes after the timeout)."""
LAST_RUN_ATTR = "recsmith_console_run"
"""The study attribute a console tune writes when it ends: ``{"started", "finished", "status", "error"}``."""
REPORT_HEADERS = {
    # the report is self-contained (inline styles, inline SVG plots, no script): allow only that, in a sandbox
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Headers of a version's evaluation report (not the console's page CSP: the report is another document)."""


# ------------------------------------------------------------------------------------------------ reading
def _store(request: Request) -> Store:
    return request.app.state.store


def _group_id(request: Request, user: ConsoleUser, group: str) -> int:
    """The group's id, after checking the key may read it (404 for an unknown group)."""
    user.require("read", group)
    return _store(request).get_dataset_group(group).id


def _record(request: Request, group: str, version_id: int) -> dict[str, Any]:
    """The stored version, if it is one of ``group``'s (else 404)."""
    try:
        record = _store(request).get_solution_version(version_id)
    except NotFoundError:
        record = None
    if record is None or record["dataset_group"] != group:
        raise NotFoundError(f"dataset group {group!r} has no solution version {version_id}; its versions are listed "
                            f"on /console/g/{group}/solutions")
    return record


def metric_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A version's offline metrics with their intervals, as the pages show them.

    Returns
    -------
    list of dict
        ``name``, ``mean``, ``ci_low``, ``ci_high`` (None without an interval) and ``note`` (why there is no
        interval: the version stored none, or the metric is catalogue-wide).
    """
    metrics = record.get("metrics") or {}
    evaluation = record.get("evaluation") or {}
    intervals = evaluation.get("intervals") or {}
    rows = []
    for name, value in metrics.items():
        if "@" not in name or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        interval = intervals.get(name) or {}
        note = None
        if not interval:
            note = "no interval recorded" if not evaluation else "no interval (catalogue-wide)"
        rows.append({"name": name, "mean": float(value), "ci_low": interval.get("ci_low"),
                     "ci_high": interval.get("ci_high"), "note": note})
    return rows


def _view(record: dict[str, Any], serving: dict[int, list[str]]) -> dict[str, Any]:
    """The API's view of a version with what the console shows beside it."""
    metrics = record.get("metrics") or {}
    evaluation = record.get("evaluation") or {}
    return version_view(record, serving) | {
        "config": record.get("config") or {}, "started_at": record.get("started_at"),
        "progress": read_progress(record), "metric_rows": metric_rows(record),
        "protocol": metrics.get("protocol"), "rows_skipped": metrics.get("rows_skipped"),
        "evaluation": {key: evaluation.get(key) for key in ("confidence", "n_resamples", "seed", "users")}
        if evaluation else None,
        "has_report": bool(evaluation.get("report")), "error": record.get("error"),
        "finished": record.get("status") in (ACTIVE, FAILED),
    }


def _metric_names(views: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for view in views:
        names += [row["name"] for row in view["metric_rows"] if row["name"] not in names]
    return names


def _solutions(request: Request, group: str, group_id: int) -> list[dict[str, Any]]:
    """The group's solutions, each with its versions (the API's views), newest version first."""
    store = _store(request)
    serving = serving_map(store, group)
    views = [_view(record, serving) for record in store.list_solution_versions(group_id)]
    out = []
    for solution in store.list_solutions(group_id):
        versions = [v for v in views if v["solution"] == solution["name"]][::-1]
        out.append(solution | {"versions": versions, "metric_names": _metric_names(versions)})
    return out


# ------------------------------------------------------------------------------------------------ pages
@router.get("/solutions")
def solutions_page(request: Request, group: str, user: User) -> Response:
    """The group's solutions and their versions: params, status, metrics with intervals, training time, sizes,
    dates and the campaigns serving each."""
    group_id = _group_id(request, user, group)
    return page(request, "solutions/list.html", title=f"Solutions · {group}", group=group, active=ACTIVE_NAV,
                solutions=_solutions(request, group, group_id), may_change=user.may("admin", group))


@router.get("/solutions/versions/{version_id}")
def version_page(request: Request, group: str, version_id: int, user: User) -> Response:
    """One version: params, config, status (and its error when it failed, for admins), its offline metrics with
    their confidence intervals and protocol, and the link to its evaluation report."""
    _group_id(request, user, group)
    record = _record(request, group, version_id)
    view = _view(record, serving_map(_store(request), group))
    return page(request, "solutions/version.html", title=f"Solution version {version_id} · {group}", group=group,
                active=ACTIVE_NAV, sv=view, may_change=user.may("admin", group))


@router.get("/solutions/versions/{version_id}/status")
def version_status(request: Request, group: str, version_id: int, user: User) -> Response:
    """The fragment a training page polls: status and progress from the store (it stops polling once the version
    is ACTIVE or CREATE_FAILED)."""
    _group_id(request, user, group)
    record = _record(request, group, version_id)
    view = _view(record, serving_map(_store(request), group))
    return page(request, "solutions/_status.html", group=group, sv=view, may_change=user.may("admin", group))


@router.get("/solutions/versions/{version_id}/report")
def version_report(request: Request, group: str, version_id: int, user: User) -> Response:
    """The self-contained HTML evaluation report of the version's stored evaluation (404 when it has none),
    under a sandboxing Content-Security-Policy of its own."""
    _group_id(request, user, group)
    record = _record(request, group, version_id)
    html = evaluation_report(record)
    if html is None:
        raise HTTPException(404, f"solution version {version_id} has no stored evaluation: it was trained without "
                                 "metrics (--no-metrics), or before versions stored their evaluation; train a new "
                                 "version with metrics to get its report")
    return HTMLResponse(html, headers=REPORT_HEADERS)


# ------------------------------------------------------------------------------------------------ compare
def _active_versions(request: Request, group: str) -> list[dict[str, Any]]:
    return [v for v in version_views(_store(request), group) if v["status"] == ACTIVE]


def _pick(request: Request, group: str, a: int | None, b: int | None
          ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
    """The group's ACTIVE versions and the two chosen (default: the first two); 404 for one not in the group."""
    versions = _active_versions(request, group)
    by_id = {int(v["id"]): v for v in versions}
    for name, chosen in (("a", a), ("b", b)):
        if chosen is not None and chosen not in by_id:
            raise HTTPException(404, f"{name}: dataset group {group!r} has no ACTIVE solution version {chosen}; its "
                                     f"ACTIVE versions: {', '.join(map(str, by_id)) or '(none)'}")
    ids = list(by_id)
    a = a if a is not None else (ids[0] if ids else None)
    b = b if b is not None else next((i for i in ids if i != a), None)
    return versions, by_id.get(a) if a is not None else None, by_id.get(b) if b is not None else None


def _bar_chart(a: dict[str, Any], b: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The Chart.js config of the two versions' metric means, side by side."""
    def means(view: dict[str, Any]) -> list[float | None]:
        found = {row["name"]: row["mean"] for row in view["metric_rows"]}
        return [found.get(name) for name in names]

    return {"type": "bar", "data": {"labels": names, "datasets": [
        {"label": _label("A", a), "data": means(a), "backgroundColor": "#0b5cad"},
        {"label": _label("B", b), "data": means(b), "backgroundColor": "#e08a00"},
    ]}, "options": {"scales": {"y": {"beginAtZero": True}}, "plugins": {"legend": {"position": "bottom"}}}}


def _label(side: str, view: dict[str, Any]) -> str:
    return f"{side}: version {view['id']} ({view['recipe']})"


def _compare_rows(a: dict[str, Any], b: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    rows_a = {row["name"]: row for row in a["metric_rows"]}
    rows_b = {row["name"]: row for row in b["metric_rows"]}
    out = []
    for name in names:
        left, right = rows_a.get(name), rows_b.get(name)
        difference = right["mean"] - left["mean"] if left and right else None
        out.append({"name": name, "a": left, "b": right, "difference": difference})
    return out


@router.get("/solutions/compare")
def compare_page(request: Request, group: str, user: User, a: int | None = None, b: int | None = None) -> Response:
    """Two versions side by side: their metrics (bars and a table with the intervals), and (loaded after the page)
    how much their top-10s overlap for a sample of users."""
    _group_id(request, user, group)
    versions, first, second = _pick(request, group, a, b)
    context: dict[str, Any] = {"versions": versions, "a": first, "b": second, "same": False}
    if first is not None and second is not None:
        serving = serving_map(_store(request), group)
        view_a = _view(_record(request, group, int(first["id"])), serving)
        view_b = _view(_record(request, group, int(second["id"])), serving)
        names = _metric_names([view_a, view_b])
        context.update(a=view_a, b=view_b, same=view_a["id"] == view_b["id"], names=names,
                       chart=_bar_chart(view_a, view_b, names) if names else None,
                       rows=_compare_rows(view_a, view_b, names))
    return page(request, "solutions/compare.html", title=f"Compare versions · {group}", group=group,
                active=ACTIVE_NAV, **context)


def sample_users(first: LoadedCampaign, second: LoadedCampaign, size: int = COMPARE_USERS,
                 seed: int = COMPARE_SEED) -> list[str]:
    """Up to ``size`` raw user ids both versions were trained on: a ``seed``-ed sample, sorted (the same users
    every time for the same two versions)."""
    common = np.intersect1d(first.model.users.ids, second.model.users.ids)
    if len(common) > size:
        common = np.sort(np.random.default_rng(seed).choice(common, size, replace=False))
    return [str(user) for user in common]


def top_overlap(request: Request, first: LoadedCampaign, second: LoadedCampaign, users: list[str],
                k: int = COMPARE_K) -> list[dict[str, Any]]:
    """Each user's top ``k`` from both versions, through the serving pipeline (the runtime's ``answer_users``, as
    batch jobs answer), and what they share: ``user``, ``shared`` (items in both), ``jaccard``."""
    runtime = request.app.state.runtime
    answers_a = runtime.answer_users(first, users, num_results=k)
    answers_b = runtime.answer_users(second, users, num_results=k)
    rows = []
    for user, left, right in zip(users, answers_a, answers_b, strict=True):
        items_a = {item["item_id"] for item in left["items"]}
        items_b = {item["item_id"] for item in right["items"]}
        union = items_a | items_b
        shared = len(items_a & items_b)
        rows.append({"user": user, "shared": shared, "jaccard": shared / len(union) if union else 1.0})
    return rows


def _histogram(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    counts = np.bincount([row["shared"] for row in rows], minlength=k + 1)[:k + 1].tolist()
    return {"type": "bar", "data": {"labels": [str(n) for n in range(k + 1)], "datasets": [
        {"label": "users", "data": counts, "backgroundColor": "#5b8fd1"}]},
        "options": {"plugins": {"legend": {"display": False}},
                    "scales": {"x": {"title": {"display": True, "text": f"items shared by the two top-{k}s"}},
                               "y": {"beginAtZero": True, "title": {"display": True, "text": "users"},
                                     "ticks": {"precision": 0}}}}}


@router.get("/solutions/compare/overlap")
def compare_overlap(request: Request, group: str, user: User, a: int, b: int) -> Response:
    """The fragment of the compare page: the overlap of the two versions' top-10s for a fixed sample of users
    (mean Jaccard, mean shared items, a histogram and the per-user table). The versions are loaded for this
    request only, as ``recsmith recommend`` loads one."""
    _group_id(request, user, group)
    for version_id in (a, b):
        if _record(request, group, version_id)["status"] != ACTIVE:
            raise HTTPException(409, f"solution version {version_id} is not ACTIVE: only trained versions answer")
    key = request.app.state.settings.encryption_key
    store = _store(request)
    first, second = load_version(store, a, encryption_key=key), load_version(store, b, encryption_key=key)
    users = sample_users(first, second)
    rows = top_overlap(request, first, second, users) if users else []
    summary = None
    if rows:
        summary = {"users": len(rows), "jaccard": float(np.mean([r["jaccard"] for r in rows])),
                   "shared": float(np.mean([r["shared"] for r in rows])),
                   "identical": sum(1 for r in rows if r["jaccard"] == 1.0)}
    return page(request, "solutions/_overlap.html", group=group, a=a, b=b, k=COMPARE_K, rows=rows,
                summary=summary, chart=_histogram(rows, COMPARE_K) if rows else None)


# ------------------------------------------------------------------------------------------------ training
def parse_params(text: str) -> dict[str, Any]:
    """Params typed in the train form: a JSON object, or ``name=value`` lines (each value JSON when it parses, such
    as ``50``, ``0.1``, ``true`` or ``[1, 2]``, else the text); blank lines and ``#`` comments are skipped.

    Raises
    ------
    ConfigError
        Naming the line (or the JSON's position) that is wrong.
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a JSON object: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        if not isinstance(value, dict):
            raise ConfigError("give the params as a JSON object, e.g. {\"neighbors\": 50}")
        return value
    params: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"line {number} ({line!r}) is not name=value, e.g. neighbors=50")
        try:
            params[name.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            params[name.strip()] = value.strip()
    return params


def _recipes() -> list[str]:
    return list(available())


def _train_page(request: Request, group: str, user: ConsoleUser, *, recipe: str = "", params: str = "",
                solution: str = "") -> Response:
    return page(request, "solutions/train.html", title=f"Train a version · {group}", group=group, active=ACTIVE_NAV,
                recipes=_recipes(), chosen=recipe, params=params, solution=solution,
                may_change=user.may("admin", group))


@router.get("/solutions/train")
def train_page(request: Request, group: str, user: User, recipe: str = "", params: str = "",
               solution: str = "") -> Response:
    """The train form (admins; read keys see that training needs an admin key), optionally filled in."""
    _group_id(request, user, group)
    return _train_page(request, group, user, recipe=recipe, params=params, solution=solution)


def _run_training(job: Any, actor: str, source: str) -> None:
    """A background training, its audit entries naming the console's key."""
    with acting_as(actor, source):
        job.run()


@router.post("/solutions/train")
def train_version(request: Request, group: str, user: User, recipe: Annotated[str, Form(max_length=64)],
                  params: Annotated[str, Form(max_length=20_000)] = "",
                  solution: Annotated[str, Form(max_length=128)] = "",
                  with_metrics: Annotated[bool, Form()] = False) -> Response:
    """Start training a version in the background (admins). The version is recorded before this answers, so the
    answer (for htmx: the polled status fragment; else a redirect to the version) shows it; bad params are a 400
    naming them, before any job starts."""
    user.require("admin", group)
    _group_id(request, user, group)
    resource = f"dataset-groups/{group}/solutions/{solution.strip() or recipe}/versions"
    field = "recipe"
    try:
        name = recipe_name(recipe)
        field = "params"
        parsed = parse_params(params)
        create(name, **parsed)  # the recipe's params model says what is wrong, naming the param
        field = None
        job = start_training(_store(request), request.app.state.settings, group, name, parsed,
                             solution_name=solution.strip() or None, with_metrics=with_metrics)
    except (ConfigError, DataError) as exc:
        audit_action(request, user.principal.key_id, "solution_version.train", resource, outcome="failed",
                     status=400, detail={"recipe": recipe, "error": str(exc)[:300]})
        return error_page(request, 400, str(exc), field=field)
    audit_action(request, user.principal.key_id, "solution_version.train", f"{resource}/{job.version_id}",
                 detail={"recipe": job.model.name, "params": job.model.get_params(), "with_metrics": with_metrics,
                         "stage": "started"})
    client = request.client
    request.app.state.jobs.submit(f"train solution version {job.version_id}", _run_training, job,
                                  user.principal.key_id, client.host if client else "console")
    if not is_htmx(request):
        return RedirectResponse(f"/console/g/{group}/solutions/versions/{job.version_id}", status_code=303)
    record = _record(request, group, job.version_id)
    return page(request, "solutions/_status.html", status=202, group=group,
                sv=_view(record, serving_map(_store(request), group)), may_change=True)


# ------------------------------------------------------------------------------------------------ tuning
def _study_url(request: Request) -> str:
    """Where ``recsmith tune`` keeps studies by default: the store's database."""
    return request.app.state.settings.resolved_database_url()


def _group_study(request: Request, group: str, name: str) -> dict[str, Any] | None:
    if not name.startswith(f"{group}:"):
        raise HTTPException(404, f"study {name!r} is not one of dataset group {group!r}'s (they are named "
                                 f"{group}:RECIPE:METRIC)")
    return read_study(_study_url(request), name)


@router.get("/solutions/tune")
def tune_page(request: Request, group: str, user: User, study: str = "") -> Response:
    """The tune form (admins), the group's studies, and one study's trials."""
    _group_id(request, user, group)
    names = group_study_names(_study_url(request), group)
    chosen = _group_study(request, group, study) if study else None
    if study and chosen is None:
        raise HTTPException(404, f"no study {study!r}; the group's studies: {', '.join(names) or '(none)'}")
    return page(request, "solutions/tune.html", title=f"Tune a recipe · {group}", group=group, active=ACTIVE_NAV,
                recipes=tunable_recipes(), studies=names, study=chosen, run=None,
                may_change=user.may("admin", group))


def _run_tune(store: Store, settings: Any, group: str, recipe: str, metric: str, trials: int, timeout: float,
              solution: str, name: str, started: float, actor: str, source: str) -> None:
    """A background tune as ``recsmith tune`` runs one (less the slice training measures on, the study in the
    store's database), saving the best params as the solution; the study records how the run ended."""
    url = settings.resolved_database_url()
    status, error = "failed", None
    try:
        with acting_as(actor, source):
            tune_part, _ = tuning_interactions(store, group, recipe)
            result = tune_recipe(recipe, tune_part, metric=metric, trials=trials, timeout=timeout, storage_url=url,
                                 study_name=name)
            store.get_or_create_solution(store.get_dataset_group(group).id, solution, recipe, result.best_params,
                                         SolutionConfig().model_dump())
            status = "done"
    except Exception as exc:
        error = str(exc)[:500]
        raise
    finally:
        run = {"started": started, "finished": time.time(), "status": status, "error": error}
        if not set_study_attr(url, name, LAST_RUN_ATTR, run):  # the run failed before its study was made
            logger.warning("tune %s ended (%s) before its study was made: %s", name, status, error)


def _tune_run(study: dict[str, Any] | None, since: int, want: int, started: float, until: float) -> dict[str, Any]:
    """Where a console tune is: its trials so far and whether the page should poll again."""
    trials = [t for t in (study or {}).get("trials", []) if t["number"] >= since]
    finished = [t for t in trials if t["state"] in ("COMPLETE", "PRUNED", "FAIL")]
    last = ((study or {}).get("attrs") or {}).get(LAST_RUN_ATTR) or {}
    ended = bool(last) and float(last.get("started", 0)) >= started - 1
    running = any(t["state"] == "RUNNING" for t in trials)
    polling = not ended and time.time() < until and (len(finished) < want or running)
    return {"since": since, "want": want, "started": started, "until": until, "done": len(finished),
            "polling": polling, "ended": last if ended else None, "trials": trials}


@router.post("/solutions/tune")
def start_tune(request: Request, group: str, user: User, recipe: Annotated[str, Form(max_length=64)],
               metric: Annotated[str, Form(max_length=32)] = "ndcg@10", trials: Annotated[int, Form()] = 20,
               timeout: Annotated[float, Form()] = 300.0,
               solution: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Start tuning a recipe in the background (admins): ``recsmith tune``'s search, its study named
    ``GROUP:RECIPE:METRIC`` in the store's database; bad settings are a 400 before any job starts."""
    user.require("admin", group)
    _group_id(request, user, group)
    recipe, metric = canonical_name(recipe), canonical_metric(metric.strip())
    try:
        if not 1 <= trials <= TUNE_MAX_TRIALS:
            raise ConfigError(f"trials must be 1 to {TUNE_MAX_TRIALS}, got {trials}")
        if not 0 < timeout <= TUNE_MAX_SECONDS:
            raise ConfigError(f"timeout must be more than 0 and at most {TUNE_MAX_SECONDS:g} seconds, got {timeout:g}")
        check_settings(recipe, metric=metric, trials=trials, timeout=timeout)
    except ConfigError as exc:
        audit_action(request, user.principal.key_id, "solution.tune", f"dataset-groups/{group}/solutions/{recipe}",
                     outcome="failed", status=400, detail={"recipe": recipe, "metric": metric, "error": str(exc)})
        return error_page(request, 400, str(exc))
    name = study_name(group, recipe, metric)
    before = read_study(_study_url(request), name)
    since = len(before["trials"]) if before else 0
    solution = solution.strip() or recipe
    started = time.time()
    audit_action(request, user.principal.key_id, "solution.tune", f"dataset-groups/{group}/solutions/{solution}",
                 detail={"recipe": recipe, "metric": metric, "trials": trials, "timeout": timeout, "study": name,
                         "stage": "started"})
    client = request.client
    settings = request.app.state.settings
    request.app.state.jobs.submit(f"tune {name}", _run_tune, _store(request), settings, group, recipe, metric,
                                  trials, timeout, solution, name, started, user.principal.key_id,
                                  client.host if client else "console")
    until = started + timeout + TUNE_GRACE_SECONDS
    if not is_htmx(request):
        return RedirectResponse(f"/console/g/{group}/solutions/tune?study={name}", status_code=303)
    run = _tune_run(before, since, trials, started, until)
    run["polling"] = True
    return page(request, "solutions/_trials.html", status=202, group=group, name=name, study=before, run=run,
                solution=solution, may_change=True)


@router.get("/solutions/tune/trials")
def tune_trials(request: Request, group: str, user: User, study: str, since: int = 0, want: int = 0,
                started: float = 0.0, until: float = 0.0, solution: str = "") -> Response:
    """The fragment a tune polls: the study's trials since the run started, read from the study storage (so every
    worker sees them), and the best params with the button that trains a version with them."""
    _group_id(request, user, group)
    try:
        found = _group_study(request, group, study)
    except ConfigError:  # the study database is being made by the tune this polls: read it next time
        if not want:
            raise
        logger.debug("study %s not readable yet", study, exc_info=True)
        found = None
    run = _tune_run(found, since, want, started, until) if want else None
    return page(request, "solutions/_trials.html", group=group, name=study, study=found, run=run,
                solution=solution or (found or {}).get("recipe") or "", may_change=user.may("admin", group))
