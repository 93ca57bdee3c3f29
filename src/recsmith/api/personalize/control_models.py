"""Control-plane operations on models: recipes, solutions, solution versions and their metrics, campaigns, batch
inference jobs.

Each operation answers the shapes of botocore's ``personalize`` service model (2018-05-22) with recsmith's own
machinery: recipes from the registry (:data:`PERSONALIZE_RECIPES` maps Personalize's to ours), solutions and
versions from the store, trainings through :func:`~recsmith.jobs.training.start_training` run in the server's
background jobs (as the console trains), campaigns through the ``/v1`` routes' own functions (deploy, switch,
remove, and the status this process serves), batch inference jobs through
:func:`~recsmith.jobs.batch.create_batch_inference_job` and the server's batch runner.

Resources are found by kind and name (names are unique in a Personalize account, so a ``Create*`` refuses a name
any dataset group uses for that kind): ``solution/<solution>``, ``solution/<solution>/<version id>``,
``campaign/<name>``, ``batch-inference-job/<jobName>``, ``arn:aws:personalize:::recipe/<recipe>``. Times are epoch
seconds. Lists page with ``maxResults`` (at most 100) and ``nextToken``.

What recsmith cannot do is refused with an ``InvalidInputException`` naming the field and what to do instead
(``performHPO``, ``performAutoML``, ``eventType``, ``trainingMode`` ``UPDATE``...), never silently ignored; what
changes nothing here is accepted (``minProvisionedTPS``, ``campaignConfig.itemExplorationConfig``, ``roleArn``,
``tags``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa

from recsmith.api.personalize import resolve
from recsmith.api.personalize.arns import parse_arn
from recsmith.api.personalize.errors import AwsError, invalid_input, not_found
from recsmith.api.personalize.protocol import (
    Call,
    Operation,
    epoch,
    field,
    page,
    personalize_status,
    refuse_taken,
    registrar,
    resource_name,
)
from recsmith.api.routes.campaigns import campaign_view, deploy_campaign, remove_campaign, switch_campaign
from recsmith.data.readers import mask_url
from recsmith.errors import ConfigError, ConflictError, DataError, NotFoundError
from recsmith.jobs import batch
from recsmith.jobs.batch_io import OUTPUT_FORMATS
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.runs import ACTIVE, FAILED, IN_PROGRESS, PENDING
from recsmith.jobs.training import TrainingJob, start_training
from recsmith.recipes import available, create, recipe_class
from recsmith.serving import MAX_RESULTS as MAX_BATCH_RESULTS
from recsmith.serving.campaign import delete_solution as delete_solution_of
from recsmith.store.audit_records import acting_as

logger = logging.getLogger(__name__)

OPERATIONS: dict[str, Operation] = {}
operation = registrar(OPERATIONS)




class PersonalizeRecipe(NamedTuple):
    """One of Personalize's recipes as recsmith serves it."""

    recipe: str
    """The recsmith recipe that trains it (a registry name)."""
    recipe_type: str
    """Personalize's ``recipeType``: ``USER_PERSONALIZATION``, ``RELATED_ITEMS`` or ``PERSONALIZED_RANKING``."""


GENERAL_RECIPE = "als"
"""The recipe behind Personalize's general recipes (User-Personalization, Personalized-Ranking): ``als``, second to
``ease`` in the README's accuracy table on every dataset measured (ml-latest-small ndcg@10 0.3265 against 0.3559,
Last.fm 0.2204 against 0.2221) but, unlike ``ease`` (a dense items × items solve that refuses catalogues over
30,000 items), fit in seconds on any catalogue (5M events, 100k users × 20k items in 8 s), so a Personalize
application's solution trains whatever its size. ``recsmith-ease`` is there for catalogues that fit it."""

PERSONALIZE_RECIPES: dict[str, PersonalizeRecipe] = {
    "aws-user-personalization": PersonalizeRecipe(GENERAL_RECIPE, "USER_PERSONALIZATION"),
    "aws-user-personalization-v2": PersonalizeRecipe(GENERAL_RECIPE, "USER_PERSONALIZATION"),
    "aws-personalized-ranking": PersonalizeRecipe(GENERAL_RECIPE, "PERSONALIZED_RANKING"),
    "aws-personalized-ranking-v2": PersonalizeRecipe(GENERAL_RECIPE, "PERSONALIZED_RANKING"),
    "aws-sims": PersonalizeRecipe("item-knn", "RELATED_ITEMS"),
    "aws-popularity-count": PersonalizeRecipe("popularity", "USER_PERSONALIZATION"),
    "aws-trending-now": PersonalizeRecipe("trending", "USER_PERSONALIZATION"),
}
"""Personalize's recipes (``arn:aws:personalize:::recipe/<name>``) → the recsmith recipe that trains each.

Personalized-Ranking has no recipe of its own: every recsmith model ranks an input list (``GetPersonalizedRanking``
scores it with the version's recipe), so it is the general recipe, :data:`GENERAL_RECIPE`. Besides these, every
recipe of the registry is listed as ``recsmith-<name>`` (``recipe/recsmith-ease``), so each is reachable. A
solution's ``recipeArn`` in answers is the first name here for its recipe (``aws-user-personalization`` for
``als``), else ``recsmith-<name>``."""

RECSMITH_PREFIX = "recsmith-"
"""The prefix of the recipe names that are recsmith's own recipes."""

ROLE_ARN = re.compile(r"^arn:([a-z\d-]+):iam::\d{12}:role/?[A-Za-z_0-9+=,.@\-/]+$")
"""An IAM role ARN (the service model's ``RoleArn`` pattern)."""

METRIC_NAMES = {"precision": "precision_at_{k}", "ndcg": "normalized_discounted_cumulative_gain_at_{k}",
                "mrr": "mean_reciprocal_rank_at_{k}", "coverage": "coverage"}
"""recsmith's offline metrics (``name@k``) → Personalize's names in ``GetSolutionMetrics``; the others recsmith
measures (recall) have no Personalize name and are left out."""

METRICS_K = 10
"""The cut-off a version trained here is measured at: recsmith's standard (the console's and ``recsmith
schedule``'s ``ndcg@10``), so it compares with the group's other versions."""

PERSONALIZE_METRICS = ("precision@5", "precision@10", "precision@25", "recall@10", "ndcg@5", "ndcg@10", "ndcg@25",
                       "mrr@25", "coverage@25")
"""What a version trained here measures: the cut-offs ``GetSolutionMetrics`` reports (Personalize's 5, 10 and 25,
``mean_reciprocal_rank_at_25``, ``coverage``), and recsmith's standard ``recall@10`` beside ``ndcg@10``."""

_BATCH_STATUS = {PENDING: "PENDING", IN_PROGRESS: "IN PROGRESS", ACTIVE: "ACTIVE", FAILED: "CREATE FAILED"}
"""A batch inference job's statuses, as the service model documents them (``PENDING``, ``IN PROGRESS``...)."""
INT32_MAX = 2**31 - 1


def _refuse(body: dict[str, Any], names: dict[str, str], where: str = "") -> None:
    """Refuse the fields of ``names`` (field → why and what to do) that ``body`` sets (to anything but false or
    empty)."""
    for name, why in names.items():
        if body.get(name) not in (None, False, {}, []):
            raise invalid_input(f"{where}{name}: {why}")


def _groups(call: Call, arn: object = None, field_name: str = "datasetGroupArn") -> list[str]:
    """The dataset groups a list covers, the caller authorized on them: the one ``arn`` names; else every group for
    a key of every group, the key's own group for a key scoped to one."""
    if arn is not None:
        group = resolve.dataset_group(call.state, arn, field_name)
        call.authorize("admin", group)
        return [group]
    scoped = call.principal.dataset_group
    call.authorize("admin", scoped)
    names = [g.name for g in call.state.store.list_dataset_groups()]
    return [scoped] if scoped in names else [] if scoped else names


def _all_group_names(call: Call) -> list[str]:
    """Every dataset group (where a name is checked to be free: names are unique in the account)."""
    return [g.name for g in call.state.store.list_dataset_groups()]


# ---------------------------------------------------------------------------------------------------- recipes
def _authorize_account(call: Call) -> None:
    """Authorize an account-level read (the recipes): an admin key of every group on no group, a key scoped to one
    group on its own group (recipes are the same for every group)."""
    call.authorize("admin", call.principal.dataset_group)


def _recipes() -> dict[str, PersonalizeRecipe]:
    """Every recipe name the control plane knows → its recsmith recipe: :data:`PERSONALIZE_RECIPES`, then each
    registry recipe as ``recsmith-<name>``."""
    return PERSONALIZE_RECIPES | {f"{RECSMITH_PREFIX}{name}": PersonalizeRecipe(name, "USER_PERSONALIZATION")
                                  for name in available()}


def _recipe_of(arn: object, field_name: str = "recipeArn") -> str:
    """The recsmith recipe a recipe ARN names (``ResourceNotFoundException`` for one recsmith lacks)."""
    (name,) = parse_arn(arn, "recipe", field_name)
    found = _recipes().get(name)
    if found is None:
        raise not_found(f"{field_name}: the recipe {arn} does not exist here; ListRecipes lists them "
                        f"({', '.join(PERSONALIZE_RECIPES)} and recsmith's own as {RECSMITH_PREFIX}<name>)")
    return found.recipe


def _recipe_arn(call: Call, recipe: str) -> str:
    """The ARN answers give a recsmith recipe: its first Personalize name, else ``recsmith-<name>``."""
    name = next((name for name, alias in PERSONALIZE_RECIPES.items() if alias.recipe == recipe),
                f"{RECSMITH_PREFIX}{recipe}")
    return call.arns.make("recipe", name)


def _recipe_view(call: Call, name: str, alias: PersonalizeRecipe, *, full: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"name": name, "recipeArn": call.arns.make("recipe", name), "status": "ACTIVE"}
    if full:
        doc = (recipe_class(alias.recipe).__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else alias.recipe
        view |= {"algorithmArn": f"arn:aws:personalize:::algorithm/{RECSMITH_PREFIX}{alias.recipe}",
                 "recipeType": alias.recipe_type,
                 "description": f"{summary} (recsmith's {alias.recipe} recipe; hyperparameters: "
                                f"{', '.join(recipe_class(alias.recipe).Params.model_fields) or 'none'})"}
    return view


@operation
def list_recipes(call: Call) -> dict[str, Any]:
    """``ListRecipes``: Personalize's recipes recsmith maps, then recsmith's own (``recsmith-<name>``); none for a
    ``domain`` (recsmith has no domain recipes)."""
    _authorize_account(call)
    provider = field(call.body, "recipeProvider", str)
    if provider not in (None, "SERVICE"):
        raise invalid_input(f"recipeProvider: must be SERVICE, got {provider!r}")
    domain = field(call.body, "domain", str)
    recipes = [] if domain else [_recipe_view(call, name, alias, full=False) for name, alias in _recipes().items()]
    return page(call.body, recipes, "recipes")


@operation
def describe_recipe(call: Call) -> dict[str, Any]:
    """``DescribeRecipe``: the recipe, its type and the recsmith recipe (and hyperparameters) behind it."""
    _authorize_account(call)
    arn = field(call.body, "recipeArn", str, required=True)
    _recipe_of(arn)
    (name,) = parse_arn(arn, "recipe", "recipeArn")
    return {"recipe": _recipe_view(call, name, _recipes()[name], full=True)}


# -------------------------------------------------------------------------------------------------- solutions
def _solutions_named(call: Call, name: str) -> list[tuple[str, dict[str, Any]]]:
    """``(group, solution)`` of every dataset group's solution called ``name``."""
    store = call.state.store
    found = [(group, store.find_solution(store.get_dataset_group(group).id, name))
             for group in store.groups_with("solution", name)]
    return [(group, record) for group, record in found if record is not None]


def _all_solutions(call: Call, groups: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    store = call.state.store
    return [(group, record) for group in groups for record in store.list_solutions(store.get_dataset_group(group).id)]


def _solution(call: Call, arn: object, field_name: str = "solutionArn") -> tuple[str, dict[str, Any]]:
    """``(group, solution record)`` of a solution ARN, the caller authorized on the group."""
    (name,) = parse_arn(arn, "solution", field_name)
    matches = _solutions_named(call, name)
    group = resolve.one_group("solution", name, str(arn), [g for g, _ in matches])
    call.authorize("admin", group)
    return group, next(record for g, record in matches if g == group)


def _versions_of(call: Call, group: str, solution: str) -> list[dict[str, Any]]:
    """The versions of the group's solution ``solution``, oldest first."""
    store = call.state.store
    return [v for v in store.list_solution_versions(store.get_dataset_group(group).id)
            if v["solution_name"] == solution]


def _hyperparameters(recipe: str, values: dict[str, Any]) -> dict[str, Any]:
    """``algorithmHyperParameters`` (names → strings) as the recipe's params: each value JSON where it parses
    (``"50"``, ``"0.1"``, ``"true"``, ``"[1, 2]"``), else the text (``"bm25"``), checked by the recipe's params.

    Raises
    ------
    AwsError
        ``InvalidInputException`` naming the unknown names (and the recipe's), or what a value gets wrong.
    """
    where = "solutionConfig.algorithmHyperParameters"
    fields = recipe_class(recipe).Params.model_fields
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise invalid_input(f"{where}: recipe {recipe} has no hyperparameter {', '.join(map(repr, unknown))}; its "
                            f"hyperparameters: {', '.join(fields) or '(none)'}")
    params: dict[str, Any] = {}
    for key in values:
        text = field(values, key, str, required=True, where=f"{where}.")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    try:
        return create(recipe, **params).get_params()
    except ValueError as exc:  # ConfigError: the params model names the param and what is wrong with it
        raise invalid_input(f"{where}: {exc}") from None


def _strings(params: dict[str, Any]) -> dict[str, str]:
    """Params as Personalize's ``HyperParameters`` (strings: text as it is, anything else as JSON)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()}


def _version_summary(call: Call, version: dict[str, Any]) -> dict[str, Any]:
    summary = {"solutionVersionArn": call.arns.solution_version(version["solution_name"], version["id"]),
               "status": personalize_status(version["status"]), "trainingMode": "FULL", "trainingType": "MANUAL",
               "creationDateTime": epoch(version["created_at"]),
               "lastUpdatedDateTime": epoch(version["finished_at"] or version["started_at"] or version["created_at"])}
    if version["status"] == FAILED and version.get("error"):
        summary["failureReason"] = version["error"]
    return summary


def _solution_view(call: Call, group: str, record: dict[str, Any], *, full: bool) -> dict[str, Any]:
    created = epoch(record["created_at"])
    view: dict[str, Any] = {"name": record["name"], "solutionArn": call.arns.solution(record["name"]),
                            "status": "ACTIVE", "creationDateTime": created, "lastUpdatedDateTime": created,
                            "recipeArn": _recipe_arn(call, record["recipe"])}
    if full:
        view |= {"performHPO": False, "performAutoML": False, "performAutoTraining": False,
                 "performIncrementalUpdate": False, "datasetGroupArn": call.arns.dataset_group(group),
                 "solutionConfig": {"algorithmHyperParameters": _strings(record["params"] or {})}}
        versions = _versions_of(call, group, record["name"])
        if versions:
            view["latestSolutionVersion"] = _version_summary(call, versions[-1])
    return view


_UNSUPPORTED_SOLUTION = {
    "performHPO": "recsmith tunes hyperparameters with `recsmith tune --dataset-group GROUP --recipe RECIPE` (or the "
                  "console's Tune page), which saves the best ones as the solution's; create the solution without "
                  "performHPO, or give the values in solutionConfig.algorithmHyperParameters",
    "performAutoML": "recsmith does not choose a recipe: give recipeArn (`recsmith evaluate` compares recipes)",
    "performAutoTraining": "recsmith does not train on a schedule by itself: run `recsmith schedule` to retrain and "
                           "switch campaigns when the new version measures better; create the solution with "
                           "performAutoTraining false",
    "performIncrementalUpdate": "recsmith trains every version in full (campaigns serve items added since at once)",
    "eventType": "recsmith's solutions weigh event types (`recsmith train --event-weights`) but cannot train on one "
                 "type alone; leave eventType out to train on every interaction",
}
_UNSUPPORTED_CONFIG = {
    "hpoConfig": "recsmith does not tune during training: tune with `recsmith tune`",
    "autoMLConfig": "recsmith does not choose a recipe: give recipeArn",
    "eventValueThreshold": "recsmith does not drop interactions by value",
    "featureTransformationParameters": "recsmith's recipes take no feature transformation parameters",
    "eventsConfig": "recsmith's solutions weigh event types through `recsmith train --event-weights`",
    "optimizationObjective": "recsmith does not optimise for an item attribute",
    "trainingDataConfig": "recsmith trains on every column its recipe uses",
    "autoTrainingConfig": "recsmith does not train on a schedule by itself: run `recsmith schedule`",
}


@operation
def create_solution(call: Call) -> dict[str, Any]:
    """``CreateSolution``: ``name``, ``datasetGroupArn``, ``recipeArn`` (default ``aws-user-personalization``) and
    ``solutionConfig.algorithmHyperParameters`` (the recipe's params, as strings) → ``solutionArn``."""
    body = call.body
    group = resolve.dataset_group(call.state, field(body, "datasetGroupArn", str, required=True))
    call.authorize("admin", group)
    name = resource_name(body)
    _refuse(body, _UNSUPPORTED_SOLUTION)
    config = field(body, "solutionConfig", dict, default={})
    _refuse(config, _UNSUPPORTED_CONFIG, "solutionConfig.")
    recipe = _recipe_of(field(body, "recipeArn", str, default=call.arns.make("recipe", "aws-user-personalization")))
    params = _hyperparameters(recipe, field(config, "algorithmHyperParameters", dict, default={},
                                            where="solutionConfig."))
    refuse_taken("solution", name, (record["name"] for _, record in _solutions_named(call, name)))
    store = call.state.store
    store.get_or_create_solution(store.get_dataset_group(group).id, name, recipe, params,
                                 SolutionConfig().model_dump())
    return {"solutionArn": call.arns.solution(name)}


@operation
def describe_solution(call: Call) -> dict[str, Any]:
    """``DescribeSolution``, with the latest version's summary."""
    group, record = _solution(call, field(call.body, "solutionArn", str, required=True))
    return {"solution": _solution_view(call, group, record, full=True)}


@operation
def list_solutions(call: Call) -> dict[str, Any]:
    """``ListSolutions`` (of one dataset group with ``datasetGroupArn``)."""
    groups = _groups(call, field(call.body, "datasetGroupArn", str))
    return page(call.body, [_solution_view(call, group, record, full=False)
                             for group, record in _all_solutions(call, groups)], "solutions")


@operation
def delete_solution(call: Call) -> dict[str, Any]:
    """``DeleteSolution``, with its versions and their artifacts: refused (``ResourceInUseException``) while a
    campaign serves one of its versions or one trains, as in Personalize."""
    group, record = _solution(call, field(call.body, "solutionArn", str, required=True))
    try:
        delete_solution_of(call.state.store, group, record["name"])
    except ConflictError as exc:
        advice = (": delete them (DeleteCampaign) or switch them to another solution's version (UpdateCampaign) "
                  "first") if exc.campaigns else ""
        raise AwsError("ResourceInUseException", f"{exc}{advice}", 400) from None
    return {}


# ------------------------------------------------------------------------------------------ solution versions
def _version(call: Call, arn: object, field_name: str = "solutionVersionArn") -> dict[str, Any]:
    """The stored version a solution version ARN names (``solution/<solution>/<id>``: the id must be a version of
    that solution), the caller authorized on its group."""
    solution, version_id = parse_arn(arn, "solution", field_name, parts=2)
    if not version_id.isdigit() or not 1 <= int(version_id) <= INT32_MAX:
        raise invalid_input(f"{field_name}: {arn!r} is not the ARN of a solution version (…:solution/<solution>/<id>, "
                            "the id a number)")
    try:
        version = call.state.store.get_solution_version(int(version_id))
    except NotFoundError:
        raise not_found(f"the solution version {arn} does not exist") from None
    if version["solution_name"] != solution:
        raise not_found(f"the solution version {arn} does not exist: solution {solution!r} has no version "
                        f"{version_id}")
    call.authorize("admin", version["dataset_group"])
    return version


def _active(version: dict[str, Any]) -> None:
    """Refuse (``ResourceInUseException``) a version that is not ACTIVE (still training, or failed)."""
    if version["status"] != ACTIVE:
        raise AwsError("ResourceInUseException", f"solutionVersionArn: the solution version is "
                       f"{personalize_status(version['status'])}, not ACTIVE: use it once it has trained", 400)


def _version_view(call: Call, version: dict[str, Any]) -> dict[str, Any]:
    view = _version_summary(call, version) | {
        "solutionArn": call.arns.solution(version["solution_name"]), "performHPO": False, "performAutoML": False,
        "performIncrementalUpdate": False, "recipeArn": _recipe_arn(call, version["recipe"]),
        "datasetGroupArn": call.arns.dataset_group(version["dataset_group"]),
        "solutionConfig": {"algorithmHyperParameters": _strings(version["params"] or {})},
    }
    if version.get("name"):
        view["name"] = version["name"]
    if version["status"] == ACTIVE and version.get("total_seconds") is not None:
        view["trainingHours"] = float(version["total_seconds"]) / 3600
    return view


def _train(job: TrainingJob, actor: str) -> None:
    """A background training, its audit entries naming the caller's key."""
    with acting_as(actor):
        job.run()


@operation
def create_solution_version(call: Call) -> dict[str, Any]:
    """``CreateSolutionVersion``: train the solution (``trainingMode`` ``FULL``) in the server's background jobs,
    with offline metrics (:data:`METRICS_K`); the version exists at once, ``CREATE PENDING``, then ``CREATE
    IN_PROGRESS``, then ``ACTIVE`` or ``CREATE FAILED`` with its ``failureReason``."""
    body = call.body
    group, solution = _solution(call, field(body, "solutionArn", str, required=True))
    mode = field(body, "trainingMode", str, default="FULL")
    if mode != "FULL":
        raise invalid_input(f"trainingMode: recsmith trains every version in full (FULL), not {mode!r}; campaigns "
                            "serve items added after training at once")
    name = resource_name(body) if body.get("name") is not None else None
    store = call.state.store
    if name is not None:
        refuse_taken("solution version", name, (v["name"] for v in store.list_solution_versions()))
    job = start_training(store, call.state.settings, group, solution["recipe"],
                         config=SolutionConfig(**(solution["config"] or {})), solution_name=solution["name"],
                         with_metrics=True, k=METRICS_K, metrics=PERSONALIZE_METRICS)
    if name is not None:
        store.update_solution_version(job.version_id, name=name)
    call.state.jobs.submit(f"train solution version {job.version_id}", _train, job, call.principal.key_id)
    return {"solutionVersionArn": call.arns.solution_version(solution["name"], job.version_id)}


@operation
def describe_solution_version(call: Call) -> dict[str, Any]:
    """``DescribeSolutionVersion``: status (and ``failureReason``), recipe, group, params, training hours, times."""
    version = _version(call, field(call.body, "solutionVersionArn", str, required=True))
    return {"solutionVersion": _version_view(call, version)}


@operation
def list_solution_versions(call: Call) -> dict[str, Any]:
    """``ListSolutionVersions`` (of one solution with ``solutionArn``), oldest first."""
    arn = field(call.body, "solutionArn", str)
    if arn is not None:
        group, solution = _solution(call, arn)
        versions = _versions_of(call, group, solution["name"])
    else:
        store = call.state.store
        versions = [v for group in _groups(call)
                    for v in store.list_solution_versions(store.get_dataset_group(group).id)]
    return page(call.body, [_version_summary(call, v) for v in versions], "solutionVersions")


def personalize_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A version's offline metrics under Personalize's names (:data:`METRIC_NAMES`): ``ndcg@10`` →
    ``normalized_discounted_cumulative_gain_at_10``, ``coverage@k`` → ``coverage``."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name, _, k = key.partition("@")
        if name in METRIC_NAMES and k.isdigit() and isinstance(value, int | float) and not isinstance(value, bool):
            out[METRIC_NAMES[name].format(k=k)] = float(value)
    return out


@operation
def get_solution_metrics(call: Call) -> dict[str, Any]:
    """``GetSolutionMetrics``: the version's offline metrics (:func:`personalize_metrics`); ``ResourceInUseException``
    while it trains."""
    arn = field(call.body, "solutionVersionArn", str, required=True)
    version = _version(call, arn)
    if version["status"] in (PENDING, IN_PROGRESS):
        status = personalize_status(version["status"])
        raise AwsError("ResourceInUseException", f"solution version {arn} is {status}: its "
                       "metrics are measured as it trains; ask again once it is ACTIVE", 400)
    return {"solutionVersionArn": arn, "metrics": personalize_metrics(version.get("metrics") or {})}


# -------------------------------------------------------------------------------------------------- campaigns
def _campaign_config(body: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``minProvisionedTPS`` and ``campaignConfig`` checked (kept to describe the campaign; neither changes how
    it serves)."""
    tps = field(body, "minProvisionedTPS", int, where=where)
    if tps is not None and tps < 1:
        raise invalid_input(f"{where}minProvisionedTPS: must be at least 1, got {tps}")
    config = field(body, "campaignConfig", dict, default={}, where=where)
    _refuse(config, {"syncWithLatestSolutionVersion": "recsmith campaigns switch versions with UpdateCampaign or "
                     "`recsmith schedule`, not by themselves",
                     "rankingInfluence": "recsmith does not weigh items by freshness or popularity at request time"},
            f"{where}campaignConfig.")
    exploration = field(config, "itemExplorationConfig", dict, default={}, where=f"{where}campaignConfig.")
    for key in exploration:
        field(exploration, key, str, required=True, where=f"{where}campaignConfig.itemExplorationConfig.")
    out: dict[str, Any] = {}
    if tps is not None:
        out["minProvisionedTPS"] = tps
    if config:
        out["campaignConfig"] = config
    return out


def _version_arn(call: Call, version_id: int, known: dict[int, str] | None = None) -> str | None:
    """A version's ARN by id (``known``: solution names by version id, read once for a list)."""
    solution = (known or {}).get(version_id)
    if solution is None:
        try:
            solution = call.state.store.get_solution_version(version_id)["solution_name"]
        except NotFoundError:
            return None
    return call.arns.solution_version(solution, version_id)


def _campaign_view(call: Call, record: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """A campaign in Personalize's shape. Its status is what this server process serves (the ``/v1`` route's
    :func:`~recsmith.api.routes.campaigns.campaign_view`): ``CREATE IN_PROGRESS`` until it has loaded the campaign,
    then ``ACTIVE``; while a switch loads, ``ACTIVE`` (the old version answers) with ``latestCampaignUpdate``
    ``CREATE IN_PROGRESS``."""
    view = campaign_view(record, call.state.runtime)
    status = view["status"]
    out: dict[str, Any] = {"name": record["name"], "campaignArn": call.arns.campaign(record["name"]),
                           "status": "ACTIVE" if status == "UPDATE_IN_PROGRESS" else personalize_status(status),
                           "creationDateTime": epoch(record["created_at"]),
                           "lastUpdatedDateTime": epoch(record["updated_at"])}
    if status == FAILED and view.get("error"):
        out["failureReason"] = view["error"]
    if not full:
        return out
    kept = (record.get("config") or {}).get("personalize") or {}
    settings = {"minProvisionedTPS": kept.get("minProvisionedTPS", 1), "campaignConfig": kept.get("campaignConfig",
                                                                                                    {})}
    serving = view["serving_solution_version_id"]
    set_arn = call.arns.solution_version(record["solution"], record["solution_version_id"])
    out |= {"solutionVersionArn": (_version_arn(call, serving) if serving is not None else None) or set_arn,
            **settings}
    if record["updated_at"] != record["created_at"]:
        out["latestCampaignUpdate"] = {
            "solutionVersionArn": set_arn, **settings,
            "status": "CREATE IN_PROGRESS" if status == "UPDATE_IN_PROGRESS" else out["status"],
            "creationDateTime": epoch(record["updated_at"]), "lastUpdatedDateTime": epoch(record["updated_at"])}
    return out


def _campaign(call: Call) -> tuple[str, str, dict[str, Any]]:
    """``(group, name, record)`` of the body's ``campaignArn``, the caller authorized on the group."""
    group, name = resolve.campaign(call.state, field(call.body, "campaignArn", str, required=True))
    call.authorize("admin", group)
    return group, name, call.state.store.get_campaign(group, name)


@operation
def create_campaign(call: Call) -> dict[str, Any]:
    """``CreateCampaign``: deploy an ACTIVE solution version as campaign ``name`` (``minProvisionedTPS`` and
    ``campaignConfig.itemExplorationConfig`` are kept and change nothing) → ``campaignArn``; it is ``ACTIVE`` once
    the server has loaded it."""
    body = call.body
    version = _version(call, field(body, "solutionVersionArn", str, required=True))
    group = version["dataset_group"]
    name = resource_name(body)
    settings = _campaign_config(body)
    refuse_taken("campaign", name, (c["name"] for c in call.state.store.list_campaigns()))
    _active(version)
    deploy_campaign(call.state.store, call.state.runtime, group, name, int(version["id"]),
                    {"personalize": settings} if settings else None)
    return {"campaignArn": call.arns.campaign(name)}


@operation
def describe_campaign(call: Call) -> dict[str, Any]:
    """``DescribeCampaign``: the version it serves, its status here and its latest update."""
    _, _, record = _campaign(call)
    return {"campaign": _campaign_view(call, record, full=True)}


@operation
def list_campaigns(call: Call) -> dict[str, Any]:
    """``ListCampaigns`` (of one solution's versions with ``solutionArn``)."""
    arn = field(call.body, "solutionArn", str)
    store = call.state.store
    if arn is not None:
        group, solution = _solution(call, arn)
        records = [c for c in store.list_campaigns(group) if c["solution"] == solution["name"]]
    else:
        groups = set(_groups(call))
        records = [c for c in store.list_campaigns() if c["dataset_group"] in groups]
    return page(call.body, [_campaign_view(call, c, full=False) for c in records], "campaigns")


@operation
def update_campaign(call: Call) -> dict[str, Any]:
    """``UpdateCampaign``: switch to another ACTIVE version of the group (``solutionVersionArn``; it loads in the
    background and replaces the old one atomically) and/or new ``minProvisionedTPS`` / ``campaignConfig``."""
    group, name, record = _campaign(call)
    arn = field(call.body, "solutionVersionArn", str)
    version_id = None
    if arn is not None:
        version = _version(call, arn)
        if version["dataset_group"] != group:
            raise invalid_input(f"solutionVersionArn: {arn} is a version of dataset group "
                                f"{version['dataset_group']!r}; campaign {name!r} is of {group!r}")
        version_id = int(version["id"])
    settings = _campaign_config(call.body)
    config = None
    if settings:
        kept = dict(record.get("config") or {})
        config = kept | {"personalize": (kept.get("personalize") or {}) | settings}
    switch_campaign(call.state.store, call.state.runtime, group, name, solution_version_id=version_id, config=config)
    return {"campaignArn": call.arns.campaign(name)}


@operation
def delete_campaign(call: Call) -> dict[str, Any]:
    """``DeleteCampaign``: stop serving and delete the campaign (its version stays)."""
    group, name, _ = _campaign(call)
    remove_campaign(call.state.store, call.state.runtime, group, name)
    return {}


# --------------------------------------------------------------------------------------- batch inference jobs
def _named_jobs(call: Call, groups: Iterable[str]) -> list[dict[str, Any]]:
    """The groups' batch inference jobs that have a name (made here; ``/v1``'s jobs have none, nor an ARN)."""
    store = call.state.store
    return [job for group in groups for job in store.list_batch_jobs(store.get_dataset_group(group).id, "inference")
            if job.get("name")]


def _batch_job(call: Call) -> dict[str, Any]:
    """The job the body's ``batchInferenceJobArn`` names, the caller authorized on its group."""
    arn = field(call.body, "batchInferenceJobArn", str, required=True)
    (name,) = parse_arn(arn, "batch-inference-job", "batchInferenceJobArn")
    found = [job for job in _named_jobs(call, _all_group_names(call)) if job["name"] == name]
    if not found:
        raise not_found(f"the batch inference job {arn} does not exist")
    call.authorize("admin", found[0]["dataset_group"])
    return found[0]


def _output_path(output: str, source: str) -> str:
    """Where a job writes: ``output`` when it names a file (``.jsonl``, ``.json``, ``.parquet``), else a folder, as
    in Personalize, and the file in it is the input's name plus ``.out.jsonl`` (Personalize's ``.out``, with the
    extension recsmith's outputs end in)."""
    if output.lower().endswith(OUTPUT_FORMATS):
        return output
    return f"{output.rstrip('/')}/{source.rstrip('/').rsplit('/', 1)[-1]}.out.jsonl"


def _s3_path(body: dict[str, Any], key: str, inner: str) -> str:
    where = f"{key}.{inner}."
    data = field(field(body, key, dict, required=True), inner, dict, required=True, where=f"{key}.")
    _refuse(data, {"kmsKeyArn": "recsmith does not encrypt batch files with KMS keys: leave kmsKeyArn out (encrypt "
                                "the bucket, or set RECSMITH_ENCRYPTION_KEY for recsmith's own artifacts)"}, where)
    return field(data, "path", str, required=True, where=where)


def _job_view(call: Call, job: dict[str, Any], versions: dict[int, str], *, full: bool) -> dict[str, Any]:
    view = batch.job_view(job)  # input and output with any credentials masked
    config = view["config"]
    kept = config.get("personalize") or {}
    out: dict[str, Any] = {"jobName": job["name"], "batchInferenceJobArn": call.arns.make("batch-inference-job",
                                                                                          job["name"]),
                           "status": _BATCH_STATUS.get(job["status"], job["status"]),
                           "creationDateTime": epoch(job["created_at"]),
                           "lastUpdatedDateTime": epoch(job["finished_at"] or job["started_at"] or job["created_at"]),
                           "batchInferenceJobMode": "BATCH_INFERENCE"}
    arn = _version_arn(call, int(job["solution_version_id"]), versions)
    if arn is not None:
        out["solutionVersionArn"] = arn
    if job["status"] == FAILED and job.get("error"):
        out["failureReason"] = job["error"]
    if full:
        out |= {"numResults": config.get("num_results"), "jobInput": {"s3DataSource": {"path": view["input"]}},
                "jobOutput": {"s3DataDestination": {"path": kept.get("output") or view["output"]}}}
        if config.get("filter"):
            out["filterArn"] = call.arns.filter(config["filter"])
        if kept.get("roleArn"):
            out["roleArn"] = kept["roleArn"]
        if kept.get("batchInferenceJobConfig"):
            out["batchInferenceJobConfig"] = kept["batchInferenceJobConfig"]
    return out


@operation
def create_batch_inference_job(call: Call) -> dict[str, Any]:
    """``CreateBatchInferenceJob``: recommendations for every line of ``jobInput.s3DataSource.path`` (JSON Lines of
    ``{"userId"}``, ``{"itemId"}`` or ``{"userId", "itemList"}``, a path or fsspec URL the server reads) written to
    ``jobOutput.s3DataDestination.path`` (a file, or a folder as in Personalize: see :func:`_output_path`), by the
    server's batch runner → ``batchInferenceJobArn``. ``roleArn`` is kept and not used."""
    body = call.body
    version = _version(call, field(body, "solutionVersionArn", str, required=True))
    group = version["dataset_group"]
    name = resource_name(body, "jobName")
    role = field(body, "roleArn", str, required=True)
    if not ROLE_ARN.match(role):
        raise invalid_input(f"roleArn: {role[:300]!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>); "
                            "recsmith keeps it and uses no role")
    mode = field(body, "batchInferenceJobMode", str, default="BATCH_INFERENCE")
    if mode != "BATCH_INFERENCE":
        raise invalid_input(f"batchInferenceJobMode: recsmith makes recommendations (BATCH_INFERENCE), not {mode!r}")
    _refuse(body, {"themeGenerationConfig": "recsmith does not generate themes"})
    job_config = field(body, "batchInferenceJobConfig", dict, default={})
    _refuse(job_config, {"rankingInfluence": "recsmith does not weigh items by freshness or popularity"},
            "batchInferenceJobConfig.")
    source = _s3_path(body, "jobInput", "s3DataSource")
    given = _s3_path(body, "jobOutput", "s3DataDestination")
    filter_arn = field(body, "filterArn", str)
    num_results = field(body, "numResults", int, default=25)
    if not 1 <= num_results <= MAX_BATCH_RESULTS:
        raise invalid_input(f"numResults: must be 1 to {MAX_BATCH_RESULTS}, got {num_results}")
    store = call.state.store
    refuse_taken("batch inference job", name, (job["name"] for job in _named_jobs(call, _all_group_names(call))))
    _active(version)
    try:
        job = batch.create_batch_inference_job(
            store, call.state.settings, group=group, solution_version_id=int(version["id"]), input=source,
            output=_output_path(given, source), num_results=num_results,
            filter=None if filter_arn is None else resolve.filter_name(filter_arn))
    except DataError as exc:  # the input cannot be found or read
        raise invalid_input(f"jobInput.s3DataSource.path: {exc}") from None
    except ConfigError as exc:  # the version and numResults are checked above: what is left is the output
        raise invalid_input(f"jobOutput.s3DataDestination.path: {exc}") from None
    job_id = int(job["id"])
    config = store.get_batch_job(job_id)["config"] | {"personalize": {
        "roleArn": role, "output": mask_url(given), "batchInferenceJobConfig": job_config}}
    try:
        store.update_batch_job(job_id, name=name, config=config)
    except sa.exc.IntegrityError:  # another call took the name meanwhile (the column is unique): this job never runs
        store.update_batch_job(job_id, status=FAILED, error=f"the name {name!r} was taken meanwhile")
        refuse_taken("batch inference job", name, [name])
    call.state.batch.submit(job_id)
    return {"batchInferenceJobArn": call.arns.make("batch-inference-job", name)}


def _version_names(call: Call) -> dict[int, str]:
    return {int(v["id"]): v["solution_name"] for v in call.state.store.list_solution_versions()}


@operation
def describe_batch_inference_job(call: Call) -> dict[str, Any]:
    """``DescribeBatchInferenceJob``: status (``PENDING``, ``IN PROGRESS``, ``ACTIVE``, ``CREATE FAILED``), input,
    output, version, filter."""
    job = _batch_job(call)
    return {"batchInferenceJob": _job_view(call, job, {}, full=True)}


@operation
def list_batch_inference_jobs(call: Call) -> dict[str, Any]:
    """``ListBatchInferenceJobs`` (of one solution version with ``solutionVersionArn``), oldest first."""
    arn = field(call.body, "solutionVersionArn", str)
    if arn is not None:
        version = _version(call, arn)
        jobs = [job for job in _named_jobs(call, [version["dataset_group"]])
                if int(job["solution_version_id"]) == int(version["id"])]
    else:
        jobs = _named_jobs(call, _groups(call))
    versions = _version_names(call)
    return page(call.body, [_job_view(call, job, versions, full=False) for job in jobs], "batchInferenceJobs")
