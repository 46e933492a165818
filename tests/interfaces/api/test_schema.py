"""schemathesis against /openapi.json: every operation, generated requests, no 5xx, responses as
declared (status, content type, body schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import KEY

pytestmark = pytest.mark.model

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


HEADERS = {"Authorization": f"Bearer {KEY}"}


def test_api_answers_as_its_schema_says(api):
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json", headers=HEADERS)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # both route sets are declared
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers(case):
            case.call_and_validate(headers=HEADERS, checks=CHECKS, timeout=60)

        answers()
