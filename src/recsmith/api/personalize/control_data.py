"""Control-plane operations on data: dataset groups, schemas, datasets, dataset import jobs, event trackers and
filters, with the input and output shapes of botocore's ``personalize`` service model (2018-05-22).

Names are unique in an account for each kind of resource, as in Personalize: a create whose name a resource of
that kind has, in any dataset group, is a ``ResourceAlreadyExistsException``. What is made at once is ``ACTIVE`` at
once; an import job runs in the background of the server process (as the console's uploads do) and its status goes
``CREATE IN_PROGRESS`` → ``ACTIVE`` or ``CREATE FAILED`` (:func:`personalize_status`), with the error as
``failureReason``. Each operation checks the caller's key with ``call.authorize("admin", group)``, ``group`` being
the dataset group it acts on (None for the account's schemas, and for lists of every group), before it changes
anything.

The lists take ``maxResults`` (1-100, default 100) and page with ``nextToken`` (an offset in the list, which is in
the order the resources were made; a token that is not one of these starts from the beginning).

Datasets made outside this API (``recsmith import``, real-time events) are listed too: they have no registered
schema (no ``schemaArn``), and their name is ``<group>-<type>``.
"""

from __future__ import annotations

import logging
from typing import Any

from recsmith.api.personalize import resolve
from recsmith.api.personalize.arns import parse_arn
from recsmith.api.personalize.errors import AwsError, invalid_input, not_found
from recsmith.api.personalize.protocol import (
    Call,
    Operation,
    already_exists,
    epoch,
    field,
    page,
    personalize_status,
    registrar,
    resource_name,
)
from recsmith.errors import ConflictError, FilterError, NotFoundError, RecsmithError, SchemaError
from recsmith.jobs.importing import import_dataset, record_import_job
from recsmith.jobs.runs import fail_abandoned_jobs
from recsmith.store.audit_records import acting_as
from recsmith.store.schema_registry_records import DOMAINS
from recsmith.store.store import UNFINISHED, Store

logger = logging.getLogger(__name__)

OPERATIONS: dict[str, Operation] = {}
operation = registrar(OPERATIONS)

DATASET_TYPES = {"interactions": "Interactions", "items": "Items", "users": "Users"}
"""recsmith's dataset types and Personalize's names of them (``datasetType``; the ARN has them upper-case)."""
IMPORT_MODES = {"FULL": "full", "INCREMENTAL": "incremental"}
"""Personalize's ``importMode`` and recsmith's import modes (:data:`recsmith.jobs.importing.MODES`)."""
MAX_SCHEMA_CHARS = 20_000
"""The longest Avro schema Personalize takes (botocore's ``AvroSchema``)."""
MAX_FILTER_CHARS = 2_500
"""The longest filter expression Personalize takes (botocore's ``FilterExpression``)."""




def _store(call: Call) -> Store:
    return call.state.store


def _group_arn_field(call: Call, required: bool) -> str | None:
    """The dataset group that ``datasetGroupArn`` names (``required`` or optional)."""
    arn = field(call.body, "datasetGroupArn", str, required=required)
    return None if arn is None else resolve.dataset_group(call.state, arn)


def _summaries(items: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{k: item[k] for k in keys if item.get(k) is not None} for item in items]


# ------------------------------------------------------------------------------------------ dataset groups
def _group(call: Call, name: str) -> dict[str, Any]:
    group = _store(call).get_dataset_group(name)
    created = epoch(group.created_at)
    return {"name": group.name, "datasetGroupArn": call.arns.dataset_group(group.name), "status": "ACTIVE",
            "creationDateTime": created, "lastUpdatedDateTime": created}


@operation
def create_dataset_group(call: Call) -> dict[str, Any]:
    """``CreateDatasetGroup``: ``name`` → ``datasetGroupArn`` (``roleArn``, ``kmsKeyArn``, ``domain`` and ``tags``
    are accepted and not used)."""
    name = resource_name(call.body, "name", "dataset group")
    for ignored in ("roleArn", "kmsKeyArn", "domain"):
        field(call.body, ignored, str)
    call.authorize("admin", None)
    if name in {g.name for g in _store(call).list_dataset_groups()}:
        raise already_exists(f"a dataset group named {name!r} exists already")
    _store(call).create_dataset_group(name)
    return {"datasetGroupArn": call.arns.dataset_group(name)}


@operation
def describe_dataset_group(call: Call) -> dict[str, Any]:
    """``DescribeDatasetGroup``."""
    name = resolve.dataset_group(call.state, field(call.body, "datasetGroupArn", str, required=True))
    call.authorize("admin", name)
    return {"datasetGroup": _group(call, name)}


@operation
def list_dataset_groups(call: Call) -> dict[str, Any]:
    """``ListDatasetGroups``, in the order they were made."""
    call.authorize("admin", None)
    groups = sorted(_store(call).list_dataset_groups(), key=lambda g: (g.created_at, g.id))
    return page(call.body, [_group(call, g.name) for g in groups], "datasetGroups")


@operation
def delete_dataset_group(call: Call) -> dict[str, Any]:
    """``DeleteDatasetGroup``: refused (``ResourceInUseException``) while it has campaigns, as in Personalize."""
    name = resolve.dataset_group(call.state, field(call.body, "datasetGroupArn", str, required=True))
    call.authorize("admin", name)
    fail_abandoned_jobs(_store(call))  # a job whose process is gone no longer holds the group
    call.state.runtime.delete_dataset_group(name, force=False)
    return {}


# ------------------------------------------------------------------------------------------------ schemas
def _schema_name(call: Call) -> str:
    return parse_arn(field(call.body, "schemaArn", str, required=True), "schema", "schemaArn")[0]


def _schema(call: Call, record: dict[str, Any]) -> dict[str, Any]:
    created = epoch(record["created_at"])
    out = {"name": record["name"], "schemaArn": call.arns.make("schema", record["name"]),
           "schema": record["definition"], "creationDateTime": created, "lastUpdatedDateTime": created}
    if record["domain"]:
        out["domain"] = record["domain"]
    return out


@operation
def create_schema(call: Call) -> dict[str, Any]:
    """``CreateSchema``: ``name``, ``schema`` (Avro JSON text, checked by recsmith's schema parser), ``domain`` →
    ``schemaArn``."""
    name = resource_name(call.body, "name", "schema")
    definition = field(call.body, "schema", str, required=True)
    if len(definition) > MAX_SCHEMA_CHARS:
        raise invalid_input(f"schema: at most {MAX_SCHEMA_CHARS} characters, got {len(definition)}")
    domain = field(call.body, "domain", str)
    if domain is not None and domain not in DOMAINS:
        raise invalid_input(f"domain: must be one of {', '.join(DOMAINS)}, got {domain!r}")
    call.authorize("admin", None)
    try:
        _store(call).create_aws_schema(name, definition, domain)
    except SchemaError as exc:
        message = str(exc)
        raise invalid_input(message if message.startswith("schema") else f"schema: {message}") from None
    except ConflictError as exc:
        raise already_exists(str(exc)) from None
    return {"schemaArn": call.arns.make("schema", name)}


@operation
def describe_schema(call: Call) -> dict[str, Any]:
    """``DescribeSchema``."""
    name = _schema_name(call)
    call.authorize("admin", None)
    try:
        return {"schema": _schema(call, _store(call).get_aws_schema(name))}
    except NotFoundError:
        raise not_found(f"the schema {call.body['schemaArn']} does not exist") from None


@operation
def list_schemas(call: Call) -> dict[str, Any]:
    """``ListSchemas``, in the order they were made."""
    call.authorize("admin", None)
    schemas = [_schema(call, record) for record in _store(call).list_aws_schemas()]
    return page(call.body, _summaries(schemas, ("name", "schemaArn", "creationDateTime",
                                                       "lastUpdatedDateTime", "domain")), "schemas")


@operation
def delete_schema(call: Call) -> dict[str, Any]:
    """``DeleteSchema``: refused (``ResourceInUseException``) while a dataset made from it has it."""
    name = _schema_name(call)
    call.authorize("admin", None)
    try:
        _store(call).delete_aws_schema(name)
    except NotFoundError:
        raise not_found(f"the schema {call.body['schemaArn']} does not exist") from None
    return {}


# ----------------------------------------------------------------------------------------------- datasets
def _dataset_type(value: str, name: str) -> str:
    """recsmith's dataset type of Personalize's ``Interactions``, ``Items``, ``Users`` (any case)."""
    dataset_type = value.lower()
    if dataset_type not in DATASET_TYPES:
        raise invalid_input(f"{name}: must be one of {', '.join(DATASET_TYPES.values())}, got {value!r}")
    return dataset_type


def _dataset_arn(call: Call, group: str, dataset_type: str) -> str:
    return call.arns.make("dataset", group, dataset_type.upper())


def _dataset(call: Call, name: str = "datasetArn", *, required: bool = True) -> tuple[str, str] | None:
    """``(group, dataset type)`` of the dataset the ARN in field ``name`` names (404 when there is none)."""
    arn = field(call.body, name, str, required=required)
    if arn is None:
        return None
    group, kind = parse_arn(arn, "dataset", name, parts=2)
    dataset_type = _dataset_type(kind, name)
    store = _store(call)
    try:
        group_id = store.get_dataset_group(group).id
    except NotFoundError:
        raise not_found(f"the dataset {arn} does not exist: there is no dataset group {group!r}") from None
    if store.get_dataset(group_id, dataset_type) is None:
        raise not_found(f"the dataset {arn} does not exist")
    return group, dataset_type


def _dataset_view(call: Call, record: dict[str, Any]) -> dict[str, Any]:
    group, dataset_type = record["dataset_group"], record["dataset_type"]
    out = {"name": record["name"] or f"{group}-{dataset_type}",
           "datasetArn": _dataset_arn(call, group, dataset_type), "datasetGroupArn": call.arns.dataset_group(group),
           "datasetType": DATASET_TYPES[dataset_type], "status": "ACTIVE",
           "creationDateTime": epoch(record["created_at"]), "lastUpdatedDateTime": epoch(record["updated_at"])}
    if record["schema"]:
        out["schemaArn"] = call.arns.make("schema", record["schema"])
    return out


@operation
def create_dataset(call: Call) -> dict[str, Any]:
    """``CreateDataset``: ``name``, ``schemaArn``, ``datasetGroupArn``, ``datasetType`` → ``datasetArn``
    (``dataset/<group>/<TYPE>``); the dataset gets a copy of the registered schema."""
    name = resource_name(call.body, "name", "dataset")
    schema = _schema_name(call)
    dataset_type = _dataset_type(field(call.body, "datasetType", str, required=True), "datasetType")
    group = _group_arn_field(call, required=True)
    assert group is not None
    call.authorize("admin", group)
    try:
        _store(call).create_named_dataset(group, dataset_type, name, schema)
    except SchemaError as exc:
        raise invalid_input(f"schemaArn: schema {schema!r} cannot make a {DATASET_TYPES[dataset_type]} dataset: "
                            f"{exc}") from None
    except ConflictError as exc:
        raise already_exists(str(exc)) from None
    except NotFoundError as exc:
        raise not_found(f"schemaArn: {exc}") from None
    return {"datasetArn": _dataset_arn(call, group, dataset_type)}


@operation
def describe_dataset(call: Call) -> dict[str, Any]:
    """``DescribeDataset``."""
    found = _dataset(call)
    assert found is not None
    group, dataset_type = found
    call.authorize("admin", group)
    record = next(d for d in _store(call).named_datasets(group) if d["dataset_type"] == dataset_type)
    return {"dataset": _dataset_view(call, record)}


@operation
def list_datasets(call: Call) -> dict[str, Any]:
    """``ListDatasets`` of a dataset group (``datasetGroupArn``), or of every group."""
    group = _group_arn_field(call, required=False)
    call.authorize("admin", group)
    datasets = [_dataset_view(call, record) for record in _store(call).named_datasets(group)]
    return page(call.body, _summaries(datasets, ("name", "datasetArn", "datasetType", "status",
                                                         "creationDateTime", "lastUpdatedDateTime")), "datasets")


@operation
def delete_dataset(call: Call) -> dict[str, Any]:
    """``DeleteDataset``: the dataset, its schema and its data; refused (``ResourceInUseException``) while one of
    its import jobs or a training of its group has not ended."""
    found = _dataset(call)
    assert found is not None
    group, dataset_type = found
    call.authorize("admin", group)
    fail_abandoned_jobs(_store(call))  # a job whose process is gone no longer holds the dataset
    _store(call).delete_dataset(group, dataset_type)
    return {}


# ------------------------------------------------------------------------------------- dataset import jobs
def run_import(store: Store, group: str, dataset_type: str, source: str, mode: str, job_id: int,
               actor: str) -> None:
    """A ``CreateDatasetImportJob`` (in the background): :func:`~recsmith.jobs.importing.import_dataset` of the
    recorded job, which records how it ended; the audit entry names the key."""
    try:
        with acting_as(actor):
            import_dataset(store, group, dataset_type, source, mode=mode, job_id=job_id)  # type: ignore[arg-type]
    except RecsmithError as exc:  # bad data: the job's row says why
        logger.info("import job %s (CreateDatasetImportJob) failed: %s", job_id, str(exc).splitlines()[0])


def _import_job(call: Call) -> dict[str, Any]:
    """The import job the ``datasetImportJobArn`` names (404 when there is none)."""
    arn = field(call.body, "datasetImportJobArn", str, required=True)
    (name,) = parse_arn(arn, "dataset-import-job", "datasetImportJobArn")
    job = _store(call).import_job_named(name)
    if job is None:
        raise not_found(f"the dataset import job {arn} does not exist")
    return job


def _import_view(call: Call, job: dict[str, Any]) -> dict[str, Any]:
    created = epoch(job["created_at"])
    out = {"jobName": job["name"], "datasetImportJobArn": call.arns.make("dataset-import-job", job["name"]),
           "datasetArn": _dataset_arn(call, job["dataset_group"], job["dataset_type"]),
           "dataSource": {"dataLocation": job["source"]}, "status": personalize_status(job["status"]),
           "creationDateTime": created, "lastUpdatedDateTime": epoch(job["finished_at"]) or created,
           "importMode": job["mode"].upper(), "publishAttributionMetricsToS3": False}
    if job["error"]:
        out["failureReason"] = job["error"]
    return out


@operation
def create_dataset_import_job(call: Call) -> dict[str, Any]:
    """``CreateDatasetImportJob``: ``jobName``, ``datasetArn``, ``dataSource.dataLocation`` (a local path or an
    fsspec URL: CSV, Parquet, JSON Lines), ``importMode`` (``FULL``, the default, or ``INCREMENTAL``) →
    ``datasetImportJobArn``; ``roleArn`` is accepted and not used. The job is recorded with its name at once and
    runs in the background of this server process."""
    name = resource_name(call.body, "jobName", "import job")
    found = _dataset(call)
    assert found is not None
    group, dataset_type = found
    source = field(call.body, "dataSource", dict, required=True)
    location = field(source, "dataLocation", str, required=True, where="dataSource.")
    if not location.strip():
        raise invalid_input("dataSource.dataLocation: must name a file, folder or URL")
    mode_name = field(call.body, "importMode", str, default="FULL")
    mode = IMPORT_MODES.get(mode_name)
    if mode is None:
        raise invalid_input(f"importMode: must be one of {', '.join(IMPORT_MODES)}, got {mode_name!r}")
    field(call.body, "roleArn", str)
    field(call.body, "publishAttributionMetricsToS3", bool)
    call.authorize("admin", group)
    store = _store(call)
    if store.import_job_named(name) is not None:
        raise already_exists(f"a dataset import job named {name!r} exists already")
    job_id = record_import_job(store, group, dataset_type, location, mode)
    try:
        store.name_import_job(job_id, name)
    except ConflictError as exc:  # named meanwhile by another call
        raise already_exists(str(exc)) from None
    try:
        call.state.jobs.submit(f"import job {job_id} ({name})", run_import, store, group, dataset_type, location,
                               mode, job_id, call.principal.key_id)
    except RuntimeError:  # the server is stopping: it takes no new jobs
        store.fail_abandoned_job("import", job_id, "the server was stopping when the job was created; create "
                                 "another job")
        raise AwsError("ServiceUnavailableException", "the server is stopping and takes no new import jobs: create "
                       "the job again (under another name) once it has restarted", 503) from None
    return {"datasetImportJobArn": call.arns.make("dataset-import-job", name)}


@operation
def describe_dataset_import_job(call: Call) -> dict[str, Any]:
    """``DescribeDatasetImportJob``: its status (:func:`personalize_status`) and, once failed, ``failureReason``."""
    job = _import_job(call)
    call.authorize("admin", job["dataset_group"])
    if job["status"] in UNFINISHED and fail_abandoned_jobs(_store(call)):  # its process may be gone
        job = _import_job(call)
    return {"datasetImportJob": _import_view(call, job)}


@operation
def list_dataset_import_jobs(call: Call) -> dict[str, Any]:
    """``ListDatasetImportJobs`` of a dataset (``datasetArn``), or of every dataset; the jobs made with this API
    (those with a name), in the order they were made."""
    found = _dataset(call, required=False)
    group = found[0] if found else None
    call.authorize("admin", group)
    store = _store(call)
    groups = [store.get_dataset_group(group)] if group is not None else store.list_dataset_groups()
    jobs = [job | {"dataset_group": g.name} for g in groups for job in store.list_import_jobs(g.id)
            if job["name"] is not None and (found is None or job["dataset_type"] == found[1])]
    jobs.sort(key=lambda job: job["id"])
    views = [_import_view(call, job) for job in jobs]
    return page(call.body, _summaries(views, (
        "datasetImportJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime", "failureReason",
        "importMode")), "datasetImportJobs")


# ----------------------------------------------------------------------------------------- event trackers
def _tracker(call: Call) -> dict[str, Any]:
    arn = field(call.body, "eventTrackerArn", str, required=True)
    (name,) = parse_arn(arn, "event-tracker", "eventTrackerArn")
    try:
        return _store(call).get_event_tracker(name)
    except NotFoundError:
        raise not_found(f"the event tracker {arn} does not exist") from None


def _tracker_view(call: Call, tracker: dict[str, Any]) -> dict[str, Any]:
    created = epoch(tracker["created_at"])
    return {"name": tracker["name"], "eventTrackerArn": call.arns.make("event-tracker", tracker["name"]),
            "accountId": call.arns.account, "trackingId": tracker["tracking_id"],
            "datasetGroupArn": call.arns.dataset_group(tracker["dataset_group"]), "status": "ACTIVE",
            "creationDateTime": created, "lastUpdatedDateTime": created}


@operation
def create_event_tracker(call: Call) -> dict[str, Any]:
    """``CreateEventTracker``: ``name``, ``datasetGroupArn`` → ``eventTrackerArn`` (``event-tracker/<name>``) and
    the ``trackingId`` that ``PutEvents`` sends; a group has one tracker at most."""
    name = resource_name(call.body, "name", "event tracker")
    group = _group_arn_field(call, required=True)
    call.authorize("admin", group)
    try:
        tracker = _store(call).create_event_tracker(str(group), name)
    except ConflictError as exc:
        raise already_exists(str(exc)) from None
    return {"eventTrackerArn": call.arns.make("event-tracker", name), "trackingId": tracker["tracking_id"]}


@operation
def describe_event_tracker(call: Call) -> dict[str, Any]:
    """``DescribeEventTracker``."""
    tracker = _tracker(call)
    call.authorize("admin", tracker["dataset_group"])
    return {"eventTracker": _tracker_view(call, tracker)}


@operation
def list_event_trackers(call: Call) -> dict[str, Any]:
    """``ListEventTrackers`` of a dataset group (``datasetGroupArn``), or of every group."""
    group = _group_arn_field(call, required=False)
    call.authorize("admin", group)
    trackers = [_tracker_view(call, t) for t in _store(call).list_event_trackers(group)]
    keys = ("name", "eventTrackerArn", "status", "creationDateTime", "lastUpdatedDateTime")
    return page(call.body, _summaries(trackers, keys), "eventTrackers")


@operation
def delete_event_tracker(call: Call) -> dict[str, Any]:
    """``DeleteEventTracker``: its tracking id is refused from then on (the events it brought stay)."""
    tracker = _tracker(call)
    call.authorize("admin", tracker["dataset_group"])
    _store(call).delete_event_tracker(tracker["name"])
    return {}


# ------------------------------------------------------------------------------------------------ filters
def _filter(call: Call) -> dict[str, Any]:
    arn = field(call.body, "filterArn", str, required=True)
    name = resolve.filter_name(arn)
    group = resolve.one_group("filter", name, arn, _store(call).groups_with("filter", name))
    return _store(call).get_filter(group, name)


def _filter_view(call: Call, record: dict[str, Any]) -> dict[str, Any]:
    created = epoch(record["created_at"])
    return {"name": record["name"], "filterArn": call.arns.filter(record["name"]), "creationDateTime": created,
            "lastUpdatedDateTime": created, "datasetGroupArn": call.arns.dataset_group(record["dataset_group"]),
            "filterExpression": record["expression"], "status": "ACTIVE"}


@operation
def create_filter(call: Call) -> dict[str, Any]:
    """``CreateFilter``: ``name``, ``datasetGroupArn``, ``filterExpression`` (Personalize's filter grammar, checked
    against the group's schemas) → ``filterArn``."""
    name = resource_name(call.body, "name", "filter")
    group = _group_arn_field(call, required=True)
    assert group is not None
    expression = field(call.body, "filterExpression", str, required=True)
    if len(expression) > MAX_FILTER_CHARS:
        raise invalid_input(f"filterExpression: at most {MAX_FILTER_CHARS} characters, got {len(expression)}")
    call.authorize("admin", group)
    store = _store(call)
    held = store.groups_with("filter", name)
    if held:
        raise already_exists(f"a filter named {name!r} exists already (in dataset group {held[0]!r})")
    try:
        store.create_filter(group, name, expression)
    except FilterError as exc:
        raise invalid_input(f"filterExpression: {exc}") from None
    return {"filterArn": call.arns.filter(name)}


@operation
def describe_filter(call: Call) -> dict[str, Any]:
    """``DescribeFilter``."""
    record = _filter(call)
    call.authorize("admin", record["dataset_group"])
    return {"filter": _filter_view(call, record)}


@operation
def list_filters(call: Call) -> dict[str, Any]:
    """``ListFilters`` of a dataset group (``datasetGroupArn``), or of every group (in the order they were made:
    the answer's list is ``Filters``, as Personalize spells it)."""
    group = _group_arn_field(call, required=False)
    call.authorize("admin", group)
    store = _store(call)
    groups = [group] if group is not None else [g.name for g in store.list_dataset_groups()]
    records = sorted((r for g in groups for r in store.list_filters(g)), key=lambda r: (r["created_at"], r["name"]))
    views = [_filter_view(call, r) for r in records]
    return page(call.body, _summaries(views, ("name", "filterArn", "creationDateTime", "lastUpdatedDateTime",
                                                     "datasetGroupArn", "status")), "Filters")


@operation
def delete_filter(call: Call) -> dict[str, Any]:
    """``DeleteFilter`` (requests naming it fail within two seconds on every worker)."""
    record = _filter(call)
    call.authorize("admin", record["dataset_group"])
    _store(call).delete_filter(record["dataset_group"], record["name"])
    return {}

