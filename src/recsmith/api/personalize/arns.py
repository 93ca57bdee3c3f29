"""Personalize's ARNs for recsmith's resources, and the resources an ARN names.

``arn:aws:personalize:<region>:<account>:<kind>/<name>``, region and account from ``RECSMITH_AWS_REGION`` and
``RECSMITH_AWS_ACCOUNT``. A resource is found by its kind and name, as in Personalize, where names are unique in an
account and region: a dataset is ``dataset/<group>/<TYPE>``, a solution version ``solution/<solution>/<id>``, a
recipe ``arn:aws:personalize:::recipe/aws-<name>``. The region and account of an ARN a client sends are not
checked, so ARNs stored by an application that moved from Personalize keep working once the resources are made
again under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsmith.api.personalize.errors import invalid_input
from recsmith.settings import Settings

KINDS = ("dataset-group", "dataset", "schema", "dataset-import-job", "solution", "campaign", "filter",
         "event-tracker", "batch-inference-job", "recipe")
"""The resource kinds of recsmith's ARNs."""


@dataclass(frozen=True)
class Arns:
    """Makes and reads ARNs for one region and account."""

    region: str = "us-east-1"
    account: str = "000000000000"

    @classmethod
    def from_settings(cls, settings: Settings) -> Arns:
        """The region and account the settings name."""
        return cls(settings.aws_region, settings.aws_account)

    def make(self, kind: str, *parts: str | int) -> str:
        """The ARN of the ``kind`` resource named ``parts`` (``make("campaign", "top")``)."""
        if kind == "recipe":
            return f"arn:aws:personalize:::recipe/{parts[0]}"
        return f"arn:aws:personalize:{self.region}:{self.account}:{kind}/" + "/".join(str(p) for p in parts)

    def dataset_group(self, name: str) -> str:
        """A dataset group's ARN."""
        return self.make("dataset-group", name)

    def campaign(self, name: str) -> str:
        """A campaign's ARN."""
        return self.make("campaign", name)

    def filter(self, name: str) -> str:
        """A filter's ARN."""
        return self.make("filter", name)

    def solution(self, name: str) -> str:
        """A solution's ARN."""
        return self.make("solution", name)

    def solution_version(self, solution: str, version_id: int) -> str:
        """A solution version's ARN."""
        return self.make("solution", solution, version_id)

    def of_campaign(self, campaign: dict[str, Any]) -> dict[str, str]:
        """The ARNs of a campaign record (``Store.get_campaign``'s): ``campaign_arn``, ``dataset_group_arn``,
        ``solution_arn`` and ``solution_version_arn`` (what ``recsmith campaign describe`` and the console show)."""
        return {"campaign_arn": self.campaign(campaign["name"]),
                "dataset_group_arn": self.dataset_group(campaign["dataset_group"]),
                "solution_arn": self.solution(campaign["solution"]),
                "solution_version_arn": self.solution_version(campaign["solution"], campaign["solution_version_id"])}


def parse_arn(arn: object, kind: str, field: str, *, parts: int = 1) -> list[str]:
    """The names in ``arn``, an ARN of a ``kind`` resource with ``parts`` names after the kind.

    Raises
    ------
    AwsError
        ``InvalidInputException`` naming ``field`` when ``arn`` is not such an ARN.
    """
    if not isinstance(arn, str) or not arn:
        raise invalid_input(f"{field}: expected the ARN of a {kind}, got {arn!r}")
    pieces = arn.split(":", 5)
    if len(pieces) != 6 or pieces[0] != "arn" or pieces[2] != "personalize":
        raise invalid_input(f"{field}: {arn!r} is not a Personalize ARN (arn:aws:personalize:<region>:<account>:"
                            f"{kind}/<name>)")
    resource = pieces[5].split("/")
    if resource[0] != kind or len(resource) != parts + 1 or not all(resource[1:]):
        shape = "/".join(["<name>"] * parts)
        raise invalid_input(f"{field}: {arn!r} is not the ARN of a {kind} (…:{kind}/{shape})")
    return resource[1:]
