"""Schemathesis over /openapi.json of the running server, with a token holding every scope.

Every documented operation gets generated valid and invalid requests; ``--checks all``
(the default set of ``call_and_validate``) requires documented status codes, conforming
bodies and content types, no 5xx, rejection of invalid data, and 401 without the token
(``ignored_auth``). Kept small (examples per operation) so it stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import ApiConfig, create_app
from service.workflow import Workflow
from tests.api.conftest import Api, processes, run_server

EXAMPLES = 12


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    import httpx

    folder = tmp_path_factory.mktemp("schemathesis")
    procs = processes(Path(folder) / "processes")
    unlimited = ApiConfig(rate_per_minute=0)  # the rate limit has a test of its own
    for base, wf in run_server(f"sqlite:///{folder / 'shenpi.db'}", procs, unlimited):
        api = Api(base, wf, httpx.Client(base_url=base, timeout=30))
        api.start()  # something to list
        yield api
        api.http.close()


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, made without a database (it needs none); the test
    below checks the live server serves the very same one."""
    return create_app(cast(Workflow, None)).openapi()


# An oversized body rejected with 413 is a rejection too (the default list lacks 413).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "413", "422"]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_conforms(case: Any, live: Api) -> None:
    # Two inputs are valid only in ways OpenAPI cannot say: a cursor must be one the
    # server issued, and variables must be the process's. A 422 for a generated one is
    # right, so "schema-valid data is accepted" is not asked of those cases only.
    body = case.body if isinstance(case.body, dict) else {}
    opaque = "cursor" in (case.query or {}) or bool(body.get("variables"))
    excluded = [positive_data_acceptance] if opaque else None
    case.call_and_validate(
        base_url=live.base,
        headers=live.auth("cao.yu", "read,act,admin"),
        excluded_checks=excluded,
    )


def test_the_server_serves_this_document(live: Api) -> None:
    assert live.http.get("/openapi.json").json() == _document()


def test_a_valid_token_gets_success_not_only_documented_refusals(live: Api) -> None:
    """Schemathesis accepts a 401 as documented; this shows the token really works."""
    headers = live.auth("cao.yu", "read,act,admin")
    for path in ("/v1/tasks", "/v1/instances", "/v1/audit", "/v1/definitions"):
        assert live.http.get(path, headers=headers).status_code == 200, path
