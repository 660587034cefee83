"""Bearer tokens: forged, expired, misused, rotated and revoked tokens are all refused with 401."""

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from freezegun import freeze_time

from accounts.tests.factories import DEFAULT_PASSWORD
from accounts.tokens import token_pair_for_user
from bookings_project.tests.helpers import assert_error

pytestmark = pytest.mark.django_db

ME = "/api/v1/user/me"
REFRESH = "/api/v1/auth/refresh"


def get_me(client, token):
    return client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")


def refresh(client, token):
    return client.post(REFRESH, {"refreshToken": token}, format="json")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def user(make_user):
    return make_user(username="alice", email="alice@example.com")


def test_valid_token_is_accepted(api_client, user, token_for):
    response = get_me(api_client, token_for(user))
    assert response.status_code == 200 and response.json()["id"] == user.pk


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_scheme_is_case_insensitive(api_client, user, token_for, scheme):
    response = api_client.get(ME, HTTP_AUTHORIZATION=f"{scheme} {token_for(user)}")
    assert response.status_code == 200 and response.json()["id"] == user.pk


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer a b", "Token abc", "Bearer not-a-jwt", "bearer", "Bearerx abc"])
def test_missing_or_malformed_header_is_401(api_client, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    body = assert_error(api_client.get(ME, **extra), 401, path=ME)
    assert body["error"] == "unauthorized"


def test_tampered_payload_is_401(api_client, user, make_user, token_for):
    other = make_user(roles=["ADMIN"])
    header, payload, signature = token_for(user).split(".")
    forged_claims = {**claims_of(token_for(user)), "user_id": str(other.pk)}
    forged = ".".join([header, b64(forged_claims), signature])
    assert_error(get_me(api_client, forged), 401)


def test_tampered_signature_is_401(api_client, user, token_for):
    header, payload, signature = token_for(user).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_error(get_me(api_client, f"{header}.{payload}.{flipped}"), 401)


def test_token_signed_with_another_key_is_401(api_client, user, token_for):
    forged = jwt.encode(claims_of(token_for(user)), "another-key-that-is-long-enough-0123456789", algorithm="HS256")
    assert_error(get_me(api_client, forged), 401)


def test_alg_none_token_is_401(api_client, user, token_for):
    claims = claims_of(token_for(user))
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert_error(get_me(api_client, unsigned), 401)


def test_expired_token_is_401_with_freezegun(api_client, user):
    with freeze_time() as frozen:
        access, _ = token_pair_for_user(user)
        assert get_me(api_client, access).status_code == 200
        frozen.tick(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(seconds=1))
        assert_error(get_me(api_client, access), 401)


def test_token_with_past_exp_is_401(api_client, user, token_for):
    claims = {**claims_of(token_for(user)), "exp": int(time.time()) - 10}
    expired = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert_error(get_me(api_client, expired), 401)


def test_refresh_token_used_as_access_token_is_401(api_client, user):
    _, refresh_token = token_pair_for_user(user)
    assert_error(get_me(api_client, refresh_token), 401)


def test_access_token_used_as_refresh_token_is_401(api_client, user, token_for):
    assert_error(refresh(api_client, token_for(user)), 401, path=REFRESH)


# --- refresh rotation ----------------------------------------------------------------------


def test_refresh_rotates_and_old_refresh_token_is_refused(api_client, user):
    login = api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                            format="json").json()
    first = refresh(api_client, login["refreshToken"])
    assert first.status_code == 200
    pair = first.json()
    assert set(pair) == {"token", "refreshToken"}
    assert pair["refreshToken"] != login["refreshToken"]
    assert get_me(api_client, pair["token"]).status_code == 200

    assert_error(refresh(api_client, login["refreshToken"]), 401, path=REFRESH)
    second = refresh(api_client, pair["refreshToken"])
    assert second.status_code == 200
    assert_error(refresh(api_client, pair["refreshToken"]), 401)


def test_core_login_refresh_token_rotates_too(api_client, user):
    login = api_client.post("/auth/login", {"email": "alice@example.com", "password": DEFAULT_PASSWORD},
                            format="json").json()
    assert refresh(api_client, login["refreshToken"]).status_code == 200
    assert_error(refresh(api_client, login["refreshToken"]), 401)


@pytest.mark.parametrize("body, status", [({}, 400), ({"refreshToken": ""}, 400), ({"refreshToken": "x.y.z"}, 401)])
def test_bad_refresh_body(api_client, body, status):
    assert_error(api_client.post(REFRESH, body, format="json"), status, path=REFRESH)


def test_expired_refresh_token_is_401(api_client, user):
    with freeze_time() as frozen:
        _, refresh_token = token_pair_for_user(user)
        frozen.tick(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(seconds=1))
        assert_error(refresh(api_client, refresh_token), 401)


# --- revocation by password change ------------------------------------------------------------


def test_tokens_issued_before_a_password_change_are_refused(api_client, user):
    old_access, old_refresh = token_pair_for_user(user)
    changed = api_client.put(
        f"/api/v1/user/{user.pk}",
        {"password": "N3w-Passw0rd-xyz", "currentPassword": DEFAULT_PASSWORD},
        format="json", HTTP_AUTHORIZATION=f"Bearer {old_access}",
    )
    assert changed.status_code == 200
    assert_error(get_me(api_client, old_access), 401)
    assert_error(refresh(api_client, old_refresh), 401)
    assert_error(api_client.post("/api/v1/auth/login", {"username": "alice", "password": DEFAULT_PASSWORD},
                                 format="json"), 401)
    assert_error(api_client.post("/auth/login", {"email": "alice@example.com", "password": DEFAULT_PASSWORD},
                                 format="json"), 401)

    login = api_client.post("/api/v1/auth/login", {"username": "alice", "password": "N3w-Passw0rd-xyz"},
                            format="json")
    assert login.status_code == 200
    assert get_me(api_client, login.json()["token"]).status_code == 200


def test_tokens_of_an_account_deactivated_with_its_password_untouched_are_refused(api_client, user):
    """The fingerprint still matches (only is_active changed, as a direct write would do it): the
    active check alone refuses the access token and the refresh token."""
    from accounts.models import User

    access, refresh_token = token_pair_for_user(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert_error(get_me(api_client, access), 401)
    assert_error(refresh(api_client, refresh_token), 401)


def test_password_change_needs_the_current_password(api_client, user, token_for):
    response = api_client.put(f"/api/v1/user/{user.pk}", {"password": "N3w-Passw0rd-xyz"}, format="json",
                              HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert assert_error(response, 400, fields=["currentPassword"])["message"] == "Current password is required"
    wrong = api_client.put(f"/api/v1/user/{user.pk}", {"password": "N3w-Passw0rd-xyz", "currentPassword": "nope"},
                           format="json", HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert assert_error(wrong, 400, fields=["currentPassword"])["message"] == "Current password is wrong"
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_current_password_guesses_are_logged_and_limited_per_account(api_client, user, token_for, settings):
    from freezegun import freeze_time

    from ops.models import SystemLog

    settings.RATE_LIMIT_LOGIN = "3/m"
    token = token_for(user)
    guess = lambda n, **extra: api_client.put(  # noqa: E731
        f"/api/v1/user/{user.pk}", {"password": "N3w-Passw0rd-xyz", "currentPassword": f"guess{n}"},
        format="json", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)
    with freeze_time():
        codes = [guess(n, REMOTE_ADDR=f"203.0.113.{n}").status_code for n in range(4)]  # from four addresses
    assert codes == [400, 400, 400, 429]
    failed = SystemLog.objects.filter(event_type="AUTH", message="Failed password check", user_id=str(user.pk))
    assert failed.count() == 3 and failed.first().additional_data == {"reason": "Invalid current password"}
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_an_admin_resetting_other_users_passwords_is_not_limited(make_user, client_for, settings):
    from freezegun import freeze_time

    settings.RATE_LIMIT_LOGIN = "2/m"
    admin = client_for(make_user(roles=["ADMIN"]))
    users = [make_user() for _ in range(4)]
    with freeze_time():
        codes = [admin.put(f"/api/v1/user/{u.pk}", {"password": "N3w-Passw0rd-xyz"}, format="json").status_code
                 for u in users]
    assert codes == [200] * 4  # no current password is checked, so nothing to guess


class TestLogout:
    """POST /api/v1/auth/logout {refreshToken}: that refresh token is done; idempotent."""

    @staticmethod
    def logout(client, token):
        return client.post("/api/v1/auth/logout", {"refreshToken": token}, format="json")

    def test_a_logged_out_refresh_token_no_longer_refreshes(self, api_client, user):
        _, refresh_token = token_pair_for_user(user)
        other_access, other_refresh = token_pair_for_user(user)  # another device stays logged in
        response = self.logout(api_client, refresh_token)
        assert (response.status_code, response.content) == (204, b"")
        assert_error(refresh(api_client, refresh_token), 401)
        assert refresh(api_client, other_refresh).status_code == 200
        assert get_me(api_client, other_access).status_code == 200

    def test_logging_out_twice_or_after_a_refresh_is_fine(self, api_client, user):
        _, refresh_token = token_pair_for_user(user)
        assert self.logout(api_client, refresh_token).status_code == 204
        assert self.logout(api_client, refresh_token).status_code == 204
        _, used = token_pair_for_user(user)
        assert refresh(api_client, used).status_code == 200
        assert self.logout(api_client, used).status_code == 204

    def test_a_token_not_ours_an_access_token_or_an_expired_one_is_401(self, api_client, user):
        access, refresh_token = token_pair_for_user(user)
        forged = jwt.encode({**claims_of(refresh_token), "jti": "x" * 32}, "another-key-of-32-bytes-at-least!!",
                            algorithm="HS256")
        assert_error(self.logout(api_client, forged), 401, code="invalid_token")
        assert_error(self.logout(api_client, access), 401, code="invalid_token")
        with freeze_time(timedelta(seconds=settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds() + 60)):
            assert_error(self.logout(api_client, refresh_token), 401, code="invalid_token")
        assert_error(api_client.post("/api/v1/auth/logout", {}, format="json"), 400, fields=["refreshToken"])


@pytest.mark.parametrize("change", [
    {"user_id": "abc"}, {"user_id": [1]}, {"user_id": 10**30}, {"user_id": "9" * 30}, {"user_id": "１"},
    {"user_id": None}, {"user_id": True},
    {"exp": 1e30}, {"exp": "tomorrow"}, {"iat": 1e30}, {"jti": None}, {"jti": ["x"]}, {"token_type": 5},
    # a jti the blacklist's column cannot hold: PostgreSQL refuses NUL (a DataError, on SQLite a
    # match), and its varchar(255) a longer one (SQLite stored it and rotated the token)
    {"jti": "a\x00b"}, {"jti": "x" * 256},
], ids=lambda change: repr(change)[:40])
@pytest.mark.parametrize("route", [ME, REFRESH, "/api/v1/auth/logout"])
def test_a_validly_signed_token_with_malformed_claims_is_401_not_500(api_client, user, token_for, change, route):
    """Only a holder of the signing key can make one (a leaked key, a bug in another service
    sharing it), but the answer is still the contract's 401, never a 500."""
    _, refresh_token = token_pair_for_user(user)
    claims = {**claims_of(token_for(user) if route == ME else refresh_token), **change}
    for name in [name for name, value in change.items() if value is None]:
        claims.pop(name)  # (None: the claim is missing)
    token = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")

    response = (get_me(api_client, token) if route == ME
                else api_client.post(route, {"refreshToken": token}, format="json"))

    assert_error(response, 401, path=route)
