"""Core API /notifications and /jobs: statuses, role rules, execute semantics."""

import pytest

from bookings_project.testing import REVOKED_CALLERS
from ops.dispatch import outbox_dispatch_until_empty
from ops.jobs import job_create_notification
from ops.models import Job, JobStatus

pytestmark = pytest.mark.django_db

NOTIFICATION_JOB = {"type": "NOTIFICATION", "notification": {
    "recipientEmail": "customer@example.com", "subject": "Booking Confirmation",
    "message": "Your booking has been confirmed."}}


@pytest.fixture
def operator(make_user):
    return make_user(roles=["IT_OPERATOR"])


@pytest.fixture
def op_client(client_for, operator):
    return client_for(operator)


def test_post_notification_queues_a_job_that_the_outbox_delivers(op_client, smtp_server):
    response = op_client.post("/notifications", {"type": "NEW_BOOKING", "recipient": "supplier@example.com",
                                                 "data": {"bookingId": "booking123", "launchId": "launch456",
                                                          "seats": 2}}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and set(body) == {"jobId", "status"}

    outbox_dispatch_until_empty()

    job = Job.objects.get(pk=body["jobId"])
    assert job.status == JobStatus.COMPLETED
    [mail] = smtp_server.messages
    assert mail["to"] == ["supplier@example.com"]
    text = mail["message"].get_body(preferencelist=("plain",)).get_content()
    assert "launch456" in text and "seats: 2" in text
    shown = op_client.get(f"/jobs/{body['jobId']}").json()["notification"]
    assert shown == {"template": "NEW_BOOKING", "recipientEmail": "supplier@example.com", "subject": "",
                     "message": "", "data": {"bookingId": "booking123", "launchId": "launch456", "seats": 2}}


@pytest.mark.parametrize("payload", [
    {"type": "NOPE", "recipient": "a@example.com"},
    {"type": "GENERIC", "recipient": "not-an-email"},
    {"type": "GENERIC"},
])
def test_bad_notification_requests_are_400(op_client, payload):
    response = op_client.post("/notifications", payload, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]


@pytest.mark.parametrize("data, field", [
    ({"startTime": "garbage", "endTime": "2030-01-01T12:00:00"}, "data.startTime"),
    ({"startTime": "2030-01-01T10:00:00", "endTime": 1893492000}, "data.endTime"),
    ({"bookingDate": ["2030-01-01"]}, "data.bookingDate"),
    ({"subject": {"nested": "object"}}, "data.subject"),
    ({"message": 42}, "data.message"),
    ({"subject": "x" * 201}, "data.subject"),
])
def test_notification_data_the_email_uses_must_have_its_shape(op_client, data, field):
    response = op_client.post("/notifications", {"type": "BOOKING_CONFIRMED", "recipient": "a@example.com",
                                                 "data": data}, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Job.objects.exists()


def test_notification_data_is_bounded_as_log_entries_additional_data_is(op_client):
    """Stored in the job, listed in the email and in every GET /jobs/{jobId}: the 1 MiB body
    limit is no bound for that (16 KB as JSON is)."""
    request = {"type": "GENERIC", "recipient": "a@example.com"}
    fits = op_client.post("/notifications", {**request, "data": {"note": "x" * 16_000}}, format="json")
    assert fits.status_code == 202, fits.json()

    too_big = op_client.post("/notifications", {**request, "data": {f"k{n}": "x" * 1_000 for n in range(17)}},
                             format="json")

    assert too_big.status_code == 400 and "data" in too_big.json()["fields"], too_big.json()
    assert Job.objects.count() == 1


def calendar_parts(mail):
    return [part for part in mail["message"].iter_attachments() if part.get_content_type() == "text/calendar"]


def test_booking_notification_with_times_carries_an_ics(op_client, smtp_server):
    data = {"subject": "Booked", "message": "See you", "bookingId": "b1", "itemName": "Workshop",
            "startTime": "2030-01-01T10:00:00", "endTime": "2030-01-01T12:00:00Z", "bookingDate": None}
    assert op_client.post("/notifications", {"type": "BOOKING_CONFIRMED", "recipient": "a@example.com",
                                             "data": data}, format="json").status_code == 202
    outbox_dispatch_until_empty()
    [mail] = smtp_server.messages
    [ics] = calendar_parts(mail)
    assert "DTSTART:20300101T100000" in ics.get_content()


def test_booking_notification_whose_times_became_unusable_is_sent_without_ics(op_client, smtp_server):
    """Defence in depth: a job stored before validation (or written another way) with a bad time
    still delivers its email instead of failing every attempt until DEAD."""
    job_id = op_client.post("/notifications", {"type": "BOOKING_CANCELLED", "recipient": "a@example.com",
                                                "data": {"bookingId": "b1"}}, format="json").json()["jobId"]
    job = Job.objects.get(pk=job_id)
    job.params["data"].update(startTime="garbage", endTime=7)
    job.save(update_fields=["params"])

    outbox_dispatch_until_empty()

    assert Job.objects.get(pk=job_id).status == JobStatus.COMPLETED
    [mail] = smtp_server.messages
    assert not calendar_parts(mail)


def test_create_job_then_execute_returns_final_state_and_sends_once(op_client, smtp_server):
    created = op_client.post("/jobs", NOTIFICATION_JOB, format="json")
    assert created.status_code == 202
    job = created.json()
    assert job["type"] == "NOTIFICATION" and job["status"] == "queued"
    assert job["id"] == job["jobId"] and job["createdAt"].endswith("Z") and job["updatedAt"] == job["createdAt"]
    other = op_client.post("/jobs", {"type": "RECONCILIATION", "reconciliation": {"entityType": "item"}},
                           format="json").json()["id"]
    for wrong in ({"jobId": other}, {"jobId": 2.5}, [1]):
        refused = op_client.put(f"/jobs/{job['id']}/execute", wrong, format="json")
        assert refused.status_code == 400, (wrong, refused.content)
    assert "jobId" in op_client.put(f"/jobs/{job['id']}/execute", {"jobId": other}, format="json").json()["fields"]
    assert len(smtp_server.messages) == 0 and Job.objects.get(pk=job["id"]).status == JobStatus.QUEUED

    executed = op_client.put(f"/jobs/{job['id']}/execute", {"jobId": job["id"]}, format="json")
    assert executed.status_code == 200
    assert executed.json()["status"] == "completed"
    assert executed.json()["startedAt"] and executed.json()["completedAt"]
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0]["message"]["Subject"] == "Booking Confirmation"

    again = op_client.put(f"/jobs/{job['id']}/execute", format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    # The job's own outbox event later finds it done and sends nothing more.
    outbox_dispatch_until_empty()
    assert len(smtp_server.messages) == 1


def test_execute_failing_job_reports_failed_and_can_be_executed_again(op_client, smtp_server):
    smtp_server.stop()
    job_id = op_client.post("/jobs", NOTIFICATION_JOB, format="json").json()["id"]
    failed = op_client.put(f"/jobs/{job_id}/execute")
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed" and failed.json()["error"]

    smtp_server.start()
    retried = op_client.put(f"/jobs/{job_id}/execute")
    assert retried.json()["status"] == "completed" and retried.json()["error"] is None
    assert len(smtp_server.messages) == 1


def test_running_job_cannot_be_executed(op_client):
    job_id = op_client.post("/jobs", NOTIFICATION_JOB, format="json").json()["id"]
    Job.objects.filter(pk=job_id).update(status=JobStatus.RUNNING)
    assert op_client.put(f"/jobs/{job_id}/execute").status_code == 409


@pytest.mark.parametrize("job_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "1"])
def test_unknown_job_is_404(op_client, job_id):
    assert op_client.get(f"/jobs/{job_id}").status_code == 404
    assert op_client.put(f"/jobs/{job_id}/execute").status_code == 404


@pytest.mark.parametrize("payload, field", [
    ({"type": "NOTIFICATION"}, "notification"),
    ({"type": "RECONCILIATION"}, "reconciliation"),
    ({"type": "NOTIFICATION", "notification": {"recipientEmail": "x"}}, "notification.recipientEmail"),
    ({"type": "CLEANUP"}, "type"),
    ({"type": "RECONCILIATION", "reconciliation": {"entityType": "planet"}}, "reconciliation.entityType"),
])
def test_invalid_jobs_are_400_with_fields(op_client, payload, field):
    response = op_client.post("/jobs", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_list_jobs_filters_and_pages(op_client):
    for _ in range(3):
        op_client.post("/jobs", NOTIFICATION_JOB, format="json")
    op_client.post("/jobs", {"type": "RECONCILIATION", "reconciliation": {"entityType": "launch",
                                                                          "entityId": "7"}}, format="json")
    everything = op_client.get("/jobs").json()
    assert everything["total"] == 4 and everything["page"] == 1 and everything["pageSize"] == 10
    assert op_client.get("/jobs?type=NOTIFICATION").json()["total"] == 3
    recon = op_client.get("/jobs?type=RECONCILIATION").json()["jobs"][0]
    assert recon["reconciliation"] == {"entityType": "launch", "entityId": "7"}
    assert op_client.get("/jobs?status=completed").json()["total"] == 0
    page = op_client.get("/jobs?page=2&pageSize=3").json()
    assert page["total"] == 4 and len(page["jobs"]) == 1
    assert op_client.get("/jobs?from=2999-01-01T00:00:00Z").json()["total"] == 0
    assert op_client.get("/jobs?to=2000-01-01T00:00:00Z").json()["total"] == 0
    assert op_client.get("/jobs?to=2999-01-01T00:00:00Z").json()["total"] == 4
    assert op_client.get("/jobs?status=weird").status_code == 400
    assert op_client.get("/jobs?from=yesterday").status_code == 400
    assert op_client.get("/jobs?pageSize=101").status_code == 400


@pytest.mark.parametrize("roles, expected", [
    (None, 401), (["USER"], 403), (["EVENT_ORGANIZER"], 403), (["IT_OPERATOR"], 200), (["ADMIN"], 200),
    (["USER", "IT_OPERATOR"], 200), (["EVENT_ORGANIZER", "IT_OPERATOR"], 200),
    *((revoked, 401) for revoked in REVOKED_CALLERS),  # an ADMIN's token, revoked since
])
def test_job_endpoints_role_matrix(caller_client, make_user, roles, expected):
    client = caller_client(roles)
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    created_status = 202 if expected == 200 else expected
    assert client.post("/jobs", NOTIFICATION_JOB, format="json").status_code == created_status
    assert client.get("/jobs").status_code == expected
    assert client.post("/notifications", {"type": "GENERIC", "recipient": "a@example.com"},
                       format="json").status_code == created_status
    assert client.get("/reconciliation/jobs").status_code == expected
    assert client.post("/reconciliation", {"entityType": "item"}, format="json").status_code == created_status
    assert client.post("/reconciliation/events", {"entityType": "booking", "entityId": "1", "action": "update"},
                       format="json").status_code == created_status
    assert client.get(f"/jobs/{job.pk}").status_code == expected
    # Refused before any lookup: an unknown id tells a refused caller nothing more.
    assert client.get("/jobs/00000000-0000-0000-0000-000000000000").status_code == (
        404 if expected == 200 else expected)
    executed = client.put(f"/jobs/{job.pk}/execute")
    assert executed.status_code == expected
    job.refresh_from_db()
    assert job.status == (JobStatus.COMPLETED if expected == 200 else JobStatus.QUEUED)
    if expected != 200:  # nothing was created behind the refusals
        assert list(Job.objects.values_list("pk", flat=True)) == [job.pk]


def test_list_jobs_newest_first_and_to_is_inclusive(op_client):
    """GET /jobs: newest first (created_at descending); `to` bounds created_at from above."""
    from datetime import datetime, timezone

    ids = [op_client.post("/jobs", NOTIFICATION_JOB, format="json").json()["jobId"] for _ in range(3)]
    for day, job_id in zip((2, 3, 1), ids):  # created on 2030-01-02, -03 and -01
        Job.objects.filter(pk=job_id).update(created_at=datetime(2030, 1, day, 12, tzinfo=timezone.utc))

    listed = [j["jobId"] for j in op_client.get("/jobs").json()["jobs"]]
    assert listed == [ids[1], ids[0], ids[2]]
    until_the_2nd = op_client.get("/jobs?to=2030-01-02T12:00:00Z").json()
    assert until_the_2nd["total"] == 2 and [j["jobId"] for j in until_the_2nd["jobs"]] == [ids[0], ids[2]]


def test_jobs_made_in_the_same_microsecond_page_in_one_stable_order(op_client):
    """Newest first, then by id: pages of a list never repeat or skip a job that shares its
    createdAt with another (6 jobs: a tie order that happens to match has odds of 1 in 720)."""
    from django.utils import timezone

    for _ in range(6):
        op_client.post("/jobs", NOTIFICATION_JOB, format="json")
    Job.objects.update(created_at=timezone.now())

    paged = [op_client.get(f"/jobs?page={page}&pageSize=1").json()["jobs"][0]["jobId"] for page in range(1, 7)]

    assert paged == sorted((str(pk) for pk in Job.objects.values_list("pk", flat=True)), reverse=True)
