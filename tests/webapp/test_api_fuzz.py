"""schemathesis against the OpenAPI schema: every endpoint, generated requests, no 500s, documented answers."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, gallery) -> None:
    # Every check except "schema-valid data is accepted": an `image` is validated by decoding it, which no
    # schema can express, so random bytes that fit `format: binary` are rightly refused with a 400.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
