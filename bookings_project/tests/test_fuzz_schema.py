"""Schemathesis against our own OpenAPI schema, in-process (WSGI), once per role.

Every generated request — valid (positive) and deliberately invalid (negative) — must get a
documented status with a body that matches the documented schema, and never a 5xx. Budget:
FUZZ_MAX_EXAMPLES per operation, mode and role (default 5), derandomized so a failure
reproduces. (Schemathesis' own pytest plugin does not run on pytest 9, so this drives its
strategies with Hypothesis directly.)
"""

import os

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from bookings_project.wsgi import application

ROLES = [None, "USER", "EVENT_ORGANIZER", "IT_OPERATOR", "ADMIN"]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
# Stateful and "accept any valid data" checks need seeded objects and links between
# operations; conformance of every response is what this run proves.
EXCLUDED_CHECKS = {"positive_data_acceptance", "use_after_free", "ensure_resource_availability",
                   "missing_required_header", "ignored_auth"}

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(databases=["default", "documents"])]


@pytest.fixture(autouse=True)
def _keep_connection_across_wsgi_requests():
    """Schemathesis calls the WSGI app directly, so Django's request signals run
    close_old_connections after every request, which on PostgreSQL closes the test's connection
    inside its transaction. Django's own test client disconnects it the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _checks():
    from schemathesis.checks import CHECKS

    return [check for check in CHECKS.get_all() if check.__name__ not in EXCLUDED_CHECKS]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
def test_every_operation_conforms_to_its_schema(role, make_user, token_for, settings):
    settings.RATELIMIT_ENABLE = False  # fuzzing is not an attack on the limiter; 429s are tested elsewhere
    headers = {} if role is None else {"Authorization": f"Bearer {token_for(make_user(roles=[role]))}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    # The bearer token is ours to set per role (not generated), and unknown query parameters
    # are ignored by design (clients add cache-busters), so neither counts as invalid input.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    checks = _checks()
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                                 suppress_health_check=list(HealthCheck))
            def run(case):
                # One savepoint per request: a database error in one (PostgreSQL aborts the
                # test's transaction) must not turn every later request into a 500.
                with transaction.atomic(), transaction.atomic(using="documents"):
                    case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except Unsatisfiable:
                # No schema-violating input exists (no parameters, or a free-form string id).
                assert mode == GenerationMode.NEGATIVE, f"{operation.path}: no valid input can be generated"
            except (Exception, BaseExceptionGroup) as exc:  # collect all (schemathesis raises a FailureGroup)
                failures.append(f"{operation.method.upper()} {operation.path} [{mode}]: {exc}"[:1500])
    assert not failures, "\n\n".join(failures)
