"""The core API's lists and the user list run the same number of queries for 1 row and for 40."""

import pytest

from bookings_project.tests.helpers import list_cost
from ops.jobs import job_create_notification, job_create_reconciliation
from ops.services import system_log_create

PATHS = ("/logs?pageSize=100", "/jobs?pageSize=100", "/reconciliation/jobs?pageSize=100", "/api/v1/user")


def _rows_for(user, n: int) -> None:
    for i in range(n):
        system_log_create(event_type="AUTH", severity="info", message="m", user_id=user.pk, reported_by=user)
        job_create_notification(recipient_email=f"r{user.pk}-{i}@example.com", subject="s", message="m", actor=user)
        job_create_reconciliation(entity_type="item", entity_id=i + 1, actor=user)


@pytest.mark.django_db
def test_lists_cost_the_same_for_one_row_and_forty(make_user, client_for):
    admin = make_user(roles=["ADMIN"])
    client = client_for(admin)
    _rows_for(admin, 1)
    one = {path: list_cost(client, path) for path in PATHS}
    for _ in range(39):
        _rows_for(make_user(), 1)
    forty = {path: list_cost(client, path) for path in PATHS}

    for path in PATHS:
        assert forty[path][1] >= 40 > one[path][1], path
        assert forty[path][0] == one[path][0], path
