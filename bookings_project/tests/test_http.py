"""Response headers a client follows: `Location` on what a POST created or queued."""

import pytest

from catalog.tests.factories import item_payload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path, body, roles, follow", [
    ("/api/v1/items", item_payload(), ["EVENT_ORGANIZER"], "/api/v1/items/{id}"),
    ("/api/v1/user", {"username": "located", "email": "located@example.com", "password": "Long-enough-pw-1"},
     None, "/api/v1/user/{id}"),
    ("/jobs", {"type": "NOTIFICATION", "notification": {"recipientEmail": "a@example.com", "subject": "s",
                                                        "message": "m"}}, ["IT_OPERATOR"], "/jobs/{jobId}"),
    ("/notifications", {"type": "GENERIC", "recipient": "a@example.com", "data": {}}, ["IT_OPERATOR"],
     "/jobs/{jobId}"),
    ("/reconciliation", {"entityType": "item"}, ["IT_OPERATOR"], "/jobs/{jobId}"),
    ("/reconciliation/events", {"entityType": "item", "entityId": "1", "action": "update"}, ["IT_OPERATOR"],
     "/jobs/{eventId}"),
])
def test_what_a_post_created_or_queued_is_named_by_location(make_user, client_for, path, body, roles, follow):
    """A 201 names the new resource, a 202 the job to poll (RFC 9110 §15.3.2/§15.3.3), as an
    absolute URL that answers with that same resource."""
    user = make_user(roles=roles) if roles else None
    client = client_for(user)
    response = client.post(path, body, format="json")
    assert response.status_code in {201, 202}, response.content
    created = response.json()
    expected = "http://testserver" + follow.format(**created)
    assert response["Location"] == expected
    reader = client if user else client_for(make_user(roles=["ADMIN"]))
    followed = reader.get(expected.removeprefix("http://testserver"))
    assert followed.status_code == 200, followed.content
    assert followed.json()["id"] == created.get("id", created.get("jobId", created.get("eventId")))


def test_a_refused_post_carries_no_location(make_user, client_for):
    response = client_for(make_user(roles=["EVENT_ORGANIZER"])).post("/api/v1/items", {}, format="json")
    assert response.status_code == 400 and "Location" not in response
