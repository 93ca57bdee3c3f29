"""``recsmith campaign describe`` and ``filter describe`` show the resources' ARNs in the Personalize-compatible API,
in the region and account the settings name."""

from __future__ import annotations

import json


def test_describe_shows_arns_in_the_configured_region_and_account(cli, monkeypatch) -> None:
    assert cli("datasets", "synthetic", "-g", "shop", "--users", 80, "--items", 40, "--interactions", 800,
               "--seed", 1, "--json").exit_code == 0
    trained = cli("train", "-g", "shop", "--recipe", "popularity", "--solution", "top", "--json")
    version = json.loads(trained.stdout)["id"]
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", version).exit_code == 0
    assert cli("filter", "create", "recent", "-g", "shop", "--expression",
               'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")').exit_code == 0
    monkeypatch.setenv("RECSMITH_AWS_REGION", "eu-west-1")
    monkeypatch.setenv("RECSMITH_AWS_ACCOUNT", "123456789012")
    described = json.loads(cli("campaign", "describe", "home", "-g", "shop").stdout)
    arn = "arn:aws:personalize:eu-west-1:123456789012"
    assert described["campaign_arn"] == f"{arn}:campaign/home"
    assert described["dataset_group_arn"] == f"{arn}:dataset-group/shop"
    assert described["solution_version_arn"] == f"{arn}:solution/top/{version}"
    assert json.loads(cli("filter", "describe", "recent", "-g", "shop").stdout)["filter_arn"] == f"{arn}:filter/recent"
    monkeypatch.setenv("RECSMITH_AWS_ACCOUNT", "12345")
    refused = cli("campaign", "describe", "home", "-g", "shop")
    assert refused.exit_code == 1 and "RECSMITH_AWS_ACCOUNT='12345'" in refused.output
