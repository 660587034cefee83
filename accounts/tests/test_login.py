"""Both login forms, failure answers and the failed-login system log entry."""

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD
from ops.models import SystemLog
from bookings_project.tests.helpers import assert_error, assert_no_secrets

pytestmark = pytest.mark.django_db

BOOKING_LOGIN = "/api/v1/auth/login"
CORE_LOGIN = "/auth/login"


def booking_login(client, username, password=DEFAULT_PASSWORD, **extra):
    return client.post(BOOKING_LOGIN, {"username": username, "password": password}, format="json", **extra)


def core_login(client, email, password=DEFAULT_PASSWORD, **extra):
    return client.post(CORE_LOGIN, {"email": email, "password": password}, format="json", **extra)


@pytest.mark.parametrize("identifier", ["alice", "ALICE", "alice@example.com", "Alice@Example.COM"])
def test_booking_login_by_username_or_email(api_client, make_user, identifier):
    make_user(username="alice", email="alice@example.com")
    response = booking_login(api_client, identifier)
    assert response.status_code == 200
    assert set(response.json()) == {"token", "refreshToken"}
    assert_no_secrets(response, DEFAULT_PASSWORD)


def test_token_from_either_login_works_on_both_surfaces(api_client, client_for, make_user):
    user = make_user(username="alice", email="alice@example.com")
    tokens = [booking_login(api_client, "alice").json()["token"],
              core_login(api_client, "alice@example.com").json()["token"]]
    for token in tokens:
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        me = api_client.get("/api/v1/user/me")
        assert me.status_code == 200 and me.json()["id"] == user.pk
        log = api_client.post("/logs", {"eventType": "APP", "severity": "info", "message": "hi"}, format="json")
        assert log.status_code == 201


@pytest.mark.parametrize("roles, core_role", [
    (["USER"], "customer"),
    (["EVENT_ORGANIZER"], "supplier"),
    (["IT_OPERATOR"], "operator"),
    (["ADMIN"], "admin"),
    (["USER", "EVENT_ORGANIZER"], "supplier"),
    (["EVENT_ORGANIZER", "IT_OPERATOR", "ADMIN"], "admin"),
])
def test_core_login_returns_seed_shape(api_client, make_user, settings, roles, core_role):
    user = make_user(roles=roles, email="user@example.com")
    response = core_login(api_client, "USER@example.com")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "refreshToken", "expiresIn", "user"}
    assert body["expiresIn"] == int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())
    assert body["user"] == {"id": str(user.pk), "email": "user@example.com", "role": core_role}
    assert_no_secrets(response, DEFAULT_PASSWORD)


def test_stale_authorization_header_does_not_block_login(api_client, make_user):
    make_user(username="alice")
    api_client.credentials(HTTP_AUTHORIZATION="Bearer expired.or.garbage")
    assert booking_login(api_client, "alice").status_code == 200


# --- failures ---------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_401(api_client, make_user):
    make_user(username="alice", email="alice@example.com")
    answers = [
        booking_login(api_client, "alice", "Wrong-pass-123"),
        booking_login(api_client, "nobody"),
        core_login(api_client, "alice@example.com", "Wrong-pass-123"),
        core_login(api_client, "nobody@example.com"),
    ]
    bodies = [assert_error(r, 401) for r in answers]
    assert len({b["message"] for b in bodies}) == 1
    assert "token" not in str(bodies)


def test_inactive_user_cannot_log_in(api_client, make_user):
    make_user(username="alice", email="alice@example.com", is_active=False)
    assert_error(booking_login(api_client, "alice"), 401)
    assert_error(core_login(api_client, "alice@example.com"), 401)
    reasons = set(SystemLog.objects.filter(event_type="AUTH").values_list("additional_data__reason", flat=True))
    assert reasons == {"Account inactive"}


def test_a_deleted_users_failed_login_is_logged_as_inactive(api_client, make_user, client_for):
    admin, alice = make_user(roles=["ADMIN"]), make_user(username="alice", email="alice@example.com")
    assert client_for(admin).delete(f"/api/v1/user/{alice.pk}").status_code == 204
    assert_error(booking_login(api_client, "alice"), 401)  # the right password, before deletion
    [entry] = SystemLog.objects.filter(event_type="AUTH", message="Failed login attempt")
    assert entry.additional_data == {"reason": "Account inactive"} and entry.user_id == str(alice.pk)


@pytest.mark.parametrize("path, body, field", [
    (BOOKING_LOGIN, {"password": "x"}, "username"),
    (BOOKING_LOGIN, {"username": "alice"}, "password"),
    (CORE_LOGIN, {"password": "x"}, "email"),
    (CORE_LOGIN, {"email": "a@example.com"}, "password"),
])
def test_missing_login_field_is_400(api_client, path, body, field):
    assert_error(api_client.post(path, body, format="json"), 400, path=path, fields=[field])


# --- the failed-login log entry (seed 000 story 3) ----------------------------------------------


def test_failed_login_of_existing_account_is_logged_like_the_seed(api_client, make_user, client_for):
    user = make_user(username="alice", email="alice@example.com")
    operator = make_user(roles=["IT_OPERATOR"])
    assert_error(core_login(api_client, "alice@example.com", "Wrong-pass-123", REMOTE_ADDR="192.168.1.1"), 401)

    response = client_for(operator).get("/logs", {"eventType": "AUTH", "severity": "error"})
    assert response.status_code == 200
    logs = response.json()["logs"]
    assert len(logs) == 1
    entry = logs[0]
    assert entry == {
        "id": entry["id"],
        "timestamp": entry["timestamp"],
        "eventType": "AUTH",
        "severity": "error",
        "message": "Failed login attempt",
        "userId": str(user.pk),
        "ipAddress": "192.168.1.1",
        "additionalData": {"reason": "Invalid password"},
        "reportedBy": None,  # the system's own entry
    }
    assert entry["timestamp"].endswith("Z")


def test_failed_login_of_unknown_account_has_no_user_id(api_client, make_user, client_for):
    admin = make_user(roles=["ADMIN"])
    assert_error(booking_login(api_client, "ghost"), 401)
    entry = client_for(admin).get("/logs", {"eventType": "AUTH"}).json()["logs"][0]
    assert entry["message"] == "Failed login attempt" and entry["severity"] == "error"
    assert entry["userId"] is None
    assert entry["ipAddress"] == "127.0.0.1"
    assert entry["additionalData"] == {"reason": "Unknown user"}


def test_successful_login_writes_no_failure_entry(api_client, make_user):
    make_user(username="alice")
    assert booking_login(api_client, "alice").status_code == 200
    assert not SystemLog.objects.filter(message="Failed login attempt").exists()


def test_failed_admin_logins_are_logged_like_the_apis(client, make_user):
    """Contract §4: every failed login — the admin's login page included, where good credentials
    of an account the admin does not admit fail too."""
    boss = make_user(username="boss", roles=["ADMIN"])
    customer = make_user(username="carol")
    gone = make_user(username="gone", is_active=False)
    attempts = [("boss", "Wrong-pass-123"), ("ghost", "Wrong-pass-123"), ("gone", DEFAULT_PASSWORD),
                ("carol", DEFAULT_PASSWORD)]
    for username, password in attempts:
        page = client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR="10.1.2.3")
        assert page.status_code == 200 and "_auth_user_id" not in client.session

    entries = SystemLog.objects.filter(event_type="AUTH", message="Failed login attempt").order_by("id")
    assert [(e.user_id, e.ip_address, e.severity, e.additional_data) for e in entries] == [
        (str(boss.pk), "10.1.2.3", "error", {"reason": "Invalid password", "via": "admin"}),
        ("", "10.1.2.3", "error", {"reason": "Unknown user", "via": "admin"}),
        (str(gone.pk), "10.1.2.3", "error", {"reason": "Account inactive", "via": "admin"}),
        (str(customer.pk), "10.1.2.3", "error", {"reason": "Not allowed in the admin", "via": "admin"}),
    ]
    assert client.post("/admin/login/", {"username": "boss", "password": DEFAULT_PASSWORD}).status_code == 302
    assert entries.count() == 4


def test_an_is_staff_left_over_without_a_staff_role_does_not_sign_in_to_the_admin(client, make_user):
    """is_staff written around User.save() (a fixture loaded raw, an SQL update of the roles):
    the roles decide, as on every admin page (BookingsAdminSite.has_permission)."""
    from accounts.models import User

    carol = make_user(username="carol")
    User.objects.filter(pk=carol.pk).update(is_staff=True)

    page = client.post("/admin/login/", {"username": "carol", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.1.2.3")

    assert page.status_code == 200 and "_auth_user_id" not in client.session
    entry = SystemLog.objects.get(event_type="AUTH", message="Failed login attempt")
    assert (entry.user_id, entry.additional_data) == (str(carol.pk), {"reason": "Not allowed in the admin", "via": "admin"})


@pytest.mark.parametrize("identifier", ["Someone@Example.COM", "SomeOne"])
def test_the_login_lookup_uses_the_case_insensitive_unique_index(make_user, identifier):
    """Every login (and registration check, and reset request) looks an account up by username or
    email in any case: through the unique constraints' LOWER() index, never a scan of the users
    table (`__iexact` is UPPER() = UPPER() on PostgreSQL, which no index serves)."""
    from django.db import connection

    from accounts.models import User
    from accounts.selectors import same_text, user_find_for_login

    user = make_user(username="someone", email="someone@example.com")
    assert user_find_for_login(identifier=identifier) == user
    field = "email" if "@" in identifier else "username"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # (a tiny table is scanned whatever the indexes)
    plan = User.objects.filter(same_text(field, identifier)).explain()
    assert f"user_{field}_ci_unique" in plan, plan


@pytest.mark.parametrize("email", ["someone@École.example", "someone@ΟΔΟΣ-x.example", "someone@İzmir.example"])
def test_an_account_logs_in_with_the_email_it_registered_with(api_client, email):
    """Emails are stored as normalized_email() writes them (Python's lower(): 'École' → 'école',
    a final 'Σ' → 'ς'); the database's LOWER() differs (SQLite's is ASCII-only, PostgreSQL's knows
    no final sigma), so the identifier is normalized the same way before the lookup — as a password
    reset request does — or the very text the account registered with would not log in."""
    registered = api_client.post("/auth/register", {"email": email, "password": DEFAULT_PASSWORD, "role": "customer"},
                                 format="json")
    assert registered.status_code == 201, registered.content
    assert core_login(api_client, email).status_code == 200
    assert booking_login(api_client, email).status_code == 200
