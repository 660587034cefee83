"""The ops admin pages: a job page with its reconciliation changes capped, newest first lists,
JSON shown pretty-printed and escaped, users shown as text to viewers who may not open them,
and actions that leave admin history."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import InterfaceError, OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import user_grant_role
from ops.jobs import job_create_notification
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus, ReconciliationChange, SystemLog
from ops.outbox import EventType, outbox_enqueue

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(make_user, admin_user):
    client = Client()
    client.force_login(user_grant_role(actor=admin_user, user=make_user(username="ops1"), role="IT_OPERATOR"))
    return client


def add_changes(job, count):
    ReconciliationChange.objects.bulk_create(
        ReconciliationChange(job=job, entity_type="booking", entity_id=str(n), action="UPDATED", field="status",
                             document_value="PENDING", relational_value=f"v{n}") for n in range(count))


def test_job_page_shows_the_first_changes_and_links_to_all_of_them(admin_client):
    job = job_create_notification(recipient_email="a@example.com")
    add_changes(job, 60)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(f"/admin/ops/job/{job.pk}/change/").content.decode()

    assert page.count("&quot;v") == 50  # relational values of the first 50 changes
    assert "&quot;v0&quot;" in page and "&quot;v49&quot;" in page and "&quot;v50&quot;" not in page
    link = f"/admin/ops/reconciliationchange/?job__id__exact={job.pk}"
    assert f'<a href="{link}">All 60 change(s) of this job</a>' in page
    change_queries = [q for q in queries.captured_queries if "ops_reconciliationchange" in q["sql"]]
    assert len(change_queries) == 2  # the capped rows and the count
    listing = admin_client.get(link)
    assert listing.status_code == 200 and listing.context["cl"].result_count == 60


def test_job_page_field_order_and_pretty_escaped_json(admin_client):
    job = job_create_notification(recipient_email="a@example.com", subject="<script>x</script>")

    page = admin_client.get(f"/admin/ops/job/{job.pk}/change/").content.decode()

    assert page.index("Completed at") < page.index("Paused at")
    assert page.index("Type") < page.index("Paused at")
    assert '<pre>{\n  &quot;data&quot;: {},\n' in page and '\n  &quot;template&quot;: &quot;GENERIC&quot;\n}</pre>' in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page


def test_json_fields_of_logs_and_outbox_events_are_pretty_printed(admin_client):
    log = SystemLog.objects.create(timestamp=timezone.now(), event_type="AUTH", severity="info", message="m",
                                   additional_data={"reason": "Unknown user", "n": 1})
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={"a": [1, 2]})

    log_page = admin_client.get(f"/admin/ops/systemlog/{log.pk}/change/").content.decode()
    event_page = admin_client.get(f"/admin/ops/outboxevent/{event.pk}/change/").content.decode()

    assert "<pre>{\n  &quot;n&quot;: 1,\n  &quot;reason&quot;: &quot;Unknown user&quot;\n}</pre>" in log_page  # sorted
    assert "<pre>{\n  &quot;a&quot;: [\n    1,\n    2\n  ]\n}</pre>" in event_page


def test_outbox_and_reconciliation_lists_are_newest_first(admin_client):
    older = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="old@example.com", payload={})
    newer = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="new@example.com", payload={})
    OutboxEvent.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
    job = job_create_notification(recipient_email="a@example.com")
    add_changes(job, 3)

    events = admin_client.get("/admin/ops/outboxevent/?event_type__exact=GENERIC").context["cl"].result_list
    changes = admin_client.get("/admin/ops/reconciliationchange/").context["cl"].result_list

    assert [e.pk for e in events] == [newer.pk, older.pk]
    assert [c.entity_id for c in changes] == ["2", "1", "0"]


def test_users_are_text_for_an_operator_and_links_for_an_admin(operator_client, admin_client, admin_user):
    log = SystemLog.objects.create(timestamp=timezone.now(), event_type="USER", severity="info", message="m",
                                   reported_by=admin_user)
    job = job_create_notification(recipient_email="a@example.com", actor=admin_user)
    user_link = f'href="/admin/accounts/user/{admin_user.pk}/change/"'

    for url in (f"/admin/ops/systemlog/{log.pk}/change/", f"/admin/ops/job/{job.pk}/change/"):
        operator_page = operator_client.get(url).content.decode()
        assert user_link not in operator_page and f"boss (#{admin_user.pk})" in operator_page, url
    for url in (f"/admin/ops/systemlog/{log.pk}/change/", f"/admin/ops/job/{job.pk}/change/"):
        assert user_link in admin_client.get(url).content.decode(), url


def history(obj):
    return list(LogEntry.objects.filter(object_id=str(obj.pk)).values_list("change_message", flat=True))


def test_job_execute_and_outbox_retry_leave_history_only_where_they_changed_something(admin_client,
                                                                                    smtp_server):
    queued = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    dead = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={})
    sent = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="y@example.com", payload={})
    OutboxEvent.objects.filter(pk=dead.pk).update(status=OutboxStatus.DEAD, retry_count=5)
    OutboxEvent.objects.filter(pk=sent.pk).update(status=OutboxStatus.SENT)

    admin_client.post("/admin/ops/job/", {"action": "execute_jobs", "_selected_action": [queued.pk]}, follow=True)
    response = admin_client.post("/admin/ops/outboxevent/", {"action": "retry_events",
                                                             "_selected_action": [dead.pk, sent.pk]}, follow=True)

    assert Job.objects.get(pk=queued.pk).status == JobStatus.COMPLETED
    assert history(queued) == ["Ran the action “Execute selected jobs now”."]
    assert history(dead) == ["Ran the action “Retry selected events now (DEAD or pending)”."]
    assert history(sent) == []
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"1 event(s) not changed: already sent or queued, or being delivered right now ({sent.pk})",
        "1 event(s) queued for delivery."]


def test_execute_action_runs_each_job_as_execute_does_and_says_why_one_cannot_run(admin_client, smtp_server,
                                                                                  settings):
    """A job left `running` by a dead worker (stale) runs, like PUT /jobs/{id}/execute runs it;
    a completed one and one running right now are refused with their reason, not skipped."""
    stale, busy, done = (job_create_notification(recipient_email=f"{n}@example.com", subject="s", message="m")
                         for n in ("stale", "busy", "done"))
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 60)
    Job.objects.filter(pk=stale.pk).update(status=JobStatus.RUNNING, started_at=long_ago, updated_at=long_ago)
    Job.objects.filter(pk=busy.pk).update(status=JobStatus.RUNNING, started_at=timezone.now())
    Job.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED)

    response = admin_client.post("/admin/ops/job/", {"action": "execute_jobs",
                                                     "_selected_action": [stale.pk, busy.pk, done.pk]}, follow=True)

    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert Job.objects.get(pk=stale.pk).status == JobStatus.COMPLETED
    assert [m["to"] for m in smtp_server.messages] == [["stale@example.com"]]
    assert f"1 job(s) not changed: Job is running; only queued or failed jobs can be executed ({busy.pk})" in messages
    assert f"1 job(s) not changed: Job is completed; only queued or failed jobs can be executed ({done.pk})" in messages
    assert "1 of 1 job(s) completed." in messages


def test_execute_action_shares_one_time_budget_among_the_selected_jobs(admin_client, monkeypatch):
    """However many jobs are selected, the page answers within one JOB_EXECUTE_SECONDS (inside
    gunicorn's timeout): every job gets the same deadline, a long one then goes on on the workers."""
    from ops import jobs

    selected = [job_create_notification(recipient_email=f"{n}@example.com") for n in range(3)]
    deadlines = []
    monkeypatch.setattr(jobs, "_run_claimed", lambda job_id, deadline, **kwargs: deadlines.append(deadline)
                        or (Job.objects.get(pk=job_id), None))

    admin_client.post("/admin/ops/job/", {"action": "execute_jobs", "_selected_action": [j.pk for j in selected]})

    assert len(deadlines) == 3 and len(set(deadlines)) == 1


def test_retry_action_revives_thousands_of_events_in_bulk_with_their_history(admin_client):
    """After a long mail outage an operator retries every DEAD event at once: a bounded number of
    statements (chunks of ops.outbox.RETRY_CHUNK), each revived event in the history, the
    events being delivered right now left alone and named."""
    from ops.outbox import RETRY_CHUNK

    now = timezone.now()
    OutboxEvent.objects.bulk_create(OutboxEvent(event_type=EventType.GENERIC, recipient_email="x@example.com",
                                                payload={}, status=OutboxStatus.DEAD, retry_count=5,
                                                next_attempt_at=now) for _ in range(2 * RETRY_CHUNK + 10))
    busy = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="y@example.com", payload={})
    OutboxEvent.objects.filter(pk=busy.pk).update(claimed_until=now + timedelta(minutes=5))
    dead = OutboxEvent.objects.filter(status=OutboxStatus.DEAD)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.post("/admin/ops/outboxevent/", {"action": "retry_events", "select_across": "1",
                                                                 "index": "0", "_selected_action": [busy.pk]},
                                     follow=True)

    assert not dead.exists() and OutboxEvent.objects.filter(status=OutboxStatus.PENDING, retry_count=0).count() == \
        2 * RETRY_CHUNK + 11
    assert LogEntry.objects.count() == 2 * RETRY_CHUNK + 10 and history(busy) == []
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"1 event(s) not changed: already sent or queued, or being delivered right now ({busy.pk})",
        f"{2 * RETRY_CHUNK + 10} event(s) queued for delivery."]
    assert len(queries) < 60, len(queries)


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])  # (a closed connection: not a DatabaseError)
def test_retry_action_failing_midway_keeps_the_history_of_the_chunks_it_revived(admin_client, monkeypatch, error):
    """A chunk that fails (the database went away mid-action) leaves the chunks before it
    revived *and* in the history, the rest untouched: history never disagrees with the rows."""
    from ops import outbox

    monkeypatch.setattr(outbox, "RETRY_CHUNK", 3)
    now = timezone.now()
    OutboxEvent.objects.bulk_create(OutboxEvent(event_type=EventType.GENERIC, recipient_email="x@example.com",
                                                payload={}, status=OutboxStatus.DEAD, retry_count=5,
                                                next_attempt_at=now) for _ in range(7))
    fresh_attempts, calls = outbox.fresh_attempts, []

    def failing_on_the_second_chunk(when):
        calls.append(when)
        if len(calls) == 2:
            raise error("server closed the connection unexpectedly")
        return fresh_attempts(when)

    monkeypatch.setattr(outbox, "fresh_attempts", failing_on_the_second_chunk)
    admin_client.raise_request_exception = False

    response = admin_client.post("/admin/ops/outboxevent/", {"action": "retry_events", "select_across": "1",
                                                             "index": "0", "_selected_action": [0]}, follow=True)

    first_chunk = list(OutboxEvent.objects.order_by("pk").values_list("pk", flat=True)[:3])
    assert list(OutboxEvent.objects.filter(status=OutboxStatus.PENDING).order_by("pk").values_list("pk", flat=True)) \
        == first_chunk
    assert sorted(LogEntry.objects.values_list("object_id", flat=True)) == sorted(str(pk) for pk in first_chunk)
    # The page says what happened (not "The selection was not valid; nothing was changed").
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert len(shown) == 2 and shown[1] == "3 event(s) queued for delivery.", shown
    assert shown[0].startswith("4 event(s) not changed: the database failed midway"), shown


def test_execute_action_starts_no_job_once_its_time_budget_is_used_up(admin_client, settings, smtp_server):
    """An email job cannot be cut short: once the page's JOB_EXECUTE_SECONDS are used up, the
    remaining jobs are not started here, and the page says so."""
    settings.JOB_EXECUTE_SECONDS = 0
    selected = [job_create_notification(recipient_email=f"{n}@example.com", subject="s", message="m")
                for n in range(2)]

    response = admin_client.post("/admin/ops/job/", {"action": "execute_jobs",
                                                     "_selected_action": [j.pk for j in selected]}, follow=True)

    first = ", ".join(str(j.pk) for j in sorted(selected, key=lambda j: j.created_at))
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"2 job(s) not changed: not run: this page's 0 s were used up; execute it again ({first})"]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.QUEUED} and not smtp_server.messages


# --- the index: the system's state (ops.status) ------------------------------------------------

@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("who", ["admin", "operator"])
def test_the_index_shows_the_system_state_and_links_each_problem_to_its_page(admin_client, operator_client, who):
    client = admin_client if who == "admin" else operator_client
    dead = OutboxEvent.objects.create(event_type=EventType.GENERIC, recipient_email="lost@example.com",
                                      status=OutboxStatus.DEAD)

    page = client.get("/admin/").content.decode()

    assert 'id="system-status"' in page and "database ok · documents ok · broker ok" in page
    assert "0 pending (0 due) · 1 dead" in page
    link = "/admin/ops/outboxevent/?status__exact=DEAD"
    assert f'<a href="{link}">1 DEAD outbox event(s)' in page
    assert "no whole item reconciliation has completed yet" in page
    assert "lost@example.com" in client.get(link).content.decode() and str(dead.pk)[:8] in client.get(link).content.decode()


@pytest.mark.django_db(databases=["default", "documents"])
def test_the_index_of_a_healthy_system_says_nothing_is_needed(admin_client):
    from ops.jobs import job_create_reconciliation, job_execute

    for entity_type in ("item", "booking"):
        job_execute(job_id=job_create_reconciliation(entity_type=entity_type).pk)
    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(status=OutboxStatus.SENT)
    assert "Nothing needs an operator." in admin_client.get("/admin/").content.decode()


def test_the_log_search_matches_words_of_messages_and_whole_ids_and_addresses(admin_client):
    """A word is a part of the message, or a whole user id, request id or IP address: those three
    are compared as they are, not upper-cased and as substrings (the address as text) for every
    row, which cost more than the messages' scan itself."""
    from django.test.utils import CaptureQueriesContext

    def log(**fields):
        return SystemLog.objects.create(timestamp=timezone.now(), event_type="AUTH", severity="info",
                                        **{"message": "m", **fields})

    failed = log(message="Failed login attempt", user_id="42", ip_address="10.1.2.3")
    request = log(message="Booking made", request_id="8f14e45fceea167a5a36dedd4bea2543", user_id="7")
    ipv6 = log(message="Refused", ip_address="2001:db8::1")

    def found(q):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get("/admin/ops/systemlog/", {"q": q})
        assert response.status_code == 200
        assert not [s["sql"] for s in ctx.captured_queries if "HOST(" in s["sql"].upper()
                    or 'UPPER("ops_systemlog"."request_id"' in s["sql"]], q
        return sorted(entry.pk for entry in response.context["cl"].result_list)

    assert found("LOGIN") == [failed.pk]
    assert found("42") == [failed.pk] and found("4") == []  # (not a part of an id)
    assert found("8f14e45fceea167a5a36dedd4bea2543") == [request.pk] and found("8f14e45f") == []
    assert found("10.1.2.3") == [failed.pk] and found("2001:DB8:0::1") == [ipv6.pk] and found("10.1") == []
    assert found("made 7") == [request.pk]


def test_the_log_list_tells_entries_an_account_posted_from_the_systems_own(operator_client, admin_client, make_user,
                                                                           client_for):
    """Any signed-in account may POST /logs an AUTH "Failed login attempt" naming someone else
    (docs/SECURITY.md, known limits): the list shows who reported each entry, and filters the
    system's own entries from those an account reported, in a fixed number of queries."""
    from accounts.services import auth_login_failed

    victim, forger = make_user(username="victim"), make_user(username="forger")
    auth_login_failed(user=victim, reason="Invalid password")
    forged = client_for(forger).post("/logs", {"eventType": "AUTH", "severity": "error", "message": "Failed login attempt",
                                               "userId": str(victim.pk), "additionalData": {"reason": "Invalid password"}},
                                     format="json")
    assert forged.status_code == 201

    for client in (operator_client, admin_client):
        page = client.get("/admin/ops/systemlog/?event_type__exact=AUTH")
        rows = {entry.pk: entry for entry in page.context["cl"].result_list}
        assert len(rows) == 2 and f"forger (#{forger.pk})" in page.content.decode()
        assert [e.reported_by_id for e in client.get("/admin/ops/systemlog/?event_type__exact=AUTH&source=system")
                .context["cl"].result_list] == [None]
        assert [e.reported_by_id for e in client.get("/admin/ops/systemlog/?event_type__exact=AUTH&source=account")
                .context["cl"].result_list] == [forger.pk]
    with CaptureQueriesContext(connection) as few:
        operator_client.get("/admin/ops/systemlog/")
    for n in range(5):
        client_for(make_user()).post("/logs", {"eventType": "APP", "severity": "info", "message": f"m{n}"}, format="json")
    with CaptureQueriesContext(connection) as many:
        operator_client.get("/admin/ops/systemlog/")
    assert len(many) == len(few)
