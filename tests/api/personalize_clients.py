"""boto3 clients of a recsmith server, signed with a recsmith key (the access key id is the key's id, the secret
access key its secret)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from recsmith.store.serving_records import split_key

REGION = "us-east-1"


def aws_client(service: str, url: str, key: str, *, secret: str | None = None) -> Any:
    """``boto3.client(service)`` for the server at ``url``, signed with ``key`` (``secret``: sign with another
    secret); no retries, so a refusal is seen as it is."""
    parts = split_key(key)
    assert parts is not None
    key_id, key_secret = parts
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                        aws_secret_access_key=secret if secret is not None else key_secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=120))
