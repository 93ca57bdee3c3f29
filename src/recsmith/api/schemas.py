"""Request and response bodies of the HTTP API (pydantic), shown in the OpenAPI document at ``/docs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
FilterValue = Scalar | list[Scalar]


class Strict(BaseModel):
    """Unknown fields are refused (a typo is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class PromotionIn(Strict):
    """Reserve part of the results for items a stored filter selects."""

    name: str = Field(min_length=1, max_length=128, description="Shown in the reason: 'promotion: <name>'.")
    filter: str = Field(min_length=1, max_length=128, description="Name of a stored filter.")
    filter_values: dict[str, FilterValue] = Field(default_factory=dict)
    percent: int = Field(default=10, ge=1, le=100, description="Share of the results to promote.")


class RecommendationRequest(Strict):
    """Recommendations for a user (``user_id``), an anonymous session (``session_id`` alone) or related to an
    item (``item_id``)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    session_id: str | None = Field(default=None, min_length=1, max_length=256,
                                   description="Alone: recommendations for an anonymous session from its events; "
                                   "with user_id: the session's anonymous events count as the user's.")
    item_id: str | None = Field(default=None, min_length=1, max_length=256)
    num_results: int = Field(default=25, ge=1, le=500)
    filter: str | None = Field(default=None, min_length=1, max_length=128, description="A stored filter's name.")
    filter_values: dict[str, FilterValue] = Field(default_factory=dict, description="Values of its $PARAMs.")
    exclude: list[str] = Field(default_factory=list, max_length=1000, description="Item ids never to return.")
    exclude_seen: bool | None = Field(default=None, description="Leave out items the user interacted with "
                                      "(default: the campaign's setting, true unless configured).")
    context: dict[str, Scalar] = Field(default_factory=dict, max_length=50,
                                       description="Request context (device, location...); accepted for "
                                       "Personalize compatibility, not used by the current recipes.")
    metadata_columns: list[str] = Field(default_factory=list, max_length=50,
                                        description="Item fields to return with each item.")
    promotion: PromotionIn | None = None
    suppress_served_minutes: float | None = Field(
        default=None, gt=0, le=1440, description="Leave out items served to this user in the last N minutes "
        "(the served-items ledger) that the user has not acted on since.")

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        user = self.user_id is not None or self.session_id is not None
        if user == (self.item_id is not None):
            raise ValueError("give exactly one of user_id or session_id (recommendations for a user or an "
                             "anonymous session) and item_id (related items)")
        return self


class RankingRequest(Strict):
    """Order a list of items for a user."""

    user_id: str = Field(min_length=1, max_length=256)
    input_list: list[str] = Field(min_length=1, max_length=500)
    filter: str | None = Field(default=None, min_length=1, max_length=128)
    filter_values: dict[str, FilterValue] = Field(default_factory=dict)
    context: dict[str, Scalar] = Field(default_factory=dict, max_length=50)
    metadata_columns: list[str] = Field(default_factory=list, max_length=50)


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

    name: str = Field(min_length=1, max_length=128)
    solution_version_id: int = Field(ge=1)
    config: dict[str, Any] = Field(default_factory=dict, description='e.g. {"exclude_seen": false}')


class CampaignUpdate(Strict):
    """Switch to another solution version (loaded in the background, swapped atomically) and/or new config."""

    solution_version_id: int | None = Field(default=None, ge=1)
    config: dict[str, Any] | None = None


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

    name: str = Field(min_length=1, max_length=128)
    expression: str = Field(min_length=1, max_length=10_000)


class FilterOut(BaseModel):
    """A stored filter."""

    dataset_group: str
    name: str
    expression: str
    parameters: list[str]
    created_at: datetime


class EventIn(Strict):
    """One interaction, as Personalize's PutEvents takes it."""

    event_id: str | None = Field(default=None, min_length=1, max_length=256,
                                 description="Makes resubmission idempotent; default: derived from the event.")
    event_type: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    event_value: float | None = None
    sent_at: datetime = Field(description="ISO 8601 or epoch seconds.")
    properties: dict[str, Scalar] = Field(default_factory=dict, max_length=50)
    recommendation_id: str | None = Field(default=None, max_length=256)
    impression: list[str] = Field(default_factory=list, max_length=500, description="Item ids that were shown.")


class EventsIn(Strict):
    """Up to 100 events of one user (or one anonymous session)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=256,
                                description="Omitted for anonymous traffic: the session id stands for the user.")
    session_id: str = Field(min_length=1, max_length=256)
    events: list[EventIn] = Field(min_length=1, max_length=100)


class EventsOut(BaseModel):
    """How many events were stored, and how many were already there."""

    accepted: int
    duplicates: int


Properties = dict[str, Scalar | None]


class UserIn(Strict):
    """One user record: its id and metadata fields (the group's users schema says which)."""

    user_id: str = Field(min_length=1, max_length=256)
    properties: Properties = Field(default_factory=dict, max_length=100)


class ItemIn(Strict):
    """One item record: its id and metadata fields (the group's items schema says which)."""

    item_id: str = Field(min_length=1, max_length=256)
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
