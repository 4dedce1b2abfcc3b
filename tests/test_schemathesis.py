"""Generated requests against every operation in the real server's ``/openapi.json``
(schemathesis, property-based): no input may cause a server error (5xx)."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from servers import Server
from tally import tally


@pytest.fixture(scope="module")
def fuzzed(sqlite_server: Server) -> Server:
    return sqlite_server


@pytest.fixture(scope="module")
def api_schema(fuzzed: Server) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")


def operations(api_schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in api_schema.get_all_operations()]


# Each operation is driven with its hypothesis strategy here, not through schemathesis'
# pytest plugin: that plugin does not run on pytest 9 (it reads a removed private field).
def test_no_generated_request_breaks_the_server(api_schema: schemathesis.BaseSchema,
                                                fuzzed: Server) -> None:
    sent: list[int] = []

    for operation in operations(api_schema):
        @given(case=operation.as_strategy())
        @settings(max_examples=100, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=fuzzed.headers("admin"), timeout=30)
            sent.append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}")

        call()
    assert fuzzed.request("GET", "/healthz", role=None).status_code == 200
    accepted = sum(1 for status in sent if status < 300)
    assert accepted > len(sent) // 10  # the generated requests get past auth and validation
    tally("schemathesis: generated requests to every operation", sent=len(sent),
          accepted=accepted, refused=len(sent) - accepted, server_errors=0, lost=0)


def test_the_schema_covers_the_api(api_schema: schemathesis.BaseSchema) -> None:
    paths = {op.path for op in operations(api_schema)}
    assert {"/v1/guard", "/v1/escalations", "/v1/escalations/{escalation_id}",
            "/v1/escalations/{escalation_id}/approve", "/v1/escalations/{escalation_id}/deny",
            "/v1/policy"} <= paths, paths


if __name__ == "__main__":  # pragma: no cover
    pytest.main([str(Path(__file__))])
