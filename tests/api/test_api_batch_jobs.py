"""Batch inference and batch segment jobs over HTTP, with the Python client, against a real two-worker server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsmith.client import APIError, BadRequest, NotFound


def test_batch_inference_job_over_http_equals_the_campaign(server, tmp_path: Path) -> None:
    client = server.client()
    out = tmp_path / "recs.jsonl"
    job = client.create_batch_inference_job("movies", server.versions["item-knn"], all_users=True, output=str(out),
                                            num_results=10, filter="no-drama")
    assert job["status"] == "CREATE_PENDING" and job["kind"] == "inference"
    done = client.wait_for_batch_job("movies", job["id"], timeout=120)
    assert done["status"] == "ACTIVE", done
    assert done["lines_read"] == done["lines_written"] >= 671 and done["lines_failed"] == 0
    lines = {json.loads(line)["input"]["userId"]: json.loads(line)["output"] for line in out.read_text().splitlines()}
    for user in ["1", "2", "15", "100", "671"]:
        answer = client.recommend("movies", "knn", user_id=user, num_results=10, filter="no-drama")
        assert lines[user]["recommendedItems"] == [item.item_id for item in answer.items]
        assert lines[user]["scores"] == pytest.approx([item.score for item in answer.items], rel=1e-6)
    assert [j["id"] for j in client.list_batch_inference_jobs("movies")][-1] == job["id"]


def test_batch_jobs_need_an_admin_key_and_a_good_request(server, tmp_path: Path) -> None:
    reader = server.client(server.read_key)
    with pytest.raises(APIError) as refused:
        reader.create_batch_inference_job("movies", server.versions["item-knn"], all_users=True,
                                          output=str(tmp_path / "x.jsonl"))
    assert refused.value.status == 403
    with pytest.raises(APIError) as refused:
        reader.list_batch_inference_jobs("movies")
    assert refused.value.status == 403
    client = server.client()
    with pytest.raises(BadRequest, match="end the name in .jsonl"):
        client.create_batch_inference_job("movies", server.versions["item-knn"], all_users=True,
                                          output=str(tmp_path / "x.csv"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BadRequest, match="cannot be written"):
        client.create_batch_inference_job("movies", server.versions["item-knn"], all_users=True,
                                          output=str(blocker / "x.jsonl"))
    with pytest.raises(NotFound, match="no solution version 99999"):
        client.create_batch_inference_job("movies", 99999, all_users=True, output=str(tmp_path / "x.jsonl"))
    with pytest.raises(BadRequest, match="input file not found"):
        client.create_batch_inference_job("movies", server.versions["item-knn"], input=str(tmp_path / "none.jsonl"),
                                          output=str(tmp_path / "x.jsonl"))
    with pytest.raises(NotFound):
        client.describe_batch_inference_job("movies", 99999)
    assert not (tmp_path / "x.jsonl").exists()


def test_batch_segment_job_over_http(server, tmp_path: Path) -> None:
    client = server.client()
    source = tmp_path / "items.jsonl"
    source.write_text('{"itemId": "1"}\n{"itemAttributes": "ITEMS.GENRES = \\"Film-Noir\\""}\n{"itemId": "nope"}\n')
    out = tmp_path / "segments.jsonl"
    job = client.create_batch_segment_job("movies", server.versions["als"], input=str(source), output=str(out),
                                          num_users=20)
    done = client.wait_for_batch_job("movies", job["id"], kind="segment", timeout=120)
    assert done["status"] == "ACTIVE", done
    assert (done["lines_written"], done["lines_failed"]) == (2, 1)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines[0]["output"]["usersList"]) == 20 and lines[2]["error"].startswith("line 3: item 'nope'")
    assert lines[1]["output"]["scores"] == sorted(lines[1]["output"]["scores"], reverse=True)
    assert [j["id"] for j in client.list_batch_segment_jobs("movies")] == [job["id"]]
