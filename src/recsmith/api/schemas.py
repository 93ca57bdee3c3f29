"""Request and response bodies of the HTTP API (pydantic), shown in the OpenAPI document at ``/openapi.json``.

Every value a request carries is checked here, once, by the shared types below, so that what reaches the
store and the serving pipeline can be stored and computed with (a bad value is a 422 naming the field, never a
500 from deeper down):

- :data:`Text` strings hold no NUL character (PostgreSQL cannot store one) and no lone surrogate
  (``"\\ud800"`` is valid JSON but not UTF-8);
- :data:`Number` floats are finite (``1e309`` parses as infinity; ``NaN`` and ``-Infinity`` are refused too);
- :data:`Int64` integers fit the database's 64-bit integers, and :data:`RowId` ids its 32-bit row ids;
- :data:`FilterValues` holds at most :data:`FILTER_MAX_PARAMETERS` parameters, :data:`FILTER_MAX_VALUES`
  values each, and values of at most :data:`FILTER_MAX_VALUE_LENGTH` characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from recsmith.data.filters import (
    FILTER_MAX_EXPRESSION_LENGTH,
    FILTER_MAX_PARAMETERS,
    FILTER_MAX_VALUE_LENGTH,
    FILTER_MAX_VALUES,
)
from recsmith.data.values import number_problem, text_problem
from recsmith.serving import MAX_RESULTS

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def check_text(value: str) -> str:
    """``value`` if the store can keep it (:func:`recsmith.data.values.text_problem`): a validation error, so a 422
    naming the field, otherwise."""
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("unstorable_text", "{problem}", {"problem": problem})
    return value


def check_number(value: float) -> float:
    """``value`` if it is finite (:func:`recsmith.data.values.number_problem`): a validation error otherwise."""
    problem = number_problem(value)
    if problem is not None:
        raise PydanticCustomError("finite_number", "{value} {problem}", {"value": str(value), "problem": problem})
    return value


def check_json(value: Any) -> Any:
    """``value`` (any JSON: a campaign's config) if every string in it passes :func:`check_text`, at any depth, and
    every number is finite and fits 64 bits."""
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return check_number(value)
    if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise PydanticCustomError("int64", "must fit in 64 bits (at most 9223372036854775807 in size)")
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            check_json(item)
    elif isinstance(value, list):
        for item in value:
            check_json(item)
    return value


def check_scalar(value: Any, max_length: int | None = None) -> Any:
    """``value`` if it is a storable string (of at most ``max_length`` characters), a finite number that fits 64
    bits, or a boolean: one clear error, not one per type of the union."""
    if isinstance(value, str):
        check_text(value)
        if max_length is not None and len(value) > max_length:
            raise PydanticCustomError("string_too_long", "is {length} characters long: the limit is {limit}",
                                      {"length": len(value), "limit": max_length})
        return value
    if isinstance(value, int | float):  # bool is an int
        return check_json(value)
    raise PydanticCustomError("scalar", "must be a string, a number or a boolean")


def _scalar_schema(max_length: int | None = None) -> dict[str, Any]:
    string: dict[str, Any] = {"type": "string"} if max_length is None else {"type": "string", "maxLength": max_length}
    return {"anyOf": [string, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}]}


def check_filter_value(value: Any) -> Any:
    """``value`` if it is a filter parameter's value, or a list of at most :data:`FILTER_MAX_VALUES` of them, each
    a scalar of at most :data:`FILTER_MAX_VALUE_LENGTH` characters."""
    if not isinstance(value, list):
        return check_scalar(value, FILTER_MAX_VALUE_LENGTH)
    if len(value) > FILTER_MAX_VALUES:
        raise PydanticCustomError("too_many_values", "has {count} values: the limit is {limit} a parameter",
                                  {"count": len(value), "limit": FILTER_MAX_VALUES})
    for position, item in enumerate(value):
        try:
            check_scalar(item, FILTER_MAX_VALUE_LENGTH)
        except PydanticCustomError as exc:
            raise PydanticCustomError("filter_value", "value {position} {problem}",
                                      {"position": position, "problem": exc.message()}) from None
    return value


Text = Annotated[str, AfterValidator(check_text)]
"""A string the store can keep (see :func:`check_text`)."""
Number = Annotated[float, Field(allow_inf_nan=True), AfterValidator(check_number)]  # parsed, then refused: one message
"""A finite float (:func:`check_number`)."""
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
"""An integer that fits the database's BIGINT."""
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
"""The id of a stored row (a solution version): the database's INTEGER, 32 bits on PostgreSQL."""
Id = Annotated[Text, Field(min_length=1, max_length=256)]
"""A user, item, session, event or response id."""
Name = Annotated[Text, Field(min_length=1, max_length=128)]
"""The name of a dataset group, campaign, filter or promotion."""
Json = Annotated[Any, AfterValidator(check_json)]
"""Any JSON value made of storable strings and finite numbers."""
Scalar = Annotated[str | int | float | bool, PlainValidator(check_scalar), WithJsonSchema(_scalar_schema())]
"""A storable string, a finite number that fits 64 bits, or a boolean."""
FilterValue = Annotated[
    Any, PlainValidator(check_filter_value),
    WithJsonSchema({"anyOf": [*_scalar_schema(FILTER_MAX_VALUE_LENGTH)["anyOf"],
                              {"type": "array", "items": _scalar_schema(FILTER_MAX_VALUE_LENGTH),
                               "maxItems": FILTER_MAX_VALUES}]}),
]
"""A filter parameter's value, or a list of values."""
FilterValues = Annotated[
    dict[Annotated[Text, Field(min_length=1, max_length=128)], FilterValue],
    Field(max_length=FILTER_MAX_PARAMETERS, description="Values of the filter's $PARAMs, by name: one value "
          '(`"Comedy"`; numbers bare, `"10"`), a list of values (`["Comedy", "Drama"]`), or Personalize\'s quoted '
          'form, a string of double-quoted values joined with commas (`"\\"Comedy\\",\\"Drama\\""`, with `\\"` '
          "and `\\\\` escapes inside a value). A string starting with a double quote is read in the quoted form; a "
          "malformed one (an unterminated quote, a trailing comma, text between values), or a value that is only "
          f"empty strings, is a 400 naming the parameter and the position. At most {FILTER_MAX_PARAMETERS} "
          f"parameters, {FILTER_MAX_VALUES} values each, {FILTER_MAX_VALUE_LENGTH} characters a value."),
]
"""A request's ``$PARAM`` values; :func:`recsmith.data.filters.parse_filter_value` reads each (the quoted form
``"\\"A\\",\\"B\\""`` is two values), when the filter is applied."""


def item_columns(value: Any) -> Any:
    """``metadata_columns`` as the list of item fields: Personalize's ``{"ITEMS": [...]}`` gives its list, a list
    stays as it is (then validated as a list of names); a map with another key is a validation error (a 422)."""
    if not isinstance(value, dict):
        return value
    other = sorted(str(key) for key in value if key != "ITEMS")
    if other:
        raise PydanticCustomError("metadata_columns", "only ITEMS columns can be returned ({\"ITEMS\": [...]}), "
                                  "not {keys}", {"keys": ", ".join(repr(key) for key in other)})
    return value.get("ITEMS", [])


_COLUMN_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "maxItems": 50}
MetadataColumns = Annotated[
    list[Name], Field(max_length=50), BeforeValidator(item_columns),
    WithJsonSchema({"anyOf": [_COLUMN_NAMES, {"type": "object", "properties": {"ITEMS": _COLUMN_NAMES},
                                              "additionalProperties": False}]}),
]
"""Item fields to return with each item: a list of names, or Personalize's ``{"ITEMS": [...]}`` (see
:func:`item_columns`)."""

Properties = dict[Annotated[Text, Field(min_length=1, max_length=256)], Scalar | None]
Context = dict[Annotated[Text, Field(max_length=256)], Scalar]

# path parameters: the same checks as in bodies (a %00 in a URL is a NUL character once decoded)
GroupPath = Annotated[Text, Path(min_length=1, max_length=128, description="The dataset group's name.")]
CampaignPath = Annotated[Text, Path(min_length=1, max_length=128, description="The campaign's name.")]
FilterPath = Annotated[Text, Path(min_length=1, max_length=128, description="The filter's name.")]
EntityPath = Annotated[Text, Path(min_length=1, max_length=256, description="The user's or item's id.")]
VersionPath = Annotated[RowId, Path(description="The solution version's id.")]
RowIdPath = Path(ge=1, le=INT32_MAX, description="The job's id.")


class Strict(BaseModel):
    """Unknown fields are refused (a typo is an error, not silently ignored); floats must be finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PromotionIn(Strict):
    """Reserve part of the results for items a stored filter selects."""

    name: Name = Field(description="Shown in the reason: 'promotion: <name>'.")
    filter: Name = Field(description="Name of a stored filter.")
    filter_values: FilterValues = Field(default_factory=dict)
    percent: int = Field(default=10, ge=1, le=100, description="Share of the results to promote.")


class RecommendationRequest(Strict):
    """Recommendations for a user (``user_id``), an anonymous session (``session_id`` alone) or related to an
    item (``item_id``)."""

    user_id: Id | None = None
    session_id: Id | None = Field(default=None, description="Alone: recommendations for an anonymous session from "
                                  "its events; with user_id: the session's anonymous events count as the user's.")
    item_id: Id | None = None
    num_results: int = Field(default=25, ge=1, le=MAX_RESULTS)
    filter: Name | None = Field(default=None, description="A stored filter's name.")
    filter_values: FilterValues = Field(default_factory=dict)
    exclude: list[Id] = Field(default_factory=list, max_length=1000, description="Item ids never to return.")
    exclude_seen: bool | None = Field(default=None, description="Leave out items the user interacted with "
                                      "(default: the campaign's setting, true unless configured).")
    context: Context = Field(default_factory=dict, max_length=50,
                             description="Request context (device, location...); accepted for "
                             "Personalize compatibility, not used by the current recipes.")
    metadata_columns: MetadataColumns = Field(
        default_factory=list, description='Item fields to return with each item: a list (`["GENRES"]`) or, as '
        'Personalize writes it, `{"ITEMS": ["GENRES"]}`.')
    promotion: PromotionIn | None = None
    suppress_served_minutes: Number | None = Field(
        default=None, gt=0, le=1440, description="Leave out items served to this user in the last N minutes "
        "(the served-items ledger) that the user has not acted on since.")

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        user = self.user_id is not None or self.session_id is not None
        if user == (self.item_id is not None):
            raise PydanticCustomError(
                "one_subject", "give exactly one of user_id or session_id (recommendations for a user or an "
                "anonymous session) and item_id (related items)", {"field": "item_id" if user else "user_id"})
        return self


class RankingRequest(Strict):
    """Order a list of items for a user."""

    user_id: Id
    input_list: list[Id] = Field(min_length=1, max_length=MAX_RESULTS)
    filter: Name | None = None
    filter_values: FilterValues = Field(default_factory=dict)
    context: Context = Field(default_factory=dict, max_length=50)
    metadata_columns: MetadataColumns = Field(default_factory=list, description='Item fields to return with each '
                                              'item: a list or `{"ITEMS": [...]}`.')


class RecommendedItemOut(BaseModel):
    """One item of a response."""

    item_id: str
    score: float | None
    reason: str = Field(description="personalized, history, popular, 'because you interacted with <item>', "
                                    "'similar to <item>', 'promotion: <name>', 'new item' (put since training) "
                                    "or 'unknown item'.")
    metadata: dict[str, Any] | None = None


class RecommendationResponse(BaseModel):
    """Items, best first, with the id of this response."""

    items: list[RecommendedItemOut]
    recommendation_id: str
    solution_version_id: int


class CampaignIn(Strict):
    """Deploy a solution version."""

    name: Name
    solution_version_id: RowId
    config: dict[Text, Json] = Field(default_factory=dict, description='e.g. {"exclude_seen": false}')


class CampaignUpdate(Strict):
    """Switch to another solution version (loaded in the background, swapped atomically) and/or new config."""

    solution_version_id: RowId | None = None
    config: dict[Text, Json] | None = None


class CampaignOut(BaseModel):
    """A campaign and what this server process serves for it."""

    dataset_group: str
    name: str
    solution_version_id: int
    recipe: str
    config: dict[str, Any]
    status: str = Field(description="ACTIVE (serving solution_version_id), UPDATE_IN_PROGRESS, CREATE_IN_PROGRESS "
                                    "or CREATE_FAILED.")
    serving_solution_version_id: int | None
    error: str | None = None
    created_at: datetime
    updated_at: datetime


class FilterIn(Strict):
    """A named filter expression (Personalize's grammar)."""

    name: Name
    expression: Text = Field(min_length=1, max_length=FILTER_MAX_EXPRESSION_LENGTH)


class FilterOut(BaseModel):
    """A stored filter."""

    dataset_group: str
    name: str
    expression: str
    parameters: list[str]
    created_at: datetime


def _epoch_seconds(value: datetime) -> datetime:
    """``value`` if it has a POSIX time (a date the store's integer timestamps can hold)."""
    try:
        value.timestamp()
    except (OverflowError, ValueError, OSError):
        raise PydanticCustomError("timestamp", "is out of range: give a date between 1970 and 9999") from None
    return value


class EventIn(Strict):
    """One interaction, as Personalize's PutEvents takes it."""

    event_id: Id | None = Field(default=None,
                                description="Makes resubmission idempotent; default: derived from the event.")
    event_type: Id
    item_id: Id
    event_value: Number | None = Field(default=None, description="A finite number (no NaN or infinity).")
    sent_at: Annotated[datetime, AfterValidator(_epoch_seconds)] = Field(description="ISO 8601 or epoch seconds.")
    properties: dict[Annotated[Text, Field(max_length=256)], Scalar] = Field(default_factory=dict, max_length=50)
    recommendation_id: Annotated[Text, Field(max_length=256)] | None = None
    impression: list[Id] = Field(default_factory=list, max_length=500, description="Item ids that were shown.")


class EventsIn(Strict):
    """Up to 100 events of one user (or one anonymous session)."""

    user_id: Id | None = Field(default=None,
                               description="Omitted for anonymous traffic: the session id stands for the user.")
    session_id: Id
    events: list[EventIn] = Field(min_length=1, max_length=100)


class EventsOut(BaseModel):
    """How many events were stored, and how many were already there."""

    accepted: int
    duplicates: int


class UserIn(Strict):
    """One user record: its id and metadata fields (the group's users schema says which)."""

    user_id: Id
    properties: Properties = Field(default_factory=dict, max_length=100)


class ItemIn(Strict):
    """One item record: its id and metadata fields (the group's items schema says which)."""

    item_id: Id
    properties: Properties = Field(default_factory=dict, max_length=100)


class UsersIn(Strict):
    """Up to 100 users to create or replace (Personalize's PutUsers)."""

    users: list[UserIn] = Field(min_length=1, max_length=100)


class ItemsIn(Strict):
    """Up to 100 items to create or replace (Personalize's PutItems)."""

    items: list[ItemIn] = Field(min_length=1, max_length=100)


class PutOut(BaseModel):
    """How many records were stored."""

    stored: int


class DeletedOut(BaseModel):
    """What a deletion removed."""

    deleted: str
    interactions: int = 0
    records: int
    sessions: int = 0
    served: int = 0
    keys: int = 0


class DatasetGroupOut(BaseModel):
    """A dataset group and how much it holds."""

    name: str
    created_at: datetime
    interactions: int
    users: int = Field(description="User records (metadata), not distinct users of the interactions.")
    items: int = Field(description="Item records (metadata).")
    solution_versions: int
    campaigns: int
    filters: int
    import_jobs: int


class DatasetGroupDeletedOut(BaseModel):
    """What deleting a dataset group removed."""

    deleted: str
    campaigns: list[str] = Field(description="The campaigns deleted with it (force=true).")
    rows: dict[str, int] = Field(description="Rows deleted, by table.")
    artifacts: int = Field(description="Artifact folders of its solution versions deleted from disk.")
    studies: list[str] = Field(description="Its tuning studies deleted (named GROUP:RECIPE:METRIC).")
    keys: int = Field(description="Redis keys deleted (with RECSMITH_REDIS_URL).")
    left: list[str] = Field(description="What could not be removed after the deletion committed, and why.")


class SolutionVersionOut(BaseModel):
    """A trained (or training, or failed) solution version."""

    id: int
    dataset_group: str
    solution: str
    recipe: str
    status: str = Field(description="CREATE_PENDING, CREATE_IN_PROGRESS, ACTIVE, CREATE_FAILED or DELETED.")
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    num_users: int | None
    num_items: int | None
    num_interactions: int | None
    fit_seconds: float | None = Field(description="Seconds of the final fit (on all the data).")
    total_seconds: float | None = Field(default=None, description="Seconds of the whole training: reading the data, "
                                        "the offline metrics, the fit and saving.")
    created_at: datetime
    finished_at: datetime | None
    campaigns: list[str] = Field(description="The group's campaigns that serve it.")


class SolutionVersionDeletedOut(BaseModel):
    """What deleting a solution version removed."""

    deleted: int
    dataset_group: str
    solution: str
    recipe: str
    status: str
    artifact: bool = Field(description="Whether its artifact folder was deleted from disk.")
    left: list[str] = Field(description="What could not be removed after the deletion committed, and why.")


class ProblemOut(BaseModel):
    """One invalid value of a request."""

    field: str | None
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """What went wrong."""

    status: int = Field(description="The HTTP status, repeated.")
    message: str = Field(description="What was wrong, the value and where, and how to fix it.")
    field: str | None = Field(default=None, description="The request field at fault, dotted (``events.0.sent_at``).")
    problems: list[ProblemOut] | None = Field(default=None, description="Every invalid value (422 only).")
    campaigns: list[str] | None = Field(default=None, description="The campaigns in the way (409 only).")


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorBody


_ERRORS = {
    400: "A bad value the schema cannot tell (a filter that does not parse, a record the group's schema refuses).",
    401: "No valid API key: send `Authorization: Bearer <key>`.",
    403: "The key's role or dataset group does not allow this.",
    404: "The dataset group, campaign, filter, user or item does not exist.",
    409: "The resource is in use (campaigns serve it, a job of it runs): the message says what to change first.",
    413: "The request body is over the limit (RECSMITH_MAX_BODY_BYTES).",
    422: "A field is missing or invalid: `field` names it.",
    500: "An unexpected error (logged by the server).",
    503: "The disk is full: nothing can be stored until space is freed.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of these error statuses (every one has the :class:`ErrorOut` body)."""
    return {status: {"model": ErrorOut, "description": _ERRORS[status]} for status in statuses}


V1_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 500, 503)
"""The errors every ``/v1`` route may answer."""


Location = Annotated[Text, Field(min_length=1, max_length=2048)]
"""A path or fsspec URL on the server's side."""


class BatchInferenceJobIn(Strict):
    """A batch inference job: where its lines come from and where its answers go (one of each)."""

    solution_version_id: RowId
    input: Location | None = Field(default=None, description="JSON Lines (or Parquet) of {\"userId\"}, "
                                   "{\"itemId\"} or {\"userId\", \"itemList\"} lines: a path or fsspec URL "
                                   "the server can read.")
    all_users: bool = Field(default=False, description="Every user of the dataset group instead of an input.")
    output: Location | None = Field(default=None, description="A path or fsspec URL ending in .jsonl or .parquet.")
    output_table: Annotated[Text, Field(min_length=1, max_length=63)] | None = Field(
        default=None, description="A table of db_url's database instead (created if missing, replaced atomically).")
    db_url: Location | None = None
    num_results: int = Field(default=25, ge=1, le=MAX_RESULTS)
    filter: Name | None = Field(default=None, description="A stored filter of the group, for every line.")
    filter_values: FilterValues | None = None
    engine: Literal["local", "spark"] = "local"
    spark_master: Annotated[Text, Field(max_length=256)] | None = None
    workers: int | None = Field(default=None, ge=1, le=16, description="Processes answering parts at once "
                                "(default: the server's cores).")


class BatchSegmentJobIn(Strict):
    """A batch segment job."""

    solution_version_id: RowId
    input: Location = Field(description="JSON Lines of {\"itemId\"} or {\"itemAttributes\": \"ITEMS.GENRES = "
                            "\\\"Comedy\\\"\"} lines.")
    output: Location = Field(description="A path or fsspec URL ending in .jsonl or .parquet.")
    num_users: int = Field(default=100, ge=1, le=5_000)
    workers: int | None = Field(default=None, ge=1, le=16)


class BatchJobOut(BaseModel):
    """A batch inference or batch segment job."""

    id: int
    dataset_group: str
    kind: str = Field(description="inference or segment.")
    solution_version_id: int
    status: str = Field(description="CREATE_PENDING, CREATE_IN_PROGRESS, ACTIVE or CREATE_FAILED.")
    input: str
    output: str
    lines_read: int
    lines_written: int
    lines_failed: int
    parts_done: int
    duration_seconds: float | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any]
