"""The JSON error envelope everywhere, and request ids."""

import re

import pytest

from accounts import services as account_services
from ops.models import SystemLog
from bookings_project.tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/auth/login", "/api/v1/user", "/auth/register",
                                  "/api/v1/auth/refresh"])
@pytest.mark.parametrize("payload", ['{"username": "a", ', "not json at all", "[1, 2", "\xff\xfe"])
def test_malformed_json_is_400_envelope(api_client, path, payload):
    response = api_client.post(path, payload.encode("latin-1"), content_type="application/json")
    body = assert_error(response, 400, path=path)
    assert "Traceback" not in body["message"]


def test_malformed_json_on_an_authenticated_endpoint(make_user, client_for):
    response = client_for(make_user()).post("/logs", b"{oops", content_type="application/json")
    assert_error(response, 400, path="/logs")


HOSTILE_BODIES = {
    "nested past the parser's recursion": "[" * 50_000 + "]" * 50_000,
    # Parsed fine, but storing it (JSONField) or printing it would exhaust the recursion limit.
    "nested past what can be stored": '{"message": "x", "additionalData": {"a": ' + "[" * 930 + "]" * 930 + "}}",
    "nested one level past the limit": '{"message": "x", "additionalData": {"a": ' + "[" * 63 + "]" * 63 + "}}",
    "number overflowing to infinity": '{"message": "x", "additionalData": {"n": 1e999}}',
    "NUL in a value": '{"message": "x", "additionalData": {"k": "a\\u0000b"}}',
    "NUL in a key": '{"message": "x", "additionalData": {"a\\u0000": "b"}}',
    "unpaired surrogate": '{"message": "x", "additionalData": {"k": "\\udc00"}}',
}


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/auth/register", "/logs", "/notifications", "/jobs"])
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_json_the_database_could_not_store_is_400_not_500(make_user, client_for, path, body):
    """PostgreSQL's json and text types refuse NUL, lone surrogates and infinities: they are
    refused at parse time, not by a failing INSERT."""
    client = client_for(make_user(roles=["IT_OPERATOR"]))
    body = assert_error(client.post(path, body.encode(), content_type="application/json"), 400, path=path)
    assert body["message"].startswith("Malformed request body")


def test_nesting_up_to_the_limit_is_fine(make_user, client_for):
    body = '{"eventType": "APP", "severity": "info", "message": "x", "additionalData": {"a": ' + "[" * 62 + "]" * 62 + "}}"
    assert client_for(make_user()).post("/logs", body.encode(), content_type="application/json").status_code == 201


def test_paired_surrogates_and_unicode_are_fine(make_user, client_for):
    body = ('{"eventType": "APP", "severity": "info", "message": "ok \\ud83d\\ude00 \u00fcn\u00efcode",'
            ' "additionalData": {"emoji": "\U0001F600"}}')
    response = client_for(make_user()).post("/logs", body.encode(), content_type="application/json")
    assert response.status_code == 201
    assert response.json()["message"] == "ok \U0001F600 \u00fcn\u00efcode"


@pytest.mark.parametrize("accept", ["text/html", "text/html,application/xhtml+xml;q=0.9", "image/png"])
@pytest.mark.parametrize("path, status", [("/api/v1/user/me", 401), ("/api/v1/items/999999", 404),
                                          ("/api/v1/items", 200)])
def test_any_accept_header_gets_json(api_client, accept, path, status):
    """A browser's Accept header gets JSON (not a 406 ahead of authentication, not HTML)."""
    response = api_client.get(path, HTTP_ACCEPT=accept)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    response.json()


@pytest.mark.parametrize("method", ["get", "post", "put", "delete", "patch"])
@pytest.mark.parametrize("path", ["/no/such/route", "/api/v1/nothing", "/api/v1/user/1/extra", "/logs/1"])
def test_unknown_route_is_json_404(api_client, method, path):
    body = assert_error(getattr(api_client, method)(path), 404, path=path)
    assert body["error"] == "not_found"


def test_wrong_method_is_405_envelope(make_user, client_for):
    client = client_for(make_user(roles=["ADMIN"]))
    assert_error(client.patch("/logs", {}, format="json"), 405, path="/logs")
    assert_error(client_for().get("/api/v1/auth/login"), 405, path="/api/v1/auth/login")


@pytest.mark.parametrize("method, path, allow", [
    ("patch", "/api/v1/items/1", "GET, PUT, DELETE, HEAD, OPTIONS"),
    ("delete", "/api/v1/items", "GET, POST, HEAD, OPTIONS"),
    ("patch", "/api/v1/bookings/1/status", "PUT, OPTIONS"),
    ("delete", "/api/v1/bookings/items/1", "GET, POST, HEAD, OPTIONS"),
    ("post", "/api/v1/reports/revenue", "GET, HEAD, OPTIONS"),
    ("patch", "/api/v1/user/1", "GET, PUT, DELETE, HEAD, OPTIONS"),
    ("delete", "/api/v1/bookings/me", "GET, HEAD, OPTIONS"),
    ("get", "/notifications", "POST, OPTIONS"),
    ("delete", "/jobs/1", "GET, HEAD, OPTIONS"),
    ("post", "/metrics", "GET, HEAD, OPTIONS"),
])
@pytest.mark.parametrize("caller", [None, ["USER"], ["EVENT_ORGANIZER"], ["IT_OPERATOR"], ["ADMIN"]])
def test_a_method_the_route_never_takes_is_405_for_every_caller(caller_client, caller, method, path, allow):
    """DRF authenticates and checks roles before it looks for the method's handler: PATCH on an
    item was a 401 anonymously, a 403 "Requires the EVENT_ORGANIZER or ADMIN role" for a USER (as
    if an organizer could PATCH it) and a 405 only for an organizer."""
    response = getattr(caller_client(caller), method)(path, {}, format="json")
    assert_error(response, 405, path=path, code="method_not_allowed")
    assert response["Allow"] == allow


def test_non_json_body_is_415_envelope(api_client):
    response = api_client.post("/api/v1/auth/login", {"username": "a", "password": "b"})  # multipart
    assert_error(response, 415, path="/api/v1/auth/login")


def test_oversized_body_is_a_json_error(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client.post("/api/v1/auth/login", b'{"username": "' + b"a" * 2000 + b'", "password": "x"}',
                               content_type="application/json")
    assert response.status_code in {400, 413}
    assert_error(response, response.status_code, path="/api/v1/auth/login")


def test_unhandled_error_is_500_envelope_without_trace(api_client, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(account_services, "auth_login", explode)
    api_client.raise_request_exception = False
    response = api_client.post("/api/v1/auth/login", {"username": "a", "password": "b"}, format="json")
    body = assert_error(response, 500, path="/api/v1/auth/login")
    assert body["error"] == "internal_error"
    assert "secret internal detail" not in response.content.decode()
    assert "Traceback" not in response.content.decode()



def test_an_unhandled_error_is_logged_with_its_traceback(api_client, monkeypatch, caplog):
    """The client sees no trace, so the log must: "Unhandled error on <path>" with the exception."""
    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(account_services, "auth_login", explode)
    api_client.raise_request_exception = False
    with caplog.at_level("ERROR"):
        response = api_client.post("/api/v1/auth/login", {"username": "a", "password": "b"}, format="json")
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.getMessage() == "Unhandled error on /api/v1/auth/login"]
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert record.exc_info[0] is RuntimeError and "secret internal detail" in caplog.text
    assert "Traceback" in caplog.text


def test_the_database_unavailable_in_a_view_is_503_with_retry_after(api_client, monkeypatch):
    """An OperationalError (database down, pool exhausted) is the service's passing trouble, not
    a bug: 503 and Retry-After, so clients and load balancers come back shortly."""
    from django.db import OperationalError

    def unreachable(**kwargs):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(account_services, "auth_login", unreachable)
    response = api_client.post("/api/v1/auth/login", {"username": "a", "password": "b"}, format="json")
    body = assert_error(response, 503, path="/api/v1/auth/login", code="database_unavailable")
    assert body["error"] == "service_unavailable"
    assert response["Retry-After"] == "2"


def test_the_database_unavailable_outside_the_api_is_503_too(client, monkeypatch):
    """The admin (its login page, its actions) is Django, not DRF: the same outage is the same
    503 with Retry-After there, not a 500."""
    from django.db import OperationalError

    from accounts import backends

    def unreachable(**kwargs):
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(backends, "auth_check", unreachable)
    client.raise_request_exception = False
    response = client.post("/admin/login/", {"username": "boss", "password": "x"})
    body = assert_error(response, 503, path="/admin/login/", code="database_unavailable")
    assert body["message"] == "Database temporarily unavailable, retry shortly" and response["Retry-After"] == "2"


# Every kind of error a client can meet, from one request each.
ERROR_CASES = [
    ("post", "/api/v1/user", {"username": "x"}, None, 400),
    ("get", "/api/v1/user/me", None, None, 401),
    ("get", "/api/v1/user", None, "USER", 403),
    ("get", "/api/v1/user/999999", None, "ADMIN", 404),
    ("put", "/api/v1/user/{admin}", {"roles": ["USER"]}, "ADMIN", 409),
    ("delete", "/logs", None, "ADMIN", 405),
]


@pytest.mark.parametrize("method, path, body, role, status", ERROR_CASES)
def test_every_error_has_the_envelope(make_user, client_for, method, path, body, role, status):
    user = make_user(roles=[role]) if role else None
    url = path.format(admin=user.pk if user else "")
    response = getattr(client_for(user), method)(url, body, format="json")
    assert_error(response, status, path=url)


def test_401_names_the_bearer_scheme(api_client):
    response = api_client.get("/api/v1/user/me")
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- request ids ------------------------------------------------------------------------------


def test_request_id_is_echoed_when_sent(api_client):
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID="abc-123.req:7")
    assert response["X-Request-ID"] == "abc-123.req:7"


def test_request_id_is_echoed_on_errors_too(api_client):
    response = api_client.get("/no/such/route", HTTP_X_REQUEST_ID="trace-404")
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-404"


@pytest.mark.parametrize("sent", [None, "", "has spaces", "x" * 129, "<script>", "ünïcode"])
def test_request_id_is_generated_when_absent_or_malformed(api_client, sent):
    extra = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}
    first = api_client.get("/healthz", **extra)["X-Request-ID"]
    second = api_client.get("/healthz", **extra)["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_request_id_is_recorded_with_system_log_entries(api_client):
    api_client.post("/api/v1/auth/login", {"username": "ghost", "password": "whatever1"}, format="json",
                    HTTP_X_REQUEST_ID="req-failed-login")
    assert SystemLog.objects.get(message="Failed login attempt").request_id == "req-failed-login"


@pytest.mark.parametrize("payload", ["null", "[1, 2]", '"text"', "42"])
def test_body_that_is_not_an_object_is_400_without_snake_case_keys(api_client, payload):
    response = api_client.post("/auth/login", payload, content_type="application/json")
    body = assert_error(response, 400, path="/auth/login")
    assert "fields" not in body and "non_field_errors" not in response.content.decode()
    assert body["message"] != "Validation failed"  # the reason itself is the message


@pytest.mark.parametrize("path", ["/api/v1/user/%C2%B2", "/api/v1/user/1.0", "/api/v1/user/-1",
                                  "/api/v1/user/99999999999999999999999"])
def test_odd_user_ids_are_404_not_500(make_user, client_for, path):
    client = client_for(make_user(roles=["ADMIN"]))
    client.raise_request_exception = False
    assert_error(client.get(path), 404)


def test_a_chunked_body_without_length_is_411_not_a_silent_empty_body(make_user, client_for):
    response = client_for(make_user()).post("/logs", b'{"eventType": "APP", "severity": "info", "message": "x"}',
                                             content_type="application/json", HTTP_TRANSFER_ENCODING="chunked",
                                             CONTENT_LENGTH="")
    body = assert_error(response, 411, path="/logs")
    assert "Content-Length" in body["message"]


@pytest.mark.parametrize("path", ["/api/v1/items", "/api/v1/user/me", "/logs"])
def test_a_format_the_route_does_not_render_is_400_naming_the_choices(make_user, client_for, path):
    response = client_for(make_user(roles=["IT_OPERATOR"])).get(path, {"format": "xml"})
    body = assert_error(response, 400, path=path)
    assert body["fields"] == {"format": ["Must be one of: json"]}


def test_an_endpoint_without_a_body_refuses_a_malformed_one_and_does_nothing(make_user, client_for):
    """Contract §8: malformed JSON is a 400, even where the body would be ignored — the action
    (a cancel, a delete, a job run) must not go ahead on a request the client got wrong."""
    from catalog.models import BookableItem
    from catalog.tests.factories import make_item
    from ops.jobs import job_create_notification
    from ops.models import Job, JobStatus
    from reservations.models import Booking, BookingStatus
    from reservations.services import booking_create

    admin, booker = make_user(roles=["ADMIN"]), make_user()
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]))
    booking = booking_create(user=booker, item_id=item.pk)
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    victim = make_user()
    attempts = [(client_for(booker).put, f"/api/v1/bookings/{booking.pk}/cancel"),
                (client_for(admin).put, f"/jobs/{job.pk}/execute"),
                (client_for(admin).delete, f"/api/v1/items/{item.pk}"),
                (client_for(admin).delete, f"/api/v1/user/{victim.pk}")]
    for send, path in attempts:
        assert_error(send(path, b"{not json", content_type="application/json"), 400, path=path)
    assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert BookableItem.objects.get(pk=item.pk).deleted_at is None
    victim.refresh_from_db()
    assert victim.is_active
    # An empty or well-formed body is ignored as before.
    assert client_for(booker).put(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 200


def test_money_is_written_exactly_and_the_same_way_whatever_else_is_in_the_response():
    from decimal import Decimal

    from bookings_project.content import ExactJSONRenderer

    render = ExactJSONRenderer().render
    assert render({"a": Decimal("1.10"), "b": Decimal("149.97")}) == b'{"a":1.1,"b":149.97}'
    assert render({"a": Decimal("1.10"), "b": Decimal("99999899990000.01"), "c": "\u2028"}) == (
        b'{"a":1.1,"b":99999899990000.01,"c":"\\u2028"}')  # 1.10 written as above next to an exact sum
    with pytest.raises(ValueError, match="not JSON compliant"):
        render({"a": Decimal("NaN")})


@pytest.mark.parametrize("path, body, field", [
    ("/logs", {"eventType": "APP", "severity": "info", "message": -9.2e-73}, "message"),
    ("/logs", {"eventType": 123, "severity": "info", "message": "m"}, "eventType"),
    ("/api/v1/items", {"name": 123, "startTime": "2031-09-15T10:00:00", "endTime": "2031-09-15T12:00:00",
                       "capacity": 5}, "name"),
    ("/api/v1/user", {"username": 42, "email": "a@example.com", "password": "Long-enough-pw-1"}, "username"),
])
def test_a_number_where_the_schema_says_string_is_400_not_its_text(make_user, client_for, path, body, field):
    """DRF's CharField would store 123 as "123": a body the schema calls invalid, accepted
    (schemathesis found it with a larger budget)."""
    client = client_for(make_user(roles=["ADMIN", "EVENT_ORGANIZER"]))
    assert_error(client.post(path, body, format="json"), 400, fields=[field])


@pytest.mark.parametrize("path, query, field", [
    ("/api/v1/bookings/me", "page=abc&page=1", "page"),       # sent twice: not "the last one wins"
    ("/api/v1/bookings/me", "page=2.0", "page"),              # the schema says integer
    ("/api/v1/bookings/me", "pageSize=5.0", "pageSize"),
    ("/api/v1/bookings/me", "page=%2B1", "page"),             # "+1"
    ("/api/v1/bookings/me", "page=%201", "page"),             # " 1"
    ("/api/v1/bookings/me", "page=", "page"),                 # sent empty: not "omitted"
    ("/logs", "pageSize=10&pageSize=100", "pageSize"),
    ("/api/v1/recommendations/users/me", "limit=5.0", "limit"),
])
def test_query_parameters_are_read_as_the_schema_says_or_refused(make_user, client_for, path, query, field):
    client = client_for(make_user(roles=["USER", "IT_OPERATOR"]))
    response = client.get(f"{path}?{query}")
    body = assert_error(response, 400, path=path)
    assert field in body["fields"], body
    assert client.get(f"{path}?{field}=1").status_code == 200


def test_exception_chain_follows_causes_then_contexts_once_each():
    from bookings_project.errors import exception_chain

    root, context = OSError("refused"), KeyError("while handling")
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__, wrapped.__context__ = root, context  # `raise … from root` inside an except
    root.__context__ = wrapped  # a chain that loops back

    assert list(exception_chain(wrapped)) == [wrapped, root]
    assert list(exception_chain(context)) == [context] and list(exception_chain(None)) == []


@pytest.mark.parametrize("method, path, body, field, choices", [
    ("post", "/logs", {"eventType": "APP", "severity": "ERROR", "message": "m"}, "severity",
     "debug, info, warning, error, critical"),
    ("post", "/api/v1/user", {"username": "enum_u", "email": "enum_u@example.com", "password": "Long-enough-pw-1",
                              "roles": ["MANAGER"]}, "roles.0", "USER, EVENT_ORGANIZER, ADMIN, IT_OPERATOR"),
    ("post", "/auth/register", {"email": "enum_c@example.com", "password": "Long-enough-pw-1", "role": "CUSTOMER"},
     "role", "admin, operator, supplier, customer"),
    ("post", "/jobs", {"type": "EMAIL"}, "type", "NOTIFICATION, RECONCILIATION"),
    ("get", "/jobs?status=done", None, "status", "queued, running, completed, failed"),
])
def test_an_unknown_enum_value_is_refused_naming_the_values_it_takes(make_user, client_for, method, path, body,
                                                                     field, choices):
    """An integrator who sends "ERROR" for "error" (or a role in the other API's spelling) reads
    the fix in the field error itself."""
    client = client_for(make_user(roles=["IT_OPERATOR"]))
    response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
    body = assert_error(response, 400, fields=[field])
    assert body["fields"][field][0].endswith(f"is not a valid choice; use one of: {choices}."), body


@pytest.mark.parametrize("path, query, field", [
    ("/api/v1/items", "page=0", "page"),                        # out of range (the serializer)
    ("/api/v1/items", "organizerId=abc", "organizerId"),        # not an integer (the raw value)
    ("/api/v1/items", "from=yesterday", "from"),
    ("/api/v1/bookings/me", "pageSize=101", "pageSize"),
    ("/api/v1/users/me/conflicts", "startTime=2031-01-01T10:00:00&endTime=2031-01-01T09:00:00", "endTime"),
    ("/api/v1/recommendations/users/me", "limit=0", "limit"),
    ("/api/v1/reports/revenue", "startDate=2031-13-01", "startDate"),
    ("/logs", "severity=loud", "severity"),
    ("/jobs", "page=0", "page"),
])
def test_a_bad_query_parameter_gets_one_message_whichever_check_caught_it(make_user, client_for, path, query, field):
    """`?page=0` said "Validation failed" where `?page=abc` said "Invalid query parameters"."""
    client = client_for(make_user(roles=["ADMIN", "IT_OPERATOR"]))
    body = assert_error(client.get(f"{path}?{query}"), 400, path=path, fields=[field])
    assert body["message"] == "Invalid query parameters"


def test_query_problems_of_both_kinds_are_reported_together(make_user, client_for):
    body = assert_error(client_for(make_user()).get("/api/v1/items?organizerId=abc&from=yesterday&pageSize=0"), 400)
    assert set(body["fields"]) == {"organizerId", "from"}  # (paging is read after the filters)


@pytest.mark.parametrize("method, path, roles, message", [
    ("get", "/api/v1/reports/revenue", ["USER"], "Requires the ADMIN role"),
    ("get", "/api/v1/user", ["EVENT_ORGANIZER"], "Requires the ADMIN role"),
    ("post", "/api/v1/items", ["USER"], "Requires the EVENT_ORGANIZER or ADMIN role"),
    ("post", "/api/v1/bookings/items/1", ["IT_OPERATOR"], "Requires the USER or EVENT_ORGANIZER or ADMIN role"),
    ("get", "/logs", ["USER"], "Requires the ADMIN or IT_OPERATOR role (admin or operator in the core API)"),
    ("post", "/jobs", ["EVENT_ORGANIZER"],
     "Requires the ADMIN or IT_OPERATOR role (admin or operator in the core API)"),
])
def test_a_role_refusal_names_the_roles_that_would_do(make_user, client_for, method, path, roles, message):
    """DRF's "You do not have permission to perform this action." told an integrator nothing."""
    body = assert_error(getattr(client_for(make_user(roles=roles)), method)(path, {}, format="json"), 403, path=path)
    assert body["message"] == message


def test_a_missing_token_401_says_how_to_send_one(api_client):
    body = assert_error(api_client.get("/api/v1/bookings/me"), 401)
    assert "Authorization: Bearer <token>" in body["message"] and "/auth/login" in body["message"]
    # A reason of its own is kept, and so is the code of a token not sent (it was "invalid_token",
    # which tells a client to sign in again rather than to send the token it holds).
    body = assert_error(api_client.get("/api/v1/items?onlyMyItems=true"), 401, code="not_authenticated")
    assert body["message"] == "onlyMyItems=true needs a token"


def test_a_415_says_which_content_type_to_send(api_client):
    body = assert_error(api_client.post("/api/v1/auth/login", {"username": "a", "password": "b"}), 415)
    assert body["message"].startswith('Unsupported media type "multipart/form-data')
    assert body["message"].endswith("send the body as JSON (Content-Type: application/json)")


def test_a_malformed_core_api_time_is_told_what_one_looks_like(make_user, client_for):
    client = client_for(make_user(roles=["IT_OPERATOR"]))
    message = assert_error(client.get("/logs?from=yesterday"), 400, fields=["from"])["fields"]["from"][0]
    assert "2024-08-12T10:15:30Z" in message and "without an offset: UTC" in message


@pytest.mark.parametrize("method, path, body, field", [
    # A misspelling that, ignored, would publish a private item or book the default tier.
    ("post", "/api/v1/items", {"name": "Board meeting", "startTime": "2031-01-01T10:00:00",
                               "endTime": "2031-01-01T11:00:00", "capacity": 5, "private": True}, "private"),
    ("post", "/api/v1/bookings/items/{item}", {"tier": "VIP"}, "tier"),
    ("put", "/api/v1/user/{me}", {"userName": "renamed"}, "userName"),
    ("post", "/jobs", {"type": "NOTIFICATION", "notification": {
        "recipientEmail": "a@example.com", "subject": "s", "message": "m", "cc": "b@example.com"}},
     "notification.cc"),
    ("post", "/auth/login", {"email": "a@example.com", "password": "x", "remember": True}, "remember"),
])
def test_a_body_field_the_endpoint_does_not_take_is_400_naming_it(make_user, client_for, method, path, body,
                                                                  field):
    from catalog.models import BookableItem
    from catalog.tests.factories import make_item

    me = make_user(roles=["EVENT_ORGANIZER", "ADMIN"])
    item = make_item(organizer=me)
    items_before = BookableItem.objects.count()
    response = getattr(client_for(me), method)(path.format(item=item.pk, me=me.pk), body, format="json")
    body = assert_error(response, 400)
    assert list(body["fields"]) == [field] and body["fields"][field][0].startswith("Unknown field; this object takes: ")
    me.refresh_from_db()
    assert BookableItem.objects.count() == items_before and me.username != "renamed" and not me.bookings.exists()


def test_unknown_fields_are_reported_with_the_other_errors(make_user, client_for):
    response = client_for(make_user(roles=["EVENT_ORGANIZER"])).post("/api/v1/items", {
        "name": "", "startTime": "2031-01-01T10:00:00", "endTime": "2031-01-01T11:00:00", "capacity": 0,
        "colour": "red"}, format="json")
    assert set(assert_error(response, 400)["fields"]) == {"name", "capacity", "colour"}


@pytest.mark.parametrize("extra", [
    {"priceTiers": [{"sold": 1}] * 50_000},  # far past the 50 tiers an item may have
    {f"k{i}": 0 for i in range(50_000)},
])
def test_a_body_of_unknown_fields_is_not_answered_with_an_error_many_times_its_size(make_user, client_for, extra):
    """A 1 MB body of unknown keys was answered with 8–11 MB of "Unknown field" messages (one per
    key, each listing the fields the object takes): cheap to send, costly to build and receive.
    DRF alone answers such a tier list with one error (its length)."""
    import json

    body = json.dumps({"name": "x", "startTime": "2031-01-01T10:00:00", "endTime": "2031-01-01T11:00:00",
                       "capacity": 1, **extra})
    response = client_for(make_user(roles=["EVENT_ORGANIZER"])).post("/api/v1/items", body,
                                                                      content_type="application/json")
    fields = assert_error(response, 400)["fields"]
    assert len(response.content) < 10_000, len(response.content)
    assert any(name.startswith(("priceTiers", "k")) for name in fields)


def test_free_form_objects_take_any_keys(make_user, client_for):
    caller = make_user(roles=["ADMIN"])
    logged = client_for(caller).post("/logs", {"eventType": "X", "severity": "info", "message": "m",
                                               "additionalData": {"anything": 1, "nested": {"x": True}}}, format="json")
    queued = client_for(caller).post("/notifications", {"type": "GENERIC", "recipient": "a@example.com",
                                                        "data": {"whatever": "goes", "seats": 2}}, format="json")
    assert (logged.status_code, queued.status_code) == (201, 202)


def test_every_business_error_has_its_own_code():
    """`code` is what clients branch on: each business error names its own, and no two share one."""
    import accounts.exceptions  # noqa: F401 - (imported for their subclasses)
    import catalog.exceptions  # noqa: F401
    import reservations.exceptions  # noqa: F401
    from bookings_project import errors

    generic = {errors.ApplicationError, errors.ValidationFailed, errors.NotFound, errors.Forbidden,
               errors.Conflict, errors.ServiceUnavailable, errors.RateLimited}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    specific = {cls for cls in subclasses(errors.ApplicationError) if cls not in generic and "tests" not in cls.__module__}
    codes = [cls.__dict__.get("code") for cls in specific]
    assert len(specific) > 20 and None not in codes, [cls for cls in specific if "code" not in cls.__dict__]
    assert len(set(codes)) == len(codes)


def test_a_booking_client_can_tell_every_refusal_apart_by_code(make_user, client_for, api_client, organizer):
    from catalog.tests.factories import make_item
    from reservations.tests.factories import once_started

    customer, rival = make_user(), make_user()
    client = client_for(customer)
    item = make_item(organizer, capacity=2, tiers=[("Early", "10.00", 1), ("Late", "20.00", 1)])
    overlapping = make_item(organizer, name="Same time")

    def book(target, body=None, using=client):
        return using.post(f"/api/v1/bookings/items/{target}", body or {}, format="json")

    assert_error(book(item.pk, {"priceTier": "VIP"}), 400, code="unknown_tier")
    assert book(item.pk, {"priceTier": "Early"}).status_code == 201
    assert_error(book(item.pk, {"priceTier": "Early"}, client_for(rival)), 400, code="tier_sold_out")
    assert_error(book(overlapping.pk), 409, code="booking_time_conflict")
    assert book(item.pk, using=client_for(rival)).status_code == 201
    assert_error(book(item.pk, using=client_for(make_user())), 400, code="capacity_exceeded")
    assert_error(book(item.pk, {"priceTier": 5}), 400, code="validation_failed", fields=["priceTier"])
    assert_error(book(999999), 404, code="item_not_found")
    assert_error(book(item.pk, using=api_client), 401, code="not_authenticated")
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    assert_error(book(item.pk, using=api_client), 401, code="invalid_token")
    assert_error(client.post(f"/api/v1/bookings/items/{item.pk}", b"{oops", content_type="application/json"), 400,
                 code="malformed_body")
    with once_started(overlapping):
        assert_error(book(overlapping.pk, using=client_for(rival)), 400, code="item_already_started")
    assert_error(client.get("/no/such/route"), 404, code="not_found")
