"""Request ids on log lines, including the ones Django writes after the response (django.request)."""

import logging
from datetime import UTC, datetime

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


@pytest.mark.parametrize("sent", ["trace-1\n", "trace-1\r\n", "\n"])
def test_a_request_id_ending_in_a_newline_is_replaced_not_echoed_into_a_500(api_client, request_log, sent):
    """`$` matched before a trailing newline: the id was kept, and Django refused it as a header."""
    response = api_client.get("/no-such-route", HTTP_X_REQUEST_ID=sent)

    assert response.status_code == 404
    assert response["X-Request-ID"] != sent and "\n" not in response["X-Request-ID"]
    [line] = request_log()
    assert f"[{response['X-Request-ID']}] django.request:" in line


def test_log_lines_are_dated_in_utc_so_the_hour_a_dst_change_repeats_reads_twice_apart(settings):
    """The console handler's lines (web, worker and beat) carry UTC with Z, as the core API's
    times: in the local wall clock, New York's 01:30 EDT and 01:30 EST printed the same."""
    settings.TIME_ZONE = "America/New_York"  # (Django sets the process's TZ, which logging reads)
    [console] = [h for h in logging.getLogger().handlers if h.name == "console"]
    lines = []
    for moment in (datetime(2031, 11, 2, 5, 30, tzinfo=UTC), datetime(2031, 11, 2, 6, 30, 0, 250000, tzinfo=UTC)):
        record = logging.makeLogRecord({"name": "ops.events", "levelno": logging.INFO, "levelname": "INFO",
                                        "msg": "hello", "created": moment.timestamp(), "request_id": "-"})
        lines.append(console.format(record))
    assert lines == ["2031-11-02T05:30:00.000Z INFO [-] ops.events: hello",
                     "2031-11-02T06:30:00.250Z INFO [-] ops.events: hello"]
