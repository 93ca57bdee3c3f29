"""Erasure from trained models: ``recsmith users delete USER -g GROUP --purge-models``.

Deleting a user (:meth:`recsmith.store.store.Store.delete_user`) removes them from the store, so the next
training does not see them (Personalize's data deletion job: "deleted from the next trained model"), and leaves
a keyed-hash tombstone so that campaigns serving models trained before hide them at once. The artifacts of those
models still hold the user's id and row until :func:`purge_models` rewrites them:

- each stored artifact of the group that knows a deleted user (one whose tombstone's watermark is at or after
  the model's training data, the rule serving hides users by) is written anew without them: their id leaves the
  users vocabulary, their row leaves the training matrix and every per-user array (user factors and biases), into
  a new folder (atomically: written beside, then renamed into place), the version is pointed at it, and the old
  folder is deleted. Running campaigns notice the new artifact at their next sync and load it;
- superseded versions (serving no campaign, not among the newest ``artifact_keep_versions`` of their solution,
  finished more than ``artifact_retention_days`` ago) have their artifact deleted and their status set to
  :data:`DELETED`.

Item-level arrays (item factors, item-item similarities, popularity) are aggregates over every user and are kept;
they lose the user's contribution at the next training. A recipe from outside recsmith (whose arrays this module
cannot know) is not rewritten: its version is marked as needing retraining (its ``error`` says so) and keeps
hiding the user through the tombstone.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsmith.data.vocabulary import Vocabulary
from recsmith.recipes.bundle import TrainedModel
from recsmith.recipes.registry import BUILTIN
from recsmith.settings import Settings
from recsmith.store.live_records import keyed_hash
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

DELETED = "DELETED"
"""Status of a solution version whose artifact the retention deleted (it can no longer be deployed)."""
NEEDS_RETRAINING = ("needs retraining: a deleted user could not be rewritten out of this recipe's artifact "
                    "(campaigns hide them; train a new version to drop them)")
PER_USER_ARRAYS = ("user_factors", "user_bias")
"""Suffixes of the built-in recipes' per-user state arrays (a hybrid's components prefix theirs with ``c<i>_``);
every other state array is per item or a scalar."""
REVISION = re.compile(r"-r\d+$")


@dataclass
class PurgeReport:
    """What :func:`purge_models` did, by solution version id.

    Attributes
    ----------
    rewritten : dict
        Version id -> how many users were rewritten out of its artifact.
    deleted : list of int
        Superseded versions whose artifact was deleted.
    needs_retraining : list of int
        Versions that know a deleted user but could not be rewritten (marked in their ``error``).
    """

    rewritten: dict[int, int] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    needs_retraining: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"rewritten": {str(k): v for k, v in self.rewritten.items()}, "deleted": self.deleted,
                "needs_retraining": self.needs_retraining}


def purge_models(store: Store, settings: Settings, group: str, *, now: datetime | None = None) -> PurgeReport:
    """Rewrite the group's deleted users out of every stored artifact, and delete superseded versions' artifacts
    (see the module's description).

    Parameters
    ----------
    store : Store
        The store (its tombstones say who was deleted).
    settings : Settings
        ``artifact_retention_days`` and ``artifact_keep_versions``.
    group : str
        The dataset group.
    now : datetime, optional
        The time retention is measured from (default: now).

    Returns
    -------
    PurgeReport
        What was rewritten, deleted and marked.
    """
    group_id = store.get_dataset_group(group).id
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.artifact_retention_days)
    versions = [v for v in store.list_solution_versions(group_id) if v["status"] == "ACTIVE" and v["artifact_uri"]]
    serving = {int(c["solution_version_id"]) for c in store.list_campaigns(group)}
    newest: dict[int, list[int]] = {}
    for version in sorted(versions, key=lambda v: -int(v["id"])):
        newest.setdefault(int(version["solution_id"]), []).append(int(version["id"]))
    tombstones = store.deletions(group_id, "user")
    report = PurgeReport()
    for version in versions:
        version_id = int(version["id"])
        finished = version.get("finished_at") or version["created_at"]
        kept = newest[int(version["solution_id"])][:settings.artifact_keep_versions]
        if version_id not in serving and version_id not in kept and finished < cutoff:
            _delete_artifact(store, version)
            report.deleted.append(version_id)
        elif len(tombstones):
            removed = _rewrite(store, version, tombstones.marks, settings.encryption_key)
            if removed is None:
                report.needs_retraining.append(version_id)
            elif removed:
                report.rewritten[version_id] = removed
    return report


def _delete_artifact(store: Store, version: dict[str, Any]) -> None:
    store.update_solution_version(int(version["id"]), status=DELETED, artifact_uri=None,
                                  error=f"artifact deleted by the retention of `users delete --purge-models` "
                                        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): superseded")
    shutil.rmtree(version["artifact_uri"], ignore_errors=True)
    logger.info("solution version %s: superseded artifact %s deleted", version["id"], version["artifact_uri"])


def _rewrite(store: Store, version: dict[str, Any], marks: dict[str, int], encryption_key: Any = None) -> int | None:
    """Rewrite the version's artifact without the deleted users it knows; how many were removed (0: none known,
    nothing written), or None when its recipe's artifact cannot be rewritten (the version is marked). An encrypted
    artifact (``RECSMITH_ENCRYPTION_KEY``) is read with the key and written encrypted again."""
    old = Path(version["artifact_uri"])
    model = TrainedModel.load(old, encryption_key=encryption_key)
    last_event = model.meta.get("last_interaction_id")
    key = store.erasure_key
    users = np.asarray(model.users.ids, dtype=object)
    drop = np.fromiter((marks.get(keyed_hash(key, str(user)), -1) >= (last_event or 0) for user in users),
                       dtype=bool, count=len(users))
    if not drop.any():
        return 0
    if model.recipe.name not in BUILTIN:
        store.update_solution_version(int(version["id"]), error=NEEDS_RETRAINING)
        logger.warning("solution version %s (recipe %s): %s", version["id"], model.recipe.name, NEEDS_RETRAINING)
        return None
    keep = ~drop
    recipe = model.recipe
    # the recipe's own save/restore hooks: the state arrays it writes, rebuilt from the kept rows
    state = recipe._state()
    recipe.train_matrix_ = sp.csr_matrix(recipe.train_matrix_[keep])
    recipe._restore({name: (np.asarray(value)[keep] if name.endswith(PER_USER_ARRAYS) else value)
                     for name, value in state.items()})
    meta = dict(model.meta) | {"num_users": int(keep.sum()), "num_interactions": int(recipe.train_matrix_.nnz),
                               "erased_users": int(model.meta.get("erased_users", 0)) + int(drop.sum())}
    rewritten = TrainedModel(recipe, Vocabulary(users[keep].tolist()), model.items, model.popularity, meta)
    target = _next_folder(old)
    rewritten.save(target, encryption_key=encryption_key)
    store.update_solution_version(int(version["id"]), artifact_uri=str(target), num_users=int(keep.sum()),
                                  num_interactions=int(recipe.train_matrix_.nnz))
    shutil.rmtree(old, ignore_errors=True)  # processes still serving it keep their mapped pages until they reload
    logger.info("solution version %s: %d deleted user(s) rewritten out of its artifact, now %s", version["id"],
                int(drop.sum()), target)
    return int(drop.sum())


def _next_folder(old: Path) -> Path:
    """``solution-version-7`` -> ``solution-version-7-r1`` (then ``-r2``, ...): a new folder per rewrite, so
    that campaigns see the version's artifact change and load it."""
    base = REVISION.sub("", old.name)
    number = int(old.name[len(base) + 2:]) if old.name != base else 0
    while True:
        number += 1
        candidate = old.with_name(f"{base}-r{number}")
        if not candidate.exists():
            return candidate
