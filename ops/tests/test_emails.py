"""ops.emails: what a delivered email says in its headers (a requested subject is one line of
plain text, never a header of its own). Calendar invitations: test_calendar_emails.py."""

import pytest

from ops.dispatch import outbox_dispatch_until_empty

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: evil@example.net", "Hi\rBcc: evil@example.net",
                                     "Hi\u2028Bcc: evil@example.net", "Hi\n\n\tBcc: evil@example.net"])
def test_a_line_break_in_a_requested_subject_is_one_line_never_a_header(client_for, make_user, smtp_server, subject):
    """No header injection, and no notification that fails every attempt on BadHeaderError."""
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    response = operator.post("/notifications", {"type": "GENERIC", "recipient": "dora@example.com",
                                                "data": {"subject": subject, "message": "Hello"}}, format="json")
    assert response.status_code == 202

    assert outbox_dispatch_until_empty()["sent"] == 1
    [mail] = smtp_server.messages
    assert mail["to"] == ["dora@example.com"] and mail["message"]["Bcc"] is None
    assert mail["message"]["Subject"] == "Hi Bcc: evil@example.net"


def test_subjects_are_plain_text_not_html_escaped(client_for, make_user, smtp_server):
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    subject = 'Tom & Jerry <b> "quoted" it\'s'
    for kind in ("GENERIC", "BOOKING_CONFIRMED"):
        data = {"subject": subject, "message": "Hello", "itemName": subject}
        assert operator.post("/notifications", {"type": kind, "recipient": "dora@example.com", "data": data},
                             format="json").status_code == 202
    outbox_dispatch_until_empty()
    assert sorted(m["message"]["Subject"] for m in smtp_server.messages) == sorted(
        [subject, f"Booking confirmed: {subject}"])


@pytest.mark.parametrize("data, greeting", [({}, "dora@example.com"), ({"username": "dora"}, "dora"),
                                            ({"email": "d.o@example.org"}, "d.o@example.org")])
def test_a_requested_welcome_email_without_an_email_in_its_data_is_sent(client_for, make_user, smtp_server, data,
                                                                         greeting):
    """USER_REGISTERED is one of the requestable templates: it greets `username`, or else
    `email`. With no `email` in `data` the template's `default:email` raised
    VariableDoesNotExist: the 202 job failed every attempt and went DEAD (and a retry with it)."""
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    response = operator.post("/notifications", {"type": "USER_REGISTERED", "recipient": "dora@example.com",
                                                "data": data}, format="json")
    assert response.status_code == 202

    assert outbox_dispatch_until_empty()["sent"] == 1
    [mail] = smtp_server.messages
    assert mail["message"]["Subject"] == f"Welcome, {greeting}!"
