"""OWASP API Security Top 10 (2023) checks that cut across apps (docs/SECURITY.md maps every
item to its tests). Object-level authorization is checked for every templated route in the
OpenAPI schema: a new `{id}` route without a row in BOLA_CASES fails the inventory test."""

import re
import socket

import pytest
from django.test import override_settings
from django.utils import timezone

from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import Document, Job
from ops.reconciliation import reconciliation_run
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create

pytestmark = pytest.mark.django_db(databases=["default", "documents"])


@pytest.fixture
def world(make_user):
    """Two organizers, two customers, a private and a public item of organizer A, a booking of customer A."""
    org_a, org_b = make_user(roles=["EVENT_ORGANIZER"]), make_user(roles=["EVENT_ORGANIZER"])
    cust_a, cust_b = make_user(), make_user()
    public = make_item(org_a, name="Public", capacity=5, tiers=[("Std", "10.00", 5)])
    private = make_item(org_a, name="Private", capacity=5, is_private=True,
                        start=public.start_time + timezone.timedelta(days=1))
    booking = booking_create(user=cust_a, item_id=public.pk)
    job = Job.objects.create(type="NOTIFICATION", params={"recipientEmail": "a@example.com"})
    return {"org_a": org_a, "org_b": org_b, "cust_a": cust_a, "cust_b": cust_b, "public": public,
            "private": private, "booking": booking, "job": job}


# (method, schema path, path built from the world, attacker, body, allowed statuses)
BOLA_CASES = [
    ("GET", "/api/v1/user/{id}", lambda w: f"/api/v1/user/{w['cust_a'].pk}", "cust_b", None, {403}),
    ("PUT", "/api/v1/user/{id}", lambda w: f"/api/v1/user/{w['cust_a'].pk}", "cust_b", {"email": "x@evil.test"}, {403}),
    ("DELETE", "/api/v1/user/{id}", lambda w: f"/api/v1/user/{w['cust_a'].pk}", "cust_b", None, {403}),
    ("GET", "/api/v1/user/{id}/export", lambda w: f"/api/v1/user/{w['cust_a'].pk}/export", "cust_b", None, {403}),
    ("GET", "/api/v1/items/{item_id}", lambda w: f"/api/v1/items/{w['private'].pk}", "org_b", None, {404}),
    ("PUT", "/api/v1/items/{item_id}", lambda w: f"/api/v1/items/{w['public'].pk}", "org_b", {"name": "Mine now"}, {403, 404}),
    ("DELETE", "/api/v1/items/{item_id}", lambda w: f"/api/v1/items/{w['public'].pk}", "org_b", None, {403, 404}),
    ("GET", "/api/v1/items/{item_id}/availability", lambda w: f"/api/v1/items/{w['private'].pk}/availability",
     "cust_b", None, {404}),
    ("POST", "/api/v1/bookings/items/{item_id}", lambda w: f"/api/v1/bookings/items/{w['private'].pk}",
     "cust_b", {}, {404}),
    ("GET", "/api/v1/bookings/items/{item_id}", lambda w: f"/api/v1/bookings/items/{w['public'].pk}",
     "org_b", None, {403, 404}),
    ("PUT", "/api/v1/bookings/{booking_id}/cancel", lambda w: f"/api/v1/bookings/{w['booking'].pk}/cancel",
     "cust_b", None, {404}),
    ("PUT", "/api/v1/bookings/{booking_id}/status", lambda w: f"/api/v1/bookings/{w['booking'].pk}/status",
     "org_b", {"status": "CANCELLED"}, {404}),
    ("GET", "/jobs/{id}", lambda w: f"/jobs/{w['job'].pk}", "cust_a", None, {403}),
    ("PUT", "/jobs/{id}/execute", lambda w: f"/jobs/{w['job'].pk}/execute", "org_a", None, {403}),
]


def test_every_templated_route_has_an_object_level_authorization_case(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    templated = {(method.upper(), path) for path, ops in schema["paths"].items() if "{" in path
                 for method in ops if method in {"get", "put", "post", "delete", "patch"}}
    assert templated == {(method, path) for method, path, *_ in BOLA_CASES}


@pytest.mark.parametrize("method, schema_path, build, attacker, body, allowed", BOLA_CASES,
                         ids=[f"{c[0]} {c[1]}" for c in BOLA_CASES])
def test_object_level_authorization(world, client_for, method, schema_path, build, attacker, body, allowed):
    response = getattr(client_for(world[attacker]), method.lower())(build(world), body, format="json")
    assert response.status_code in allowed, response.content
    # Nothing changed behind the refusal.
    world["booking"].refresh_from_db()
    assert world["booking"].status == BookingStatus.CONFIRMED
    assert world["cust_a"].__class__.objects.get(pk=world["cust_a"].pk).is_active


@pytest.mark.parametrize("method, schema_path, build, attacker, body, allowed", BOLA_CASES,
                         ids=[f"{c[0]} {c[1]}" for c in BOLA_CASES])
def test_options_tells_an_attacker_nothing_about_the_object(world, client_for, method, schema_path, build, attacker,
                                                           body, allowed):
    """OPTIONS answers DRF's metadata (the view's name and description, as the public schema
    has them) after authentication and the route's role check, before any lookup: the same
    answer for a row the attacker may not see as for no row at all."""
    client = client_for(world[attacker])
    url = build(world)
    missing = url.replace(str(world["job"].pk), "00000000-0000-0000-0000-000000000000") if "/jobs/" in url else \
        re.sub(r"/\d+(/|$)", r"/999999\1", url, count=1)
    seen, unseen = client.options(url), client.options(missing)

    def answer(response):
        return response.status_code, {k: v for k, v in response.json().items() if k not in {"path", "timestamp"}}

    assert answer(seen) == answer(unseen)


# --- API3: object property level authorization (mass assignment) ------------------------------

def test_user_cannot_assign_privileged_properties_to_themselves(make_user, client_for):
    user = make_user()
    response = client_for(user).put(f"/api/v1/user/{user.pk}", {"roles": ["ADMIN", "IT_OPERATOR"]}, format="json")
    assert response.status_code == 200 and response.json()["roles"] == ["USER"]  # (contract §3)
    response = client_for(user).put(f"/api/v1/user/{user.pk}", {
        "username": "renamed", "is_staff": True, "is_superuser": True, "isActive": False, "id": 999,
        "password_hash": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"is_staff", "is_superuser", "isActive", "id", "password_hash"}
    user.refresh_from_db()
    assert (user.username, user.is_staff, user.is_superuser, user.is_active, user.roles) == (
        user.username, False, False, True, ["USER"])
    assert user.username != "renamed"


def test_registration_refuses_privilege_fields(api_client):
    from accounts.models import User

    response = api_client.post("/api/v1/user", {"username": "sneaky", "email": "sneaky@example.com",
                                                "password": "S3cure-pass!", "is_superuser": True,
                                                "is_staff": True}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["is_superuser"][0].startswith("Unknown field; this object takes: username,")
    assert set(response.json()["fields"]) == {"is_superuser", "is_staff"}
    assert not User.objects.filter(username="sneaky").exists()


def test_item_create_refuses_organizer_counters_and_computed_fields(make_user, client_for):
    from catalog.models import BookableItem
    from catalog.tests.factories import item_payload

    organizer, other = make_user(roles=["EVENT_ORGANIZER"]), make_user(roles=["EVENT_ORGANIZER"])
    payload = item_payload()
    payload["priceTiers"][0]["sold"] = 20
    response = client_for(organizer).post("/api/v1/items", {
        **payload, "organizerId": other.pk, "organizerUsername": other.username, "sold": 50,
        "currentPrice": 0, "availableCapacity": 0, "id": 1}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {
        "organizerId", "organizerUsername", "sold", "currentPrice", "availableCapacity", "id", "priceTiers.0.sold"}
    assert response.json()["fields"]["priceTiers.0.sold"] == ["Unknown field; this object takes: tier, price, maxCapacity"]
    assert not BookableItem.objects.exists()


def test_booking_refuses_price_status_and_owner_in_body(world, client_for):
    before = Booking.objects.count()
    response = client_for(world["cust_b"]).post(f"/api/v1/bookings/items/{world['public'].pk}", {
        "pricePaid": 0, "status": "COMPLETED", "userId": world["cust_a"].pk}, format="json")
    assert response.status_code == 400 and set(response.json()["fields"]) == {"pricePaid", "status", "userId"}
    assert Booking.objects.count() == before


# --- API4: unrestricted resource consumption -------------------------------------------------

@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_oversized_body_is_413_json(make_user, client_for):
    response = client_for(make_user()).post("/logs", {"eventType": "X", "severity": "info",
                                                      "message": "a" * 20_000}, format="json")
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("url", ["/api/v1/items?pageSize=101", "/api/v1/items?pageSize=0",
                                 "/api/v1/recommendations/users/me?limit=51", "/logs?pageSize=1000",
                                 "/api/v1/items?page=-1"])
def test_page_sizes_and_limits_are_bounded(make_user, client_for, url):
    assert client_for(make_user(roles=["ADMIN"])).get(url).status_code == 400


# --- API6: sensitive business flows ----------------------------------------------------------

@override_settings(MAX_ACTIVE_BOOKINGS_PER_USER=3)
def test_one_account_cannot_hoard_seats(make_user, client_for):
    organizer, hoarder = make_user(roles=["EVENT_ORGANIZER"]), make_user()
    start = timezone.now() + timezone.timedelta(days=30)
    items = [make_item(organizer, name=f"Slot {n}", capacity=10, start=start + timezone.timedelta(hours=3 * n),
                       hours=1) for n in range(5)]
    client = client_for(hoarder)
    statuses = [client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code for item in items]
    assert statuses == [201, 201, 201, 409, 409]
    cancel = client.put(f"/api/v1/bookings/{Booking.objects.filter(user=hoarder).first().pk}/cancel")
    assert cancel.status_code == 200
    assert client.post(f"/api/v1/bookings/items/{items[3].pk}", {}, format="json").status_code == 201



@override_settings(MAX_ACTIVE_BOOKINGS_PER_USER=2)
def test_past_bookings_do_not_count_toward_the_booking_cap(make_user, client_for):
    """The cap limits seats held ahead (`end_time > now`): a regular whose bookings are history
    is not locked out. Two of the hoarder's bookings are moved into the past; two new ones fit."""
    organizer, regular = make_user(roles=["EVENT_ORGANIZER"]), make_user()
    start = timezone.now() + timezone.timedelta(days=30)
    items = [make_item(organizer, name=f"Slot {n}", capacity=10, start=start + timezone.timedelta(hours=3 * n),
                       hours=1) for n in range(4)]
    client = client_for(regular)
    for item in items[:2]:
        assert client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code == 201
    last_year = timezone.now() - timezone.timedelta(days=365)
    for n, booking in enumerate(Booking.objects.filter(user=regular).order_by("pk")):
        Booking.objects.filter(pk=booking.pk).update(start_time=last_year + timezone.timedelta(hours=3 * n),
                                                     end_time=last_year + timezone.timedelta(hours=3 * n + 1))
    statuses = [client.post(f"/api/v1/bookings/items/{item.pk}", {}, format="json").status_code for item in items[2:]]
    assert statuses == [201, 201]

# --- API7: SSRF ---------------------------------------------------------------------------------

def test_notifications_never_fetch_user_supplied_urls(make_user, client_for, smtp_server, monkeypatch):
    real_connect = socket.socket.connect
    attempted = []

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[1] != smtp_server.port:
            attempted.append(address)
            raise OSError("outbound connection blocked by test")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    client = client_for(make_user(roles=["IT_OPERATOR"]))
    response = client.post("/notifications", {"type": "GENERIC", "recipient": "victim@example.com", "data": {
        "subject": "Hi", "message": "<img src='http://169.254.169.254/latest/meta-data/'>",
        "logo": "http://127.0.0.1:6379/", "link": "file:///etc/passwd"}}, format="json")
    assert response.status_code == 202
    outbox_dispatch_until_empty()
    assert attempted == []
    [mail] = smtp_server.messages
    html = mail["message"].get_body(preferencelist=("html",)).get_content()
    assert "<img" not in html and "&lt;img" in html  # user data is escaped, never rendered as markup


# --- API8: security misconfiguration ---------------------------------------------------------

def test_api_responses_carry_security_headers(api_client):
    response = api_client.get("/api/v1/items")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"  # (a reset page's URL never leaves the site)


def test_tokens_and_personal_data_are_never_stored_by_a_cache(make_user, client_for, api_client):
    """Token responses (RFC 6749 §5.1) and what one account reads about itself carry
    `Cache-Control: no-store`: no browser or proxy cache keeps a copy on a shared machine. Every
    response without a policy of its own gets it, errors included; the item list keeps its
    revalidated `private, no-cache` (ETag)."""
    from accounts.tests.factories import DEFAULT_PASSWORD

    user = make_user(username="cached", email="cached@example.com")
    refresh = api_client.post("/api/v1/auth/login", {"username": "cached", "password": DEFAULT_PASSWORD},
                              format="json")
    answers = {
        "login": refresh,
        "core login": api_client.post("/auth/login", {"email": "cached@example.com", "password": DEFAULT_PASSWORD},
                                      format="json"),
        "refresh": api_client.post("/api/v1/auth/refresh", {"refreshToken": refresh.json()["refreshToken"]},
                                   format="json"),
        "failed login": api_client.post("/api/v1/auth/login", {"username": "cached", "password": "wrong"},
                                        format="json"),
        "register": api_client.post("/auth/register", {"email": "new@example.com", "password": "S3cure-pass!"},
                                    format="json"),
    }
    client = client_for(user)
    for url in ("/api/v1/user/me", f"/api/v1/user/{user.pk}", f"/api/v1/user/{user.pk}/export", "/api/v1/bookings/me",
                "/api/v1/recommendations/users/me", "/api/v1/user/999999"):
        answers[url] = client.get(url)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {**dict.fromkeys(answers, 200), "failed login": 401, "register": 201,
                        "/api/v1/user/999999": 403}
    assert {name: response.get("Cache-Control") for name, response in answers.items()} == dict.fromkeys(
        answers, "no-store")
    assert client.get("/api/v1/items")["Cache-Control"] == "private, no-cache"


def test_jwt_uses_its_own_long_key_and_short_lived_access_tokens(settings):
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY
    assert len(settings.SIMPLE_JWT["SIGNING_KEY"].encode()) >= 32
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() <= 900
    assert settings.SIMPLE_JWT["ALGORITHM"] == "HS256"


# --- API10: unsafe consumption (the customer side writes documents directly) ----------------

@pytest.mark.parametrize("garbage", ["not an object", [1, 2, 3], {"capacity": {"$gt": 0}}, 42])
def test_reconciliation_repairs_hostile_documents_without_trusting_them(world, garbage):
    outbox_dispatch_until_empty()
    Document.objects.using("documents").filter(entity_type="item", entity_id=str(world["public"].pk)).update(
        body=garbage)
    result = reconciliation_run(job=None, entity_type="item", entity_id=world["public"].pk)
    assert result["summary"]["updated"] == 1
    repaired = Document.objects.using("documents").get(entity_type="item", entity_id=str(world["public"].pk))
    assert repaired.body["name"] == "Public" and repaired.body["capacity"] == 5
