"""schemathesis over the whole OpenAPI document of a real server, with an admin key and with a read key.

The server (uvicorn on 127.0.0.1, in a thread) holds ml-latest-small with a trained item-knn model, a campaign
and a filter, and the generated requests name that dataset group and campaign, so the routes do real work
rather than answer 404. Each operation gets :data:`EXAMPLES` generated requests (positive and negative data,
derandomized); any 5xx, an undocumented status, or a body that breaks the documented schema fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api_hardening import GROUP, Served, served_on_postgres, served_with  # tests/api is on sys.path

from recsmith.api.app import create_app
from recsmith.settings import Settings

EXAMPLES = int(os.environ.get("RECSMITH_SCHEMATHESIS_EXAMPLES", "50"))
"""Generated requests per operation and key (positive and negative data together)."""
PARSER_REFUSAL = "Invalid HTTP request received."
"""What uvicorn's HTTP parser answers (a plain-text 400) to a request line it cannot parse, before the app runs."""


@schemathesis.check
def content_type_unless_the_parser_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """``content_type_conformance``, except for the HTTP parser's own plain-text 400: such a request (a huge
    generated query string) never reached recsmith, whose documented JSON errors are for requests it parsed."""
    if response.status_code == 400 and response.text.strip() == PARSER_REFUSAL:
        return None
    return content_type_conformance(ctx, response, case)


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_unless_the_parser_refused]
# the document, from the app itself (building it opens nothing): one test per operation, collected up front
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(home=Path("unused"))).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_with(Settings(home=tmp_path_factory.mktemp("schemathesis") / "home")) as running:
        yield running


def _strategy(operation: Any) -> Any:
    """Positive and negative requests for the operation, on the real dataset group and campaign (so they reach
    the model; a DELETE of the campaign, or of the group itself, names a scratch one, to keep 'knn' serving)."""
    delete = operation.method.upper() == "DELETE"
    pinned = {"group": "scratch" if delete and operation.path == "/v1/dataset-groups/{group}" else GROUP,
              "campaign": "scratch" if delete else "knn"}
    pinned = {name: value for name, value in pinned.items() if "{" + name + "}" in operation.path}
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return st.one_of([operation.as_strategy(mode, path_parameters=pinned or None) for mode in modes])


def _fuzz(served: Served, operation: Any, key: str, examples: int) -> None:
    @hypothesis.settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    @hypothesis.given(case=_strategy(operation))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=served.url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    check()


IDS = [f"{op.method.upper()} {op.path}" for op in OPERATIONS]


@pytest.mark.parametrize("role", ["admin", "read"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_no_5xx_and_every_answer_matches_the_schema(fuzzed, operation, role):
    _fuzz(fuzzed, operation, fuzzed.admin if role == "admin" else fuzzed.read, EXAMPLES)


@pytest.fixture(scope="module")
def fuzzed_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_on_postgres(tmp_path_factory, "api_schemathesis") as running:
        yield running


@pytest.mark.postgres
@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_no_5xx_on_postgresql(fuzzed_postgres, operation):
    """PostgreSQL refuses what SQLite keeps (NUL characters, integers over a column's size): the admin key's
    requests again, fewer of them."""
    _fuzz(fuzzed_postgres, operation, fuzzed_postgres.admin, max(EXAMPLES // 2, 1))
