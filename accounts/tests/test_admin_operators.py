"""IT operators in the admin (contract §3): staff with the ops pages only, whose actions
(execute a job, retry an outbox event) work with the group's permissions while records stay
read-only; everything else is refused."""

import pytest
from django.contrib.messages import get_messages

from accounts.services import user_grant_role
from ops.jobs import job_create_notification
from ops.models import JobStatus, OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user(username="ops1")
    user_grant_role(actor=make_user(roles=["ADMIN"]), user=operator, role="IT_OPERATOR")
    client.force_login(operator)
    return client


def test_operator_index_lists_only_the_ops_pages(operator_client):
    page = operator_client.get("/admin/").content.decode()
    for url in ("/admin/ops/systemlog/", "/admin/ops/job/", "/admin/ops/outboxevent/",
                "/admin/ops/reconciliationchange/"):
        assert f'href="{url}"' in page
    for url in ("/admin/accounts/user/", "/admin/catalog/bookableitem/", "/admin/reservations/booking/",
                "/admin/reporting/", "/admin/auth/group/"):
        assert url not in page


@pytest.mark.parametrize("url", ["/admin/accounts/user/", "/admin/catalog/bookableitem/",
                                 "/admin/reservations/booking/"])
def test_operator_is_refused_other_pages(operator_client, url):
    assert operator_client.get(url).status_code == 403


def test_there_is_no_group_page_to_refuse(operator_client):
    assert operator_client.get("/admin/auth/group/").status_code == 404


def test_operator_sees_ops_records_read_only(operator_client):
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    page = operator_client.get(f"/admin/ops/job/{job.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert operator_client.post(f"/admin/ops/job/{job.pk}/change/", {"status": "completed"}).status_code == 403
    assert operator_client.get(f"/admin/ops/job/{job.pk}/delete/").status_code == 403


def test_operator_executes_a_queued_job(operator_client, smtp_server):
    job = job_create_notification(recipient_email="a@example.com", subject="Ping", message="Body")

    response = operator_client.post("/admin/ops/job/", {"action": "execute_jobs", "_selected_action": [job.pk]},
                                    follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert "1 of 1 job(s) completed." in [str(m) for m in get_messages(response.wsgi_request)]
    assert [m["to"] for m in smtp_server.messages] == [["a@example.com"]]


def test_operator_retries_a_dead_event(operator_client):
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD, retry_count=5, error_message="boom")

    operator_client.post("/admin/ops/outboxevent/", {"action": "retry_events", "_selected_action": [event.pk]})

    event.refresh_from_db()
    assert (event.status, event.retry_count, event.error_message) == (OutboxStatus.PENDING, 0, "")


def test_staff_without_the_group_cannot_run_ops_actions(client, make_user):
    # IT_OPERATOR role set directly (no service): staff, but no group and so no permissions.
    bare = make_user(roles=["IT_OPERATOR"])
    client.force_login(bare)
    assert client.get("/admin/ops/job/").status_code == 403
