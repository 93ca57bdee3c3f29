"""The audit log in the store, on SQLite and PostgreSQL: appended, read back newest first, filtered by time and
action, secrets scrubbed, append-only down to the database, and outliving the keys and groups it names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recsmith.errors import ConfigError, NotFoundError
from recsmith.store.audit_records import acting_as
from recsmith.store.store import Store


def test_entries_come_back_newest_first_with_who_what_where(store: Store) -> None:
    store.audit("campaign.create", "dataset-groups/g/campaigns/c", actor="abc123", source="10.0.0.7", status=201,
                detail={"solution_version_id": 3})
    store.audit("filter.delete", "dataset-groups/g/filters/f", outcome="failed", status=404)
    newest, oldest = store.audit_entries()
    assert (oldest["actor"], oldest["action"], oldest["resource"], oldest["source"], oldest["outcome"],
            oldest["status"], oldest["detail"]) == ("abc123", "campaign.create", "dataset-groups/g/campaigns/c",
                                                    "10.0.0.7", "ok", 201, {"solution_version_id": 3})
    assert oldest["at"].tzinfo is not None and abs(oldest["at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert newest["action"] == "filter.delete" and newest["outcome"] == "failed"
    assert newest["actor"].startswith("cli:") and newest["source"]  # the command line's, by default
    with acting_as("scheduler"):
        store.audit("schedule.switch", "dataset-groups/g/solutions/s")
    assert store.audit_entries(limit=1)[0]["actor"] == "scheduler"


def test_since_action_and_limit_filter_the_entries(store: Store) -> None:
    for name in ("a", "b", "c"):
        store.audit("campaign.create", f"dataset-groups/g/campaigns/{name}")
    store.audit("key.delete", "keys/k1")
    assert len(store.audit_entries(since=datetime.now(UTC) - timedelta(minutes=5))) == 4
    assert store.audit_entries(since=datetime.now(UTC) + timedelta(minutes=5)) == []
    later_elsewhere = datetime.now(UTC).astimezone(timezone(timedelta(hours=5)))
    assert store.audit_entries(since=later_elsewhere + timedelta(minutes=5)) == []  # an offset is honoured
    assert [e["resource"] for e in store.audit_entries(action="campaign.create", limit=2)] == [
        "dataset-groups/g/campaigns/c", "dataset-groups/g/campaigns/b"]
    assert {e["action"] for e in store.audit_entries(action="key.")} == {"key.delete"}
    with pytest.raises(ConfigError, match="limit"):
        store.audit_entries(limit=0)
    with pytest.raises(ConfigError, match="outcome"):
        store.audit("campaign.create", "x", outcome="maybe")


def test_secrets_never_reach_an_entry(store: Store) -> None:
    store.audit("key.create", "keys", detail={"password": "hunter22", "note": "made rsk_ab12_S3CRETpart for x",
                                              "nested": {"api_key": "zzz"}})
    stored = json.dumps(store.audit_entries(), default=str)
    assert "hunter22" not in stored and "S3CRETpart" not in stored and "zzz" not in stored
    assert store.audit_entries()[0]["detail"]["nested"] == {"api_key": "***"}


def test_failed_blocks_are_audited_as_failed(store: Store) -> None:
    with pytest.raises(NotFoundError), store.audited("filter.create", "dataset-groups/none/filters/f"):
        store.create_filter("none", "f", "EXCLUDE ItemID WHERE Items.X IN ($Y)")
    [entry] = store.audit_entries()
    assert entry["outcome"] == "failed" and entry["detail"] == {"error": "NotFoundError"}


def test_the_database_refuses_to_change_or_delete_entries(store: Store) -> None:
    store.audit("campaign.delete", "dataset-groups/g/campaigns/c")
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.begin() as conn:
            conn.execute(sa.text(statement))
    assert store.audit_entries()[0]["actor"].startswith("cli:")
    assert not [name for name in dir(store) if name.startswith(("update_audit", "delete_audit", "clear_audit"))]


def test_deleted_keys_and_groups_leave_their_entries(store: Store) -> None:
    store.create_dataset_group("g")
    key = store.create_api_key("admin", "g", "ops")
    store.audit("campaign.create", "dataset-groups/g/campaigns/c", actor=key["key_id"], source="10.1.1.1")
    store.delete_api_key(key["key_id"])
    store.delete_dataset_group("g")
    assert [e["actor"] for e in store.audit_entries()] == [key["key_id"]]


def test_the_migration_goes_down_and_up_again(store: Store) -> None:
    store.audit("campaign.create", "x")
    store.migrate("0006")
    with store.engine.connect() as conn:
        assert "audit_log" not in sa.inspect(conn).get_table_names()
    store.migrate()
    store.audit("campaign.create", "y")
    assert [e["resource"] for e in store.audit_entries()] == ["y"]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.begin() as conn:  # the triggers are back
        conn.execute(sa.text("DELETE FROM audit_log"))
