import pytest

pytestmark = pytest.mark.django_db


def test_register_then_login_then_me(api_client):
    created = api_client.post("/api/v1/user", {"username": "alice", "email": "Alice@Example.com",
                                               "password": "S3cure-pass!"}, format="json")
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "username": "alice",
                              "email": "alice@example.com", "roles": ["USER"], "bookingReminders": True}
    login = api_client.post("/api/v1/auth/login", {"username": "alice", "password": "S3cure-pass!"}, format="json")
    assert login.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['token']}")
    me = api_client.get("/api/v1/user/me")
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_unknown_route_is_json_404(api_client):
    response = api_client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and response.json()["path"] == "/no/such/route"
