"""Request ids on log lines, including the ones Django writes after the response (django.request)."""

import logging

import pytest
from django.conf import settings

from ops.middleware import RequestIDLogFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_log(caplog):
    """django.request records as the console handler sees them (its request-id filter)."""
    caplog.set_level(logging.WARNING, logger="django.request")
    request_id = RequestIDLogFilter()
    caplog.handler.addFilter(request_id)
    formatter = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    yield lambda: [formatter.format(r) for r in caplog.records if r.name == "django.request"]
    caplog.handler.removeFilter(request_id)


@pytest.mark.parametrize("path", ["/no-such-route", "/jobs/00000000-0000-0000-0000-000000000000"])
def test_django_request_log_line_of_a_404_carries_the_sent_request_id(client_for, make_user, request_log, path):
    client = client_for(make_user(roles=["IT_OPERATOR"]))
    response = client.get(path, HTTP_X_REQUEST_ID="trace-404.a")

    assert response.status_code == 404
    [line] = request_log()
    assert "[trace-404.a] django.request:" in line


def test_django_request_log_line_carries_the_generated_id_when_none_was_sent(api_client, request_log):
    response = api_client.get("/no-such-route", HTTP_X_REQUEST_ID="not a valid id")

    [line] = request_log()
    assert f"[{response['X-Request-ID']}] django.request:" in line and "[-]" not in line
