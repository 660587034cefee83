"""GET /metrics: Prometheus' text format, for ADMIN, IT_OPERATOR and the scraper's METRICS_TOKEN."""

import re
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings_project.testing import REVOKED_CALLERS
from bookings_project.tests.helpers import assert_error
from ops import health, jobs, metrics
from ops.models import Job, JobStatus, JobType, OutboxEvent, OutboxStatus
from ops.outbox import EventType, outbox_enqueue

pytestmark = pytest.mark.django_db(databases=["default", "documents"])

SCRAPER_TOKEN = "s" * 40
PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def samples(response) -> dict[tuple, float]:
    """{(name, (label, value)...): value} of an exposition, checking every line's shape: each
    sample's family has its HELP and TYPE lines before it."""
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert text.endswith("\n")
    found, described = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            described.add((line[2:6], line.split()[2]))
            continue
        match = SAMPLE.match(line)
        assert match, line
        name = match["name"]
        assert {("HELP", name), ("TYPE", name)} <= described, line
        labels = tuple(tuple(pair.split("=", 1)) for pair in match["labels"].split(",")) if match["labels"] else ()
        found[(name, tuple((key, value.strip('"')) for key, value in labels))] = float(match["value"])
    return found


@pytest.fixture
def operator_client(client_for, make_user):
    return client_for(make_user(roles=["IT_OPERATOR"]))


@pytest.mark.parametrize("caller, expected", [
    ("anonymous", 401), ("USER", 403), ("EVENT_ORGANIZER", 403), ("ADMIN", 200), ("IT_OPERATOR", 200),
    ("USER+EVENT_ORGANIZER", 403), ("USER+IT_OPERATOR", 200), *((how, 401) for how in REVOKED_CALLERS),
    ("metrics token", 200), ("wrong metrics token", 401), ("metrics token, none configured", 401),
])
def test_who_may_read_the_metrics(api_client, client_for, make_user, revoked_client_for, settings, caller, expected):
    settings.METRICS_TOKEN = "" if caller.endswith("none configured") else SCRAPER_TOKEN
    if caller == "anonymous":
        client = api_client
    elif caller in REVOKED_CALLERS:
        client = revoked_client_for(caller)
    elif "metrics token" in caller:
        client = api_client
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {'w' * 40 if caller.startswith('wrong') else SCRAPER_TOKEN}")
    else:
        client = client_for(make_user(roles=caller.split("+")))

    response = client.get("/metrics", HTTP_ACCEPT=PROMETHEUS_ACCEPT)

    if expected == 200:
        assert response.status_code == 200
        assert ("bookings_dependency_up", (("dependency", "database"),)) in samples(response)
    else:
        body = assert_error(response, expected, path="/metrics")
        if expected == 403:
            assert "IT_OPERATOR" in body["message"] and "METRICS_TOKEN" in body["message"]


def test_the_metrics_token_opens_nothing_else(api_client, settings):
    settings.METRICS_TOKEN = SCRAPER_TOKEN
    api_client.credentials(HTTP_AUTHORIZATION=f"bearer {SCRAPER_TOKEN}")
    assert api_client.get("/metrics").status_code == 200
    for path in ("/logs", "/jobs", "/api/v1/user/me", "/api/v1/reports/revenue"):
        assert_error(api_client.get(path), 401)


@pytest.mark.parametrize("header", [f"Bearer {SCRAPER_TOKEN}", f"bearer   {SCRAPER_TOKEN}  ", f"BEARER {SCRAPER_TOKEN}"])
def test_the_metrics_token_is_read_as_the_jwt_is(api_client, settings, header):
    """The scheme in any case, the token trimmed (settings trims the configured one too)."""
    settings.METRICS_TOKEN = SCRAPER_TOKEN
    assert api_client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 200
    for other in (f"Basic {SCRAPER_TOKEN}", SCRAPER_TOKEN, f"Bearer {SCRAPER_TOKEN[:-1]}", f"Bearer {SCRAPER_TOKEN} x",
                  f"Bearer {SCRAPER_TOKEN}x", "Bearer \xe9\xff" + SCRAPER_TOKEN):
        assert_error(api_client.get("/metrics", HTTP_AUTHORIZATION=other), 401)


def test_outbox_and_job_figures(operator_client):
    now = timezone.now()

    def event(status, next_attempt_at):
        created = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="a@example.com", payload={})
        OutboxEvent.objects.filter(pk=created.pk).update(status=status, next_attempt_at=next_attempt_at)

    event(OutboxStatus.PENDING, now - timedelta(seconds=600))  # due for 10 minutes: no dispatcher?
    event(OutboxStatus.PENDING, now - timedelta(seconds=5))
    event(OutboxStatus.PENDING, now + timedelta(seconds=300))  # backing off after a failure
    event(OutboxStatus.DEAD, now - timedelta(days=1))
    event(OutboxStatus.SENT, now - timedelta(days=2))
    for job_type, status, count in [(JobType.NOTIFICATION, JobStatus.QUEUED, 2), (JobType.NOTIFICATION,
                                    JobStatus.COMPLETED, 3), (JobType.RECONCILIATION, JobStatus.FAILED, 1),
                                    (JobType.RECONCILIATION, JobStatus.RUNNING, 1)]:
        Job.objects.bulk_create(Job(type=job_type, status=status) for _ in range(count))

    found = samples(operator_client.get("/metrics"))

    assert found[("bookings_outbox_events", (("status", "PENDING"),))] == 3
    assert found[("bookings_outbox_events", (("status", "DEAD"),))] == 1
    assert found[("bookings_outbox_due_events", ())] == 2
    assert 600 <= found[("bookings_outbox_oldest_due_age_seconds", ())] < 660
    assert {key[1]: value for key, value in found.items() if key[0] == "bookings_jobs"} == {
        (("type", job_type), ("status", status)): expected
        for (job_type, status), expected in {
            ("NOTIFICATION", "queued"): 2, ("NOTIFICATION", "running"): 0, ("NOTIFICATION", "failed"): 0,
            ("RECONCILIATION", "queued"): 0, ("RECONCILIATION", "running"): 1,
            ("RECONCILIATION", "failed"): 1}.items()}
    assert {key[0] for key in found} == {
        "bookings_dependency_up", "bookings_outbox_events", "bookings_outbox_due_events",
        "bookings_outbox_oldest_due_age_seconds", "bookings_jobs",
        "bookings_reconciliation_last_completed_timestamp_seconds", "bookings_metrics_collect_seconds"}


def test_nothing_due_is_zero_not_missing(operator_client):
    found = samples(operator_client.get("/metrics"))
    assert found[("bookings_outbox_due_events", ())] == 0
    assert found[("bookings_outbox_oldest_due_age_seconds", ())] == 0
    assert found[("bookings_reconciliation_last_completed_timestamp_seconds", (("entity_type", "item"),))] == 0


def _reconciled(entity_type, entity_id=None) -> Job:
    job = jobs.job_create_reconciliation(entity_type=entity_type, entity_id=entity_id)
    return jobs.job_execute(job_id=job.pk)


def test_last_whole_type_reconciliation_per_type_launch_counting_as_item(operator_client):
    """What to alert on when the nightly run stops: a single entity's run since does not count,
    nor does a whole-type run that failed or is still queued."""
    item_run = _reconciled("launch")
    booking_run = _reconciled("booking")
    assert (item_run.status, booking_run.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    later = timezone.now() + timedelta(hours=1)
    Job.objects.bulk_create([
        Job(type=JobType.RECONCILIATION, status=JobStatus.COMPLETED, created_at=later, completed_at=later,
            params={"entityType": "item", "entityId": "7"}),
        Job(type=JobType.RECONCILIATION, status=JobStatus.FAILED, created_at=later, completed_at=later,
            params={"entityType": "booking", "entityId": None}),
        Job(type=JobType.RECONCILIATION, status=JobStatus.QUEUED, created_at=later,
            params={"entityType": "item", "entityId": None})])

    found = samples(operator_client.get("/metrics"))

    for entity_type, run in (("item", item_run), ("booking", booking_run)):
        reported = found[("bookings_reconciliation_last_completed_timestamp_seconds", (("entity_type", entity_type),))]
        assert reported == pytest.approx(run.completed_at.timestamp(), abs=0.001)


def test_a_run_executed_again_later_counts_when_it_completed(operator_client):
    """A nightly run that failed and was executed again days later completed after the newer
    nights' runs: the latest completion is what the metric says."""
    now = timezone.now()
    Job.objects.bulk_create([
        Job(type=JobType.RECONCILIATION, status=JobStatus.COMPLETED, created_at=now - timedelta(days=3),
            completed_at=now - timedelta(minutes=5), params={"entityType": "item", "entityId": None}),
        Job(type=JobType.RECONCILIATION, status=JobStatus.COMPLETED, created_at=now - timedelta(days=1),
            completed_at=now - timedelta(days=1), params={"entityType": "item", "entityId": None})])

    found = samples(operator_client.get("/metrics"))

    reported = found[("bookings_reconciliation_last_completed_timestamp_seconds", (("entity_type", "item"),))]
    assert reported == pytest.approx((now - timedelta(minutes=5)).timestamp(), abs=0.001)


@pytest.mark.postgres  # (SQLite cannot use a partial index on a JSON key: Django writes the
# expression differently from one process to the next, the path a bound parameter in the query)
def test_the_last_reconciliation_is_read_along_the_index_of_whole_type_runs(operator_client):
    """Along the (type, status, -created_at) index the read went past every single-entity run
    since the last whole-type one — and past all completed reconciliations for a type never
    reconciled whole: 40 ms a scrape with 50,000 of them, growing with the table."""
    _reconciled("item", entity_id="1")
    with CaptureQueriesContext(connections["default"]) as captured:
        metrics.metrics_collect()
    reads = [query["sql"] for query in captured if "entityType" in query["sql"]]
    assert len(reads) == 2
    with connections["default"].cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # (a tiny table is scanned whatever the indexes)
        for sql in reads:
            cursor.execute(f"EXPLAIN {sql}")
            plan = str(cursor.fetchall())
            assert "job_whole_recon_done" in plan, plan


def test_with_the_database_down_it_still_answers_saying_so(operator_client, broken_database, monkeypatch):
    """A scrape that fails tells Prometheus only that the scrape failed; `up == 0` for the
    database is what an alert wants. (The caller's token was checked before the database went.)"""
    operator_client.get("/metrics")
    broken_database("default")
    monkeypatch.setattr(metrics, "_outbox", lambda now: pytest.fail("read the outbox with the database down"))
    found = metrics.exposition(metrics.metrics_collect())

    assert 'bookings_dependency_up{dependency="database"} 0\n' in found
    assert 'bookings_dependency_up{dependency="documents"} 1\n' in found
    assert "bookings_jobs" not in found and "connection refused" not in found


def test_a_database_that_does_not_answer_is_down_within_the_scrape_timeout(operator_client, monkeypatch):
    """With PostgreSQL down each database's ping waits out the pool (DB_POOL_TIMEOUT, 10 s), the
    two one after the other: 20 s, past Prometheus' scrape_timeout (10 s by default), so the
    scrape failed instead of saying which dependency was down."""
    def ping(alias):
        time.sleep(2)
        raise OperationalError("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(health, "DEPENDENCY_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(health, "database_ping", ping)
    started = time.monotonic()
    found = samples(operator_client.get("/metrics"))

    assert time.monotonic() - started < 1.5
    assert {key[1][0][1]: value for key, value in found.items() if key[0] == "bookings_dependency_up"} == {
        "database": 0, "documents": 0, "broker": 1}
    assert not any(key[0] == "bookings_jobs" for key in found)


def test_a_fixed_number_of_queries_whatever_the_backlog(operator_client):
    def queries():
        with CaptureQueriesContext(connections["default"]) as captured:
            assert operator_client.get("/metrics").status_code == 200
        return len(captured)

    _reconciled("item")
    baseline = queries()
    past = timezone.now() - timedelta(minutes=1)
    OutboxEvent.objects.bulk_create(OutboxEvent(event_type=EventType.GENERIC, next_attempt_at=past,
                                                status=status) for status in [OutboxStatus.PENDING] * 50 +
                                    [OutboxStatus.DEAD] * 50)
    Job.objects.bulk_create(Job(type=job_type, status=status, params={"entityType": "item", "entityId": str(i)})
                            for i in range(30) for job_type in JobType.values for status in JobStatus.values)
    assert queries() == baseline <= 8


def test_head_answers_like_get_and_writes_are_405_json(operator_client):
    response = operator_client.head("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert_error(operator_client.post("/metrics", {}, format="json"), 405)


@pytest.mark.parametrize("accept", [None, PROMETHEUS_ACCEPT, "application/json"])
def test_options_answers_the_metadata_in_json(operator_client, accept):
    """(The text renderer was handed DRF's metadata dict: a 500.)"""
    response = operator_client.options("/metrics", **({"HTTP_ACCEPT": accept} if accept else {}))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["name"] == "Metrics" and response.json()["renders"] == ["text/plain"]


@pytest.mark.parametrize("raw, written", [('a"b', 'a\\"b'), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb")])
def test_label_values_are_escaped(raw, written):
    family = metrics.Family("x", "help", [({"k": raw}, 1)])
    assert metrics.exposition([family]) == f'# HELP bookings_x help\n# TYPE bookings_x gauge\nbookings_x{{k="{written}"}} 1\n'
