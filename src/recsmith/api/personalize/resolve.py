"""The recsmith resources Personalize ARNs name: by kind and name, as names are unique in a Personalize account.

A campaign's group is read from the campaigns the runtime has loaded (no database read on the serving path), else
from the store. A name that several dataset groups use (possible through ``/v1``, which scopes names by group) is
an ``InvalidInputException`` naming the groups: the control plane refuses such names, so only resources made
through ``/v1`` can clash.
"""

from __future__ import annotations

from typing import Any

from recsmith.api.personalize.arns import parse_arn
from recsmith.api.personalize.errors import invalid_input, not_found


def one_group(kind: str, name: str, arn: str, groups: list[str]) -> str:
    """The one dataset group of ``groups`` where the ``kind`` resource ``name`` (named by ``arn``) is:
    ``ResourceNotFoundException`` for none, ``InvalidInputException`` naming them for several."""
    if not groups:
        raise not_found(f"the {kind} {arn} does not exist")
    if len(groups) > 1:
        raise invalid_input(f"the {kind} name {name!r} is used in the dataset groups {', '.join(groups)}: an ARN "
                            f"names one, so rename all but one (recsmith's /v1 API names {kind}s per group)")
    return groups[0]


def campaign(state: Any, arn: object, field: str = "campaignArn") -> tuple[str, str]:
    """``(dataset group, campaign name)`` of a campaign ARN."""
    (name,) = parse_arn(arn, "campaign", field)
    groups = state.runtime.groups_serving(name)
    if not groups:
        groups = state.store.groups_with("campaign", name)
    return one_group("campaign", name, str(arn), groups), name


def dataset_group(state: Any, arn: object, field: str = "datasetGroupArn") -> str:
    """The name of the dataset group an ARN names (``ResourceNotFoundException`` when there is none)."""
    (name,) = parse_arn(arn, "dataset-group", field)
    if name not in {g.name for g in state.store.list_dataset_groups()}:
        raise not_found(f"the dataset group {arn} does not exist")
    return name


def filter_name(arn: object, field: str = "filterArn") -> str:
    """The name of the filter an ARN names (looked up in the group of the call's campaign)."""
    return parse_arn(arn, "filter", field)[0]
