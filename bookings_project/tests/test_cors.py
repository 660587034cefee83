"""Browser apps on other origins (CORS_ALLOWED_ORIGINS): the API answers them, the admin does not."""

import pytest

from bookings_project.tests.test_settings import import_settings

pytestmark = pytest.mark.django_db(databases=["default", "documents"])

APP = "https://app.example.com"


@pytest.fixture
def allowed(settings):
    settings.CORS_ALLOWED_ORIGINS, settings.CORS_ALLOW_ALL_ORIGINS = [APP], False


def test_no_origin_is_answered_by_default(api_client):
    response = api_client.get("/api/v1/items", HTTP_ORIGIN=APP)
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response


def test_an_allowed_origin_reads_responses_and_the_headers_a_client_needs(api_client, allowed):
    response = api_client.get("/api/v1/items?page=1&pageSize=5", HTTP_ORIGIN=APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP and "origin" in response["Vary"].lower()
    exposed = {name.strip().lower() for name in response["Access-Control-Expose-Headers"].split(",")}
    assert {"x-total-count", "link", "etag", "x-request-id", "location", "retry-after"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response  # bearer tokens, never cookies
    assert "Access-Control-Allow-Origin" not in api_client.get("/api/v1/items", HTTP_ORIGIN="https://evil.example")


def test_a_preflight_is_answered_without_a_token(api_client, allowed):
    response = api_client.options("/api/v1/bookings/items/1", HTTP_ORIGIN=APP,
                                  HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                  HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert {"authorization", "content-type", "idempotency-key", "if-none-match"} <= {
        name.strip() for name in response["Access-Control-Allow-Headers"].split(",")}
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_a_preflight_gets_a_request_id_like_every_request(api_client, allowed):
    """The CORS middleware answers a preflight itself: outside it, the request id middleware
    still gives it the id its access log line carries."""
    response = api_client.options("/jobs/1/execute", HTTP_ORIGIN=APP, HTTP_ACCESS_CONTROL_REQUEST_METHOD="PUT",
                                  HTTP_X_REQUEST_ID="trace-preflight")
    assert response["Access-Control-Allow-Origin"] == APP and response["X-Request-ID"] == "trace-preflight"


def test_every_header_the_schema_documents_may_be_sent_and_read(api_client, allowed):
    """A response header the script cannot read is as good as absent (Idempotent-Replayed: was
    this booking made now, or by the earlier try?)."""
    schema = api_client.get("/api/schema/?format=json").json()
    operations = [operation for methods in schema["paths"].values() for operation in methods.values()]
    sent = {parameter["name"].lower() for operation in operations for parameter in operation.get("parameters", [])
            if parameter["in"] == "header"}
    read = {name.lower() for operation in operations for response in operation["responses"].values()
            for name in response.get("headers", {})}
    response = api_client.options("/api/v1/bookings/items/1", HTTP_ORIGIN=APP,
                                  HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    def listed(header):
        return {name.strip().lower() for name in response[header].split(",")}

    assert "idempotency-key" in sent and sent <= listed("Access-Control-Allow-Headers")
    assert "idempotent-replayed" in read and read <= listed("Access-Control-Expose-Headers")


@pytest.mark.parametrize("path", ["/auth/login", "/api/v1/auth/login"])
def test_errors_are_readable_by_the_app_too(api_client, allowed, path):
    """A browser hides a response without the header from the script: the app could not tell a
    401 from a network failure."""
    response = api_client.post(path, {"email": "x@example.com", "username": "x", "password": "wrong"},
                               format="json", HTTP_ORIGIN=APP)
    assert response.status_code in (400, 401) and response["Access-Control-Allow-Origin"] == APP
    unauthenticated = api_client.get("/logs", HTTP_ORIGIN=APP)
    assert unauthenticated.status_code == 401 and unauthenticated["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/jobs/1/extra", "/logs/1", "/logs/", "/notifications/1",
                                  "/metrics/", "/reconciliation/nothing", "/auth/nothing"])
def test_an_unknown_route_under_the_api_is_a_404_the_app_can_read(api_client, allowed, path):
    """Not a network failure: every resource of the core API has its subpaths in, as /jobs has."""
    response = api_client.get(path, HTTP_ORIGIN=APP)
    assert response.status_code == 404 and response["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("path", ["/admin/login/", "/accounts/reset/MQ/set-password/", "/healthz"])
def test_pages_with_session_cookies_and_probes_are_no_part_of_it(api_client, allowed, path):
    assert "Access-Control-Allow-Origin" not in api_client.get(path, HTTP_ORIGIN=APP)


def test_a_star_answers_any_origin(api_client, settings):
    settings.CORS_ALLOWED_ORIGINS, settings.CORS_ALLOW_ALL_ORIGINS = [], True
    response = api_client.get("/api/v1/items", HTTP_ORIGIN="https://anywhere.example")
    assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("value, origins", [
    ("", []), ("*", ["*"]), ("https://app.example.com", ["https://app.example.com"]),
    ("https://app.example.com, http://localhost:5173", ["https://app.example.com", "http://localhost:5173"]),
    ("http://[::1]:5173,http://127.0.0.1:8080", ["http://[::1]:5173", "http://127.0.0.1:8080"]),
])
def test_origins_are_read_from_the_environment(tmp_path, value, origins):
    result = import_settings(tmp_path, show="(s.CORS_ALLOWED_ORIGINS, s.CORS_ALLOW_ALL_ORIGINS)",
                             CORS_ALLOWED_ORIGINS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(([] if origins == ["*"] else origins, origins == ["*"]))


def test_an_origin_not_written_as_browsers_send_it_is_refused_naming_their_form(tmp_path):
    """The middleware compares the Origin header's text: `https://App.example.com:443` would
    never be answered, whatever the browser on that site sends."""
    result = import_settings(tmp_path, CORS_ALLOWED_ORIGINS="https://App.example.com:443")
    assert result.returncode != 0 and "'https://app.example.com', not 'https://App.example.com:443'" in result.stderr
