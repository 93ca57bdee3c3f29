"""The Personalize control plane's dispatcher, with boto3 against a real server: admin keys only, unknown operations
named, changes audited."""

from __future__ import annotations

import httpx
import pytest
from botocore.exceptions import ClientError
from personalize_clients import aws_client

ARN = "arn:aws:personalize:us-east-1:000000000000"


def error_of(call, *args, **kwargs) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def test_changes_are_audited_and_non_admin_keys_refused(server):
    admin = aws_client("personalize", server.url, server.admin_key)
    made = admin.create_dataset_group(name="aws-audited")
    assert made["datasetGroupArn"] == f"{ARN}:dataset-group/aws-audited"
    writer = aws_client("personalize", server.url, server.write_key)
    code, status, message = error_of(writer.delete_dataset_group, datasetGroupArn=made["datasetGroupArn"])
    assert (code, status) == ("AccessDeniedException", 403) and "role admin" in message
    other = aws_client("personalize", server.url, server.other_group_key)  # an admin of another group
    code, _, _ = error_of(other.delete_dataset_group, datasetGroupArn=made["datasetGroupArn"])
    assert code == "AccessDeniedException"
    admin.delete_dataset_group(datasetGroupArn=made["datasetGroupArn"])
    code, status, _ = error_of(admin.describe_dataset_group, datasetGroupArn=made["datasetGroupArn"])
    assert (code, status) == ("ResourceNotFoundException", 400)  # the control plane's errors are all 400s
    entries = [e for e in server.store.audit_entries(limit=50) if e["resource"] == made["datasetGroupArn"]
               or e["resource"] == "aws-audited"]
    seen = {(e["action"], e["outcome"]) for e in entries}
    assert {("dataset_group.create", "ok"), ("dataset_group.delete", "denied"), ("dataset_group.delete", "ok")} <= seen
    assert not any(action.endswith(".describe") for action, _ in seen)  # reads are not audited
    assert all(e["actor"] in {server.admin_key.split("_")[1], server.write_key.split("_")[1],
                              server.other_group_key.split("_")[1]} for e in entries)


def test_an_unknown_operation_is_named(server):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    _, key_id, secret = server.admin_key.split("_", 2)
    request = AWSRequest("POST", f"{server.url}/", data=b"{}", headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonPersonalize.CreateRecommender"})
    SigV4Auth(Credentials(key_id, secret), "personalize", "us-east-1").add_auth(request)
    response = httpx.post(request.url, content=b"{}", headers=dict(request.headers))
    assert response.status_code == 400 and response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "CreateRecommender" in response.json()["message"]
