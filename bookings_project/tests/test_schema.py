"""OpenAPI 3 schema and the offline (no CDN) documentation pages."""

import re

import pytest
from drf_spectacular.validation import validate_schema

from bookings_project.testing import REVOKED_CALLERS

pytestmark = pytest.mark.django_db

FOUNDATION_OPERATIONS = {
    "/api/v1/auth/login": {"post"},
    "/api/v1/auth/refresh": {"post"},
    "/api/v1/user": {"get", "post"},
    "/api/v1/user/me": {"get"},
    "/api/v1/user/{id}": {"get", "put", "delete"},
    "/auth/register": {"post"},
    "/auth/login": {"post"},
    "/logs": {"get", "post"},
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_a_valid_openapi_3_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on an invalid document


@pytest.mark.parametrize("path, methods", FOUNDATION_OPERATIONS.items())
def test_schema_documents_every_foundation_operation(schema, path, methods):
    assert path in schema["paths"], sorted(schema["paths"])
    assert methods <= set(schema["paths"][path])


def test_schema_documents_the_error_envelope_and_bearer_auth(schema):
    error = schema["components"]["schemas"]["Error"]
    assert {"status", "error", "code", "message", "path", "timestamp"} <= set(error["required"])
    login = schema["paths"]["/auth/login"]["post"]
    assert {"200", "401", "429"} <= set(login["responses"])
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    assert {"jwtAuth": []} in schema["paths"]["/logs"]["get"]["security"]


def test_schema_shows_no_password_in_responses(schema):
    for path in ("/api/v1/user", "/api/v1/user/{id}", "/auth/register"):
        for operation in schema["paths"][path].values():
            for response in operation.get("responses", {}).values():
                assert "password" not in str(response.get("content", {})).lower()
    user = schema["components"]["schemas"]["UserResponse"]
    assert set(user["properties"]) == {"id", "username", "email", "roles", "bookingReminders"}


def test_swagger_ui_asks_no_external_validator(api_client):
    """Swagger UI would otherwise load a badge from validator.swagger.io on any non-local host."""
    assert re.search(r'"validatorUrl":\s*null', api_client.get("/api/docs/").content.decode())


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_only_local_static_files(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html.lower()
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    scripts_and_styles = [a for a in assets if a.endswith((".js", ".css")) or "static" in a]
    assert scripts_and_styles, html
    for asset in assets:
        assert not re.match(r"(https?:)?//", asset), f"CDN reference {asset} in {path}"
    assert not re.search(r"""["'](https?:)?//[^"']*\.(js|css)\b""", html)
    for asset in scripts_and_styles:
        assert asset.startswith("/static/"), asset
        assert api_client.get(asset).status_code == 200, asset  # served by the app itself


@pytest.mark.parametrize("caller, status", [
    ("anonymous", 200), ("USER", 200), ("EVENT_ORGANIZER", 200), ("IT_OPERATOR", 200), ("ADMIN", 200),
    ("USER+IT_OPERATOR", 200), ("EVENT_ORGANIZER+IT_OPERATOR", 200),
    # A token that is sent is checked, here as on the public item reads (docs/DECISIONS.md).
    *((revoked, 401) for revoked in REVOKED_CALLERS),
])
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_docs_are_public(caller_client, caller, status, path):
    client = caller_client(caller if caller in REVOKED_CALLERS else None if caller == "anonymous" else caller.split("+"))
    response = client.get(path)
    assert response.status_code == status
    if status == 401:
        assert response.json()["status"] == 401


@pytest.mark.parametrize("method", ["options", "post", "put", "delete", "patch"])
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_answer_other_methods_405_json(api_client, method, path):
    """(OPTIONS rendered the Swagger UI template without its context: a 500 for every caller.)"""
    response = getattr(api_client, method)(path)
    assert response.status_code == 405 and response.json()["status"] == 405


def test_user_id_path_parameter_is_an_integer(schema):
    for operation in schema["paths"]["/api/v1/user/{id}"].values():
        (param,) = [p for p in operation["parameters"] if p["name"] == "id"]
        assert param["in"] == "path" and param["schema"]["type"] == "integer"


def test_schema_tells_booking_clients_what_a_503_means(schema):
    """A 503 on POST /bookings can be 'nothing saved' or 'outcome unknown': clients need both."""
    description = schema["paths"]["/api/v1/bookings/items/{item_id}"]["post"]["responses"]["503"]["description"]
    assert "nothing was saved" in description and "GET /api/v1/bookings/me" in description
    assert schema["paths"]["/api/v1/user/me"]["get"]["responses"]["503"]["description"] == \
        "A backing service is unavailable; retry"


def test_schema_documents_the_idempotency_key_header(schema):
    post = schema["paths"]["/api/v1/bookings/items/{item_id}"]["post"]
    [header] = [p for p in post["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and not header.get("required", False)
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_forbid_images_and_fonts_from_elsewhere(api_client, path):
    """ReDoc's bundle names a logo on a CDN: the page's policy keeps the browser from loading it."""
    policy = api_client.get(path)["Content-Security-Policy"]
    assert "img-src 'self' data: blob:" in policy and "font-src 'self' data:" in policy


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            yield path, method, concrete, set(operation["responses"])


PROBES = {  # (token: None = garbage, else whose; body; content type[; more of the request's META])
    "a token that is not a JWT": (None, None, None),
    "a text/plain body": ("admin", "x", "text/plain"),
    "a body over the size limit": ("admin", '{"a": "' + "x" * 3_000_000 + '"}', "application/json"),
    "a chunked body without a length": ("admin", "{}", "application/json",
                                        {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""}),
}


@pytest.mark.parametrize("probe", PROBES)
def test_every_operation_documents_what_cross_cutting_failures_return(schema, probe, settings, admin, token_for):
    """Whatever an endpoint answers to a bad token, a body it cannot parse or one too large is
    in its documented responses (a client generated from the schema knows every status). Body
    probes carry an ADMIN's token, so they reach the parser wherever one is allowed in."""
    from rest_framework.test import APIClient

    settings.RATELIMIT_ENABLE = False  # (the setting RATE_LIMIT_ENABLED sets; a made-up name turned nothing off)
    who, body, content_type, *more = PROBES[probe]
    token = token_for(admin) if who else "garbage"
    undocumented = []
    for path, method, concrete, documented in _operations(schema):
        if body is not None and method not in {"post", "put", "patch"}:
            continue
        response = getattr(APIClient(), method)(concrete, data=body, content_type=content_type,
                                                HTTP_AUTHORIZATION=f"Bearer {token}", **(more[0] if more else {}))
        if str(response.status_code) not in documented:
            undocumented.append(f"{method.upper()} {path}: {response.status_code}")
    assert not undocumented, undocumented


def test_every_operation_says_what_it_does_in_its_own_words(schema):
    """A summary for the operation list, and no description shared by operations of different
    methods (the view's docstring, "POST: book the item … GET: its bookings", on both)."""
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert [(p, m) for p, m, op in operations if not op.get("summary")] == []
    by_description = {}
    for path, method, op in operations:
        by_description.setdefault(op.get("description", ""), []).append((path, method))
    shared = {text: where for text, where in by_description.items() if text and len(where) > 1}
    assert shared == {}


def test_no_operation_is_described_by_its_view_class_s_docstring(schema):
    """A class's docstring is for the code's reader and describes all it serves: GET
    /api/v1/user/me was described as "/api/v1/user: registration (public), list (ADMIN), …"."""
    import inspect

    from django.urls import resolve

    borrowed = []
    for path, operations in schema["paths"].items():
        view = getattr(resolve(re.sub(r"\{[^}]+\}", "1", path)).func, "cls", None)
        docstring = inspect.cleandoc(view.__doc__ or "") if view else ""
        borrowed += [f"{method.upper()} {path}" for method, operation in operations.items()
                     if docstring and operation.get("description", "").strip() == docstring]
    assert borrowed == []


@pytest.mark.parametrize("path", ["/api/v1/items", "/api/v1/bookings/me", "/api/v1/user",
                                  "/api/v1/bookings/items/{item_id}", "/api/v1/recommendations/users/me"])
def test_booking_list_paging_parameters_are_bounded_like_the_core_lists(schema, path):
    params = {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}
    assert params["page"] == {"type": "integer", "minimum": 1, "default": 1}
    assert params["pageSize"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}


def test_request_bodies_are_not_named_twice_request(schema):
    names = set(schema["components"]["schemas"])
    assert not {n for n in names if n.endswith("RequestRequest")}, sorted(names)
    assert {"BookingRequest", "ItemRequest", "ItemUpdateRequest", "NotificationRequest"} <= names


def test_enum_values_in_responses_are_documented_as_enums(schema):
    components = schema["components"]["schemas"]
    assert components["Log"]["properties"]["severity"] == {"$ref": "#/components/schemas/SeverityEnum"}
    assert components["CoreUser"]["properties"]["role"] == {"$ref": "#/components/schemas/RoleEnum"}
    for name in ("Queued", "ReconciliationEventQueued"):
        assert components[name]["properties"]["status"]["allOf"] == [{"$ref": "#/components/schemas/JobStatusEnum"}]


@pytest.mark.parametrize("path", ["/api/v1/user", "/auth/register"])
def test_a_registration_403_is_described_as_the_role_refusal_it_is(schema, path):
    assert "self-registration" in schema["paths"][path]["post"]["responses"]["403"]["description"]


def test_request_bodies_are_closed_objects_as_the_api_reads_them(schema):
    """A field an endpoint does not take is a 400 (valid_data), so the schema says so; a
    free-form object inside (a log's additionalData) stays open."""
    bodies = {name: component for name, component in schema["components"]["schemas"].items()
              if name.endswith("Request")}
    assert len(bodies) > 15
    assert {name for name, component in bodies.items() if component.get("additionalProperties") is not False} == set()
    assert schema["components"]["schemas"]["LogCreateRequest"]["properties"]["additionalData"].get(
        "additionalProperties") is not False
