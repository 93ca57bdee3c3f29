"""What a recipe can do, declared once on its class: the contract suite, the CLI, evaluation, tuning and
serving read these tags instead of probing the class with ``hasattr``.

Examples
--------
>>> from recsmith.recipes import recipe_class
>>> recipe_class("svd").tags.predicts_ratings, recipe_class("item-knn").tags.similar_items
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("cpu", "cuda")
"""The devices a recipe may train on."""


@dataclass(frozen=True)
class RecipeTags:
    """A recipe class's capabilities (``tags: ClassVar[RecipeTags]`` on the class).

    A subclass that differs from its base declares its own, e.g.
    ``tags = dataclasses.replace(FactorModel.tags, predicts_ratings=True)``.

    Attributes
    ----------
    predicts_ratings : bool
        ``score(users, items)`` predicts ratings (an ``EVENT_VALUE`` scale), so rating metrics (``rmse``,
        ``mae``) and rating cross-validation apply. Every recipe has ``score``; for the others it returns
        ranking scores only.
    needs_timestamps : bool
        ``fit`` refuses data without interaction timestamps.
    sequential : bool
        The recipe learns from the order of events (:attr:`TrainingData.events`) and ranks from the order of a
        query's history; it is measured on the ``leave_last`` protocol.
    uses_item_features, uses_user_features : bool
        ``fit`` reads :attr:`TrainingData.item_features` / ``user_features``; the training job loads them
        from the store only for such recipes.
    uses_event_weights : bool
        The weights of the interactions matrix (event-type weights, decay, negative feedback) change what the
        recipe learns.
    deterministic : bool
        The same params, seed and data give the same model on the same device (bit for bit up to float
        rounding); otherwise the contract suite compares two fits with a tolerance.
    similar_items : bool
        ``similar_items(items, k)`` answers (Personalize's SIMS); otherwise it raises ``ConfigError``.
    iterative : bool
        Trains in epochs (a ``epochs`` param) and calls :attr:`FitOptions.epoch_callback` after each one, with
        the learned state of that epoch, and :attr:`FitOptions.progress` with ``(epoch, epochs)``.
    devices : tuple of str
        Where ``fit`` can run, e.g. ``("cpu",)`` or ``("cpu", "cuda")``. The artifact of a model trained on
        any of them loads and serves on a CPU.
    cold_start_items : bool
        The recipe scores items it never saw in training from their features alone
        (:meth:`~recsmith.recipes.base.Recipe.score_new_items`): serving ranks items put after training, and
        the ``cold-items`` protocol measures it (Personalize's ``-coldstart``).
    same_for_everyone : bool
        The ranking does not depend on the user (``trending``): serving ranks with the recipe even for a user
        with no history (a stranger, an anonymous session) instead of answering with the popular fallback.
    top_users : bool
        ``top_users(item_sets, k)`` ranks training users for item sets (Personalize's batch segments). False
        for recipes whose scores are the same for every user (``popularity``, ``trending``): it raises
        ``ConfigError`` there, since every user would tie.
    """

    predicts_ratings: bool = False
    needs_timestamps: bool = False
    sequential: bool = False
    uses_item_features: bool = False
    uses_user_features: bool = False
    uses_event_weights: bool = True
    deterministic: bool = True
    similar_items: bool = False
    iterative: bool = False
    devices: tuple[str, ...] = ("cpu",)
    same_for_everyone: bool = False
    cold_start_items: bool = False
    top_users: bool = True

    def __post_init__(self) -> None:
        unknown = [device for device in self.devices if device not in DEVICES]
        if not self.devices or unknown:
            raise ValueError(f"devices must name one or more of {', '.join(DEVICES)}, got {self.devices!r}")
