"""Solution configuration: how interactions become training weights."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SolutionConfig(BaseModel):
    """How a solution turns the interactions dataset into training weights.

    Examples
    --------
    >>> SolutionConfig(event_weights={"purchase": 5, "view": 1, "dislike": -2}, half_life_days=30)
    SolutionConfig(event_weights={'purchase': 5.0, 'view': 1.0, 'dislike': -2.0}, half_life_days=30.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_weights: dict[str, float] = Field(default_factory=dict)
    """Weight of each event type; types not listed weigh 1, a weight of 0 drops the type, negative weights
    push items down."""

    half_life_days: float | None = Field(default=None, gt=0)
    """If set, an event's weight halves every this many days before the newest event."""
