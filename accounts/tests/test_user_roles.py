"""Who may do what on /api/v1/user…, role changes, and deleting (deactivating) users."""

import pytest

from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD
from accounts.tokens import token_pair_for_user
from bookings_project.testing import REVOKED_CALLERS
from ops.models import SystemLog
from bookings_project.tests.helpers import assert_error, assert_no_secrets

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "USER", "EVENT_ORGANIZER", "IT_OPERATOR", "ADMIN",
          "USER+IT_OPERATOR", "EVENT_ORGANIZER+IT_OPERATOR", *REVOKED_CALLERS]
ANON, USER, ORG, OP, ADMIN = ACTORS[:5]


def expect(**by_actor):
    """Expected status per actor; `rest` covers the role actors not named. A revoked ADMIN token
    (REVOKED_CALLERS) gets what no token gets: 401, or the public registration, which ignores
    tokens."""
    rest = by_actor.pop("rest", None)
    statuses = {actor: by_actor.get(actor, rest) for actor in ACTORS}
    return {**statuses, **{actor: statuses[ANON] for actor in REVOKED_CALLERS}}


# (method, path template, body, expected status per actor). {self} is the caller, {other} a
# plain USER; an anonymous caller's {self} is that other user. The several-role accounts hold
# no ADMIN: they fall under `rest`.
MATRIX = [
    ("get", "/api/v1/user", None, expect(anonymous=401, ADMIN=200, rest=403)),
    ("post", "/api/v1/user", {"username": "fresh", "email": "fresh@example.com", "password": "S3cure-pass!word"},
     expect(rest=201)),
    ("get", "/api/v1/user/me", None, expect(anonymous=401, rest=200)),
    ("get", "/api/v1/user/{self}", None, expect(anonymous=401, rest=200)),
    ("get", "/api/v1/user/{other}", None, expect(anonymous=401, ADMIN=200, rest=403)),
    ("put", "/api/v1/user/{self}", {"username": "renamed"}, expect(anonymous=401, rest=200)),
    ("put", "/api/v1/user/{other}", {"username": "renamed"}, expect(anonymous=401, ADMIN=200, rest=403)),
    ("delete", "/api/v1/user/{self}", None, expect(anonymous=401, ADMIN=409, rest=403)),
    ("delete", "/api/v1/user/{other}", None, expect(anonymous=401, ADMIN=204, rest=403)),
]
CASES = [(method, path, body, actor, statuses[actor])
         for method, path, body, statuses in MATRIX for actor in ACTORS]


@pytest.mark.parametrize("method, path, body, actor, status", CASES,
                         ids=[f"{m.upper()} {p} as {a} -> {s}" for m, p, _, a, s in CASES])
def test_role_matrix(make_user, client_for, revoked_client_for, method, path, body, actor, status):
    other = make_user(username="other", email="other@example.com")
    caller = None if actor == ANON else make_user(roles=["ADMIN"] if actor in REVOKED_CALLERS else actor.split("+"),
                                                  username="caller", email="caller@example.com")
    client = revoked_client_for(actor, caller) if actor in REVOKED_CALLERS else client_for(caller)
    url = path.format(self=(caller or other).pk, other=other.pk)
    response = getattr(client, method)(url, body, format="json")
    if status >= 400:
        assert_error(response, status, path=url)
    else:
        assert response.status_code == status, response.content
        assert_no_secrets(response, DEFAULT_PASSWORD)
    if method in {"put", "delete"}:  # the target changed exactly when the call succeeded
        target = User.objects.get(pk=(caller or other).pk if "{self}" in path else other.pk)
        assert (target.username == "renamed") == (method == "put" and status == 200)
        if not (actor == "deactivated" and "{self}" in path):  # (that caller's own row starts inactive)
            assert target.is_active == (method != "delete" or status != 204)


@pytest.mark.parametrize("actor", [USER, ORG, OP, ADMIN])
def test_me_and_self_return_the_callers_profile(make_user, client_for, actor):
    caller = make_user(roles=[actor], username="caller", email="caller@example.com")
    expected = {"id": caller.pk, "username": "caller", "email": "caller@example.com", "roles": [actor],
                "bookingReminders": True}
    client = client_for(caller)
    assert client.get("/api/v1/user/me").json() == expected
    assert client.get(f"/api/v1/user/{caller.pk}").json() == expected


def test_admin_lists_active_users_only(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    active = make_user()
    make_user(is_active=False)
    response = client_for(admin).get("/api/v1/user")
    assert response.status_code == 200
    assert [u["id"] for u in response.json()] == [admin.pk, active.pk]
    assert_no_secrets(response, DEFAULT_PASSWORD)


def test_admin_user_list_pages_on_request(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    make_user(), make_user()
    response = client_for(admin).get("/api/v1/user", {"page": 2, "pageSize": 2})
    assert response.status_code == 200 and len(response.json()) == 1
    assert response["X-Total-Count"] == "3"
    assert 'rel="prev"' in response["Link"] and 'rel="next"' not in response["Link"]
    assert_error(client_for(admin).get("/api/v1/user", {"pageSize": 101}), 400, fields=["pageSize"])


@pytest.mark.parametrize("pk", ["999999", "abc"])
def test_admin_gets_404_for_unknown_user(make_user, client_for, pk):
    admin = make_user(roles=[ADMIN])
    for method in ("get", "put", "delete"):
        assert_error(getattr(client_for(admin), method)(f"/api/v1/user/{pk}", {}, format="json"), 404)


def test_absurd_page_of_users_is_empty(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    response = client_for(admin).get("/api/v1/user", {"page": "99999999999999999999", "pageSize": 100})
    assert response.status_code == 200 and response.json() == []
    assert response["X-Total-Count"] == "1"


@pytest.mark.parametrize("path", ["/api/v1/user/{id}", "/api/v1/user/me"])
def test_post_on_a_user_resource_is_405_not_403(make_user, client_for, path):
    admin = make_user(roles=[ADMIN])
    url = path.format(id=admin.pk)
    assert_error(client_for(admin).post(url, {}, format="json"), 405, path=url)


def test_non_admin_is_refused_before_any_lookup(make_user, client_for):
    """A non-admin cannot tell an existing id from a missing one."""
    client = client_for(make_user())
    assert_error(client.get("/api/v1/user/999999"), 403)


# --- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [USER, ORG, OP])
def test_non_admin_sending_roles_for_themselves_gets_200_unchanged(make_user, client_for, actor):
    """The seed's sample: asks for ADMIN, gets the profile update but keeps its roles."""
    caller = make_user(roles=[actor], username="testuser", email="test@example.com")
    response = client_for(caller).put(
        f"/api/v1/user/{caller.pk}",
        {"username": "updated_testuser", "email": "updated_test@example.com",
         "roles": ["USER", "EVENT_ORGANIZER", "ADMIN", "IT_OPERATOR"]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {"id": caller.pk, "username": "updated_testuser",
                               "email": "updated_test@example.com", "roles": [actor], "bookingReminders": True}
    caller.refresh_from_db()
    assert caller.roles == [actor] and not caller.is_superuser
    assert not SystemLog.objects.filter(message="User roles changed").exists()


@pytest.mark.parametrize("roles", [["ADMIN"], ["IT_OPERATOR"], ["EVENT_ORGANIZER", "IT_OPERATOR"]])
def test_only_admin_grants_privileged_roles(make_user, client_for, roles):
    admin = make_user(roles=[ADMIN])
    target = make_user()
    response = client_for(admin).put(f"/api/v1/user/{target.pk}", {"roles": roles}, format="json")
    assert response.status_code == 200
    assert response.json()["roles"] == sorted(roles)
    target.refresh_from_db()
    assert target.is_staff  # ADMIN and IT_OPERATOR reach the admin site
    # the new role takes effect for the target's own requests
    assert client_for(target).get("/logs").status_code == 200
    entry = SystemLog.objects.get(message="User roles changed")
    assert entry.user_id == str(target.pk) and entry.additional_data["to"] == sorted(roles)


def test_admin_can_take_a_role_away(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    target = make_user(roles=[OP])
    response = client_for(admin).put(f"/api/v1/user/{target.pk}", {"roles": ["USER"]}, format="json")
    assert response.json()["roles"] == ["USER"]
    target.refresh_from_db()
    assert not target.is_staff
    assert_error(client_for(target).get("/logs"), 403)


def test_admin_cannot_drop_own_admin_role(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    assert_error(client_for(admin).put(f"/api/v1/user/{admin.pk}", {"roles": ["USER"]}, format="json"), 409)
    admin.refresh_from_db()
    assert admin.roles == ["ADMIN"]


def test_superuser_is_always_admin(make_user, client_for):
    admin = make_user(roles=[ADMIN])
    root = User.objects.create_superuser("root", "root@example.com", DEFAULT_PASSWORD, roles=[])
    assert client_for(root).get("/api/v1/user/me").json()["roles"] == ["ADMIN"]
    refused = client_for(admin).put(f"/api/v1/user/{root.pk}", {"roles": ["USER"]}, format="json")
    assert assert_error(refused, 409)["message"] == "A superuser always holds the ADMIN role"
    assert_error(client_for(root).put(f"/api/v1/user/{root.pk}", {"roles": ["USER"]}, format="json"), 409)
    response = client_for(admin).put(f"/api/v1/user/{root.pk}", {"roles": ["USER", "ADMIN"]}, format="json")
    assert response.status_code == 200 and response.json()["roles"] == ["ADMIN", "USER"]
    root.refresh_from_db()
    assert "ADMIN" in root.roles and root.is_staff
    assert client_for(root).get("/api/v1/user").status_code == 200
    login = client_for().post("/auth/login", {"email": "root@example.com", "password": DEFAULT_PASSWORD},
                              format="json")
    assert login.json()["user"]["role"] == "admin"


@pytest.mark.parametrize("body, field", [({"roles": ["KING"]}, "roles.0"), ({"email": "nope"}, "email"),
                                         ({"username": "has space"}, "username"),
                                         ({"bookingReminders": "no"}, "bookingReminders"),
                                         ({"bookingReminders": 0}, "bookingReminders")])
def test_invalid_update_is_400(make_user, client_for, body, field):
    admin = make_user(roles=[ADMIN])
    target = make_user()
    assert_error(client_for(admin).put(f"/api/v1/user/{target.pk}", body, format="json"), 400, fields=[field])


@pytest.mark.parametrize("body", [{"username": "TAKEN"}, {"email": "Taken@Example.com"}])
def test_update_to_a_taken_name_is_409(make_user, client_for, body):
    make_user(username="taken", email="taken@example.com")
    caller = make_user()
    assert_error(client_for(caller).put(f"/api/v1/user/{caller.pk}", body, format="json"), 409)


# --- delete = deactivate ------------------------------------------------------------------------


def test_deleted_user_is_locked_out_but_kept(api_client, make_user, client_for):
    admin = make_user(roles=[ADMIN])
    victim = make_user(username="victim", email="victim@example.com")
    access, refresh = token_pair_for_user(victim)
    assert client_for(admin).delete(f"/api/v1/user/{victim.pk}").status_code == 204

    assert_error(api_client.get("/api/v1/user/me", HTTP_AUTHORIZATION=f"Bearer {access}"), 401)
    assert_error(api_client.post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json"), 401)
    assert_error(api_client.post("/api/v1/auth/login", {"username": "victim", "password": DEFAULT_PASSWORD},
                                 format="json"), 401)
    assert_error(api_client.post("/auth/login", {"email": "victim@example.com", "password": DEFAULT_PASSWORD},
                                 format="json"), 401)

    victim.refresh_from_db()  # history kept: the row stays, inactive
    assert not victim.is_active
    assert_error(client_for(admin).get(f"/api/v1/user/{victim.pk}"), 404)
    assert victim.pk not in [u["id"] for u in client_for(admin).get("/api/v1/user").json()]
    entry = SystemLog.objects.get(message="User deleted")
    assert entry.user_id == str(victim.pk) and entry.reported_by_id == admin.pk
    assert entry.additional_data == {"by": admin.pk, "cancelledBookings": 0}


def test_deleted_user_cannot_register_again_with_same_name(api_client, make_user, client_for):
    admin = make_user(roles=[ADMIN])
    victim = make_user(username="victim", email="victim@example.com")
    client_for(admin).delete(f"/api/v1/user/{victim.pk}")
    response = api_client.post("/api/v1/user", {"username": "victim", "email": "victim@example.com",
                                                "password": "S3cure-pass!word"}, format="json")
    assert_error(response, 409)


def test_an_update_from_a_stale_copy_cannot_revive_a_deactivated_account(make_user, client_for):
    """PUT /user/{id} loads the user at the request's start; a deactivation committed meanwhile
    must stay (a whole-row save wrote is_active and the old password back: the account and its
    old tokens worked again)."""
    from accounts.models import User
    from accounts.services import user_deactivate, user_update
    from bookings_project.errors import NotFound

    user = make_user(username="leaving")
    old_token_client = client_for(user)
    stale = User.objects.get(pk=user.pk)
    user_deactivate(actor=make_user(roles=["ADMIN"], username="boss"), user=User.objects.get(pk=user.pk))

    with pytest.raises(NotFound):
        user_update(actor=stale, user=stale, username="renamed")
    user.refresh_from_db()
    assert (user.is_active, user.username, user.has_usable_password()) == (False, "leaving", False)
    assert old_token_client.get("/api/v1/user/me").status_code == 401


def test_a_self_rename_from_a_stale_copy_keeps_a_role_granted_meanwhile(make_user):
    from accounts.models import User
    from accounts.services import user_grant_role, user_update

    user = make_user(username="climber")
    stale = User.objects.get(pk=user.pk)
    user_grant_role(actor=make_user(roles=["ADMIN"], username="boss"), user=User.objects.get(pk=user.pk),
                    role="EVENT_ORGANIZER")

    user_update(actor=stale, user=stale, username="climber2")
    user.refresh_from_db()
    assert user.username == "climber2" and "EVENT_ORGANIZER" in user.roles


def test_a_grant_from_a_stale_copy_cannot_bring_back_a_role_revoked_meanwhile(make_user):
    """The admin action's row was read before another ADMIN revoked ADMIN: the grant adds its
    role to the roles as they are now, not to the copy's."""
    from accounts.services import user_grant_role, user_update

    target = make_user(username="target", roles=["ADMIN"])
    stale = User.objects.get(pk=target.pk)
    user_update(actor=make_user(roles=["ADMIN"], username="a1"), user=User.objects.get(pk=target.pk), roles=["USER"])

    user_grant_role(actor=make_user(roles=["ADMIN"], username="a2"), user=stale, role="EVENT_ORGANIZER")
    target.refresh_from_db()
    assert (target.roles, target.is_staff) == (["EVENT_ORGANIZER", "USER"], False)


def test_a_revoke_from_a_stale_copy_is_not_taken_for_no_change(make_user):
    from accounts.services import user_grant_role, user_update

    target = make_user(username="target")
    stale = User.objects.get(pk=target.pk)  # read as a plain USER
    user_grant_role(actor=make_user(roles=["ADMIN"], username="a1"), user=User.objects.get(pk=target.pk), role="ADMIN")

    user_update(actor=make_user(roles=["ADMIN"], username="a2"), user=stale, roles=["USER"])
    target.refresh_from_db()
    assert target.roles == ["USER"] and not target.is_staff
