"""Amazon Personalize's runtime and events protocols, driven by boto3 against a real two-worker ``recsmith serve``:
the same answers as ``/v1``, AWS's error codes, and Signature Version 4 checked for real."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from personalize_clients import aws_client

ARN = "arn:aws:personalize:us-east-1:000000000000"
KNN = f"{ARN}:campaign/knn"


def error_of(call, *args, **kwargs) -> tuple[str, int, str]:
    """``(code, HTTP status, message)`` of the ClientError a boto3 call raises."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture(scope="module")
def runtime(server):
    return aws_client("personalize-runtime", server.url, server.read_key)


@pytest.fixture(scope="module")
def tracker(server):
    """An event tracker of the movies group (its tracking id)."""
    name = f"movies-tracker-{uuid.uuid4().hex[:6]}"
    tracker = server.store.create_event_tracker("movies", name)
    yield tracker["tracking_id"]
    server.store.delete_event_tracker(name)


def test_get_recommendations_answers_what_v1_answers(server, runtime):
    aws = runtime.get_recommendations(campaignArn=KNN, userId="1", numResults=7)
    with server.client(server.read_key) as client:
        v1 = client.recommend("movies", "knn", user_id="1", num_results=7)
    assert [i["itemId"] for i in aws["itemList"]] == [i.item_id for i in v1.items]
    assert [i["score"] for i in aws["itemList"]] == pytest.approx([i.score for i in v1.items])
    assert aws["itemList"][0]["reason"] == [v1.items[0].reason] and len(aws["recommendationId"]) >= 8
    related = runtime.get_recommendations(campaignArn=KNN, itemId="1", numResults=5)["itemList"]
    assert len(related) == 5 and "1" not in {i["itemId"] for i in related}


def test_filters_metadata_and_the_default_count(runtime):
    default = runtime.get_recommendations(campaignArn=KNN, userId="1")["itemList"]
    assert len(default) == 25  # numResults left out: Personalize's default
    comedies = runtime.get_recommendations(
        campaignArn=KNN, userId="1", numResults=10, filterArn=f"{ARN}:filter/genre",
        filterValues={"GENRE": "Comedy"}, metadataColumns={"ITEMS": ["GENRES"]})["itemList"]
    assert len(comedies) == 10 and all("Comedy" in i["metadata"]["GENRES"].split("|") for i in comedies)


def test_personalized_ranking_orders_the_input(server, runtime):
    items = ["1", "50", "260", "296", "no-such-movie"]
    aws = runtime.get_personalized_ranking(campaignArn=f"{ARN}:campaign/mf", userId="1", inputList=items)
    with server.client(server.read_key) as client:
        v1 = client.rank("movies", "mf", user_id="1", input_list=items)
    assert [i["itemId"] for i in aws["personalizedRanking"]] == [i.item_id for i in v1.items]
    assert sorted(i["itemId"] for i in aws["personalizedRanking"]) == sorted(items)


def test_an_unknown_campaign_is_resource_not_found(runtime):
    code, status, message = error_of(runtime.get_recommendations, campaignArn=f"{ARN}:campaign/nope", userId="1")
    assert (code, status) == ("ResourceNotFoundException", 404) and "campaign/nope" in message


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"campaignArn": f"{ARN}:filter/genre", "userId": "1"}, "campaignArn"),
    ({"campaignArn": KNN, "userId": "1", "metadataColumns": {"USERS": ["AGE"]}}, "metadataColumns"),
    ({"campaignArn": KNN, "userId": "1", "filterArn": f"{ARN}:campaign/knn"}, "filterArn"),
])
def test_a_bad_field_is_invalid_input_naming_it(runtime, kwargs, field):
    code, status, message = error_of(runtime.get_recommendations, **kwargs)
    assert (code, status) == ("InvalidInputException", 400) and field in message


def test_an_out_of_range_field_sent_past_botocore_is_invalid_input(server):
    """botocore checks numResults' range itself; the server checks it too, for other clients."""
    client = aws_client("personalize-runtime", server.url, server.read_key)
    client.meta.events.register("before-parameter-build.personalize-runtime.GetRecommendations",
                                lambda params, **_: params.update(numResults=501))
    code, status, message = error_of(client.get_recommendations, campaignArn=KNN, userId="1", numResults=5)
    assert (code, status) == ("InvalidInputException", 400) and "numResults" in message


def test_a_wrong_secret_is_refused_with_aws_codes(server):
    wrong = aws_client("personalize-runtime", server.url, server.read_key, secret="x" * 43)
    code, status, _ = error_of(wrong.get_recommendations, campaignArn=KNN, userId="1")
    assert (code, status) == ("InvalidSignatureException", 403)
    unknown = aws_client("personalize-runtime", server.url, "rsk_000000000000_" + "y" * 43)
    code, status, _ = error_of(unknown.get_recommendations, campaignArn=KNN, userId="1")
    assert (code, status) == ("UnrecognizedClientException", 403)


def _signed(server, body: bytes, *, when: float | None = None, tamper: bytes | None = None) -> httpx.Response:
    """A GetRecommendations request signed by botocore's own signer, sent with httpx (so it can be altered)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from recsmith.store.serving_records import split_key

    key_id, secret = split_key(server.read_key)
    request = AWSRequest("POST", f"{server.url}/recommendations", data=body,
                         headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials(key_id, secret), "personalize", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:  # add_auth's steps, as of another time
        request.context["timestamp"] = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
        signer._modify_request_before_signing(request)
        to_sign = signer.string_to_sign(request, signer.canonical_request(request))
        signer._inject_signature_to_request(request, signer.signature(to_sign, request))
    return httpx.post(request.url, content=tamper if tamper is not None else body, headers=dict(request.headers))


def test_signatures_cover_the_body_and_the_clock(server):
    body = json.dumps({"campaignArn": KNN, "userId": "1", "numResults": 3}).encode()
    good = _signed(server, body)
    assert good.status_code == 200 and len(good.json()["itemList"]) == 3
    tampered = _signed(server, body, tamper=body.replace(b'"numResults": 3', b'"numResults": 9'))
    assert tampered.status_code == 403 and tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    stale = _signed(server, body, when=time.time() - 600)
    assert stale.status_code == 403 and "Signature expired" in stale.json()["message"]
    assert stale.json()["__type"] == "InvalidSignatureException"
    unsigned = httpx.post(f"{server.url}/recommendations", content=body)
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    bearer = httpx.post(f"{server.url}/recommendations", content=body,
                        headers={"Authorization": f"Bearer {server.read_key}"})
    assert bearer.status_code == 400 and bearer.json()["__type"] == "IncompleteSignatureException"


def test_a_key_made_before_sealed_secrets_is_told_to_make_a_new_one(server):
    made = server.store.create_api_key("read", "movies", "old")
    with server.store.engine.begin() as conn:  # as a key made before migration 0013 is stored
        conn.execute(sa.text("UPDATE api_keys SET sealed_secret = NULL WHERE key_id = :k"), {"k": made["key_id"]})
    client = aws_client("personalize-runtime", server.url, made["key"])
    code, status, message = error_of(client.get_recommendations, campaignArn=KNN, userId="1")
    assert (code, status) == ("UnrecognizedClientException", 403) and "make a new one" in message
    with server.client(made["key"]) as bearer:  # its bearer form still works
        assert bearer.recommend("movies", "knn", user_id="1", num_results=1).items


def test_put_events_is_durable_idempotent_and_checked(server, tracker):
    events = aws_client("personalize-events", server.url, server.write_key)
    event_list = [{"eventId": "aws-e-1", "eventType": "click", "itemId": "1", "sentAt": 1764064800,
                   "properties": json.dumps({"device": "phone"}), "recommendationId": "r-aws",
                   "impression": ["1", "2"]},
                  {"eventType": "purchase", "itemId": "2", "sentAt": 1764064801, "eventValue": 9.5}]
    for _ in range(2):  # the second is skipped: the same event ids (the second's derived from its content)
        events.put_events(trackingId=tracker, userId="aws-user", sessionId="s-aws", eventList=event_list)
    with server.store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT item_id, event_type, event_value, event_id, recommendation_id, context "
                                    "FROM interactions WHERE user_id = 'aws-user' ORDER BY id")).all()
    assert [(r.item_id, r.event_type, r.event_value) for r in rows] == [("1", "click", None), ("2", "purchase", 9.5)]
    assert rows[0].event_id == "aws-e-1" and rows[0].recommendation_id == "r-aws"
    assert '"device": "phone"' in rows[0].context and '"impression": "1|2"' in rows[0].context
    code, status, message = error_of(events.put_events, trackingId=tracker, sessionId="s",
                                     eventList=[{"eventType": "click", "itemId": "1", "sentAt": 1764064800,
                                                 "properties": "{not json"}])
    assert (code, status) == ("InvalidInputException", 400) and "eventList[0].properties" in message
    code, status, _ = error_of(events.put_events, trackingId=str(uuid.uuid4()), sessionId="s",
                               eventList=[{"eventType": "click", "itemId": "1", "sentAt": 1764064800}])
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_a_read_key_may_not_put_events(server, tracker):
    events = aws_client("personalize-events", server.url, server.read_key)
    code, status, message = error_of(events.put_events, trackingId=tracker, sessionId="s",
                                     eventList=[{"eventType": "click", "itemId": "1", "sentAt": 1764064800}])
    assert (code, status) == ("AccessDeniedException", 403) and "role write" in message


def test_put_items_and_users_match_personalize_property_names(server, runtime):
    events = aws_client("personalize-events", server.url, server.write_key)
    dataset = f"{ARN}:dataset/movies/ITEMS"
    events.put_items(datasetArn=dataset, items=[{"itemId": "aws-new-film", "properties": json.dumps(
        {"genres": "Comedy|Documentary", "title": "A new film"})}])

    def new_film() -> list[dict]:  # the other worker reloads its catalogue within a second or so
        shown = runtime.get_recommendations(campaignArn=KNN, userId="1", numResults=500,
                                            filterArn=f"{ARN}:filter/documentary",
                                            metadataColumns={"ITEMS": ["TITLE"]})
        return [i for i in shown["itemList"] if i["itemId"] == "aws-new-film"]

    deadline = time.monotonic() + 15
    while not (new := new_film()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(new) == 1 and new[0]["metadata"] == {"TITLE": "A new film"}
    code, status, message = error_of(events.put_items, datasetArn=dataset, items=[
        {"itemId": "x", "properties": json.dumps({"noSuchField": 1})}])
    assert (code, status) == ("InvalidInputException", 400) and "noSuchField" in message
    code, status, message = error_of(events.put_users, datasetArn=dataset, users=[{"userId": "u"}])
    assert (code, status) == ("InvalidInputException", 400) and "datasetArn" in message
