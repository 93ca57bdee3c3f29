"""train_solution_version records its version with the job-run statuses (jobs.runs): ACTIVE when it is done,
CREATE_FAILED with the failure's message when it fails or is interrupted, and the exception goes on."""

from __future__ import annotations

import pandas as pd
import pytest

from recsmith.data.schema import Schema
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.errors import DataError
from recsmith.jobs.runs import ACTIVE, FAILED
from recsmith.jobs.training import train_solution_version
from recsmith.recipes import recipe_class
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "shop"
SCHEMA = Schema.default("interactions").to_dict()


def _only_version(store: Store) -> dict:
    versions = store.list_solution_versions(store.get_dataset_group(GROUP).id)
    assert len(versions) == 1
    return versions[0]


def test_a_finished_training_is_active(store: Store, settings: Settings) -> None:
    group = store.create_dataset_group(GROUP)
    store.write_interactions(group.id, synthetic_frame(100, 50, 1500, seed=1), schema=SCHEMA)
    stages: list[str] = []
    version = train_solution_version(store, settings, GROUP, "popularity", progress=stages.append)
    assert version["status"] == ACTIVE and version["error"] is None
    assert stages == ["read", "metrics", "fit", "save", "done"]
    assert version["metrics"]["ndcg@10"] >= 0 and version["artifact_uri"]
    assert (version["num_users"], version["num_items"]) == (100, 50) and version["num_interactions"] > 0
    assert version["total_seconds"] >= version["fit_seconds"] >= 0 and version["finished_at"] is not None


def test_a_failed_training_is_recorded_with_its_message(store: Store, settings: Settings) -> None:
    group = store.create_dataset_group(GROUP)
    store.write_interactions(group.id, pd.DataFrame({"USER_ID": [], "ITEM_ID": [], "TIMESTAMP": []}), schema=SCHEMA)
    stages: list[str] = []
    with pytest.raises(DataError, match="no interactions"):
        train_solution_version(store, settings, GROUP, "popularity", progress=stages.append)
    version = _only_version(store)
    assert version["status"] == FAILED and "has no interactions; import some first" in version["error"]
    assert version["artifact_uri"] is None and version["metrics"] in (None, {})
    assert version["total_seconds"] >= 0 and version["finished_at"] is not None
    assert stages == ["read", "done"]


def test_an_interrupted_training_is_recorded_as_failed(store: Store, settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    group = store.create_dataset_group(GROUP)
    store.write_interactions(group.id, synthetic_frame(100, 50, 1500, seed=1), schema=SCHEMA)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe_class("popularity"), "fit", interrupted)
    stages: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train_solution_version(store, settings, GROUP, "popularity", with_metrics=False, progress=stages.append)
    version = _only_version(store)
    assert (version["status"], version["error"]) == (FAILED, "interrupted; nothing was written")
    assert version["artifact_uri"] is None
    assert stages == ["read", "fit", "done"]
