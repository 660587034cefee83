"""The admin's changelists at volume: the same number of queries for 1 row as for 30, and no
query that reads every row of a table for the page's furniture — the date hierarchy's links
(bookings_project.admin_tags) and the event-type filter's choices (indexed_values_filter).
Measured on PostgreSQL with a year of data (1,000,000 log entries), those took 0.3–1.1 s each."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.tests.factories import make_item
from ops.jobs import job_create_notification, job_create_reconciliation
from ops.models import OutboxEvent, ReconciliationChange, SystemLog
from ops.outbox import EventType, outbox_enqueue
from reservations.tests.factories import book

pytestmark = pytest.mark.django_db

CHANGELISTS = (
    "/admin/accounts/user/",
    "/admin/catalog/bookableitem/",
    "/admin/reservations/booking/",
    "/admin/ops/systemlog/",
    "/admin/ops/outboxevent/",
    "/admin/ops/job/",
    "/admin/ops/reconciliationchange/",
)
# Pages whose date hierarchy lists years, then the months of one year.
HIERARCHIES = (
    ("/admin/ops/systemlog/", "timestamp"),
    ("/admin/ops/outboxevent/", "created_at"),
    ("/admin/reservations/booking/", "booking_date"),
    ("/admin/accounts/user/", "date_joined"),
    ("/admin/ops/job/", "created_at"),
)


def _log(event_type="AUTH", when=None):
    return SystemLog.objects.create(timestamp=when or datetime.now(dt_timezone.utc), event_type=event_type,
                                    severity="info", message="m")


def _rows(make_user, organizer, n: int) -> None:
    for i in range(n):
        user = make_user()
        book(user, make_item(organizer, name=f"Item {i}", start=datetime.now(dt_timezone.utc) + timedelta(days=30 + i)))
        _log(event_type=f"TYPE{i % 3}")
        job_create_notification(recipient_email=f"r{i}@example.com", subject="s", message="m", actor=user)
        job = job_create_reconciliation(entity_type="item", entity_id=i + 1, actor=user)
        ReconciliationChange.objects.create(job=job, entity_type="item", entity_id=str(i), action="updated",
                                            field="name", document_value="a", relational_value="b")


def _page(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return response, [q["sql"] for q in ctx.captured_queries]


def test_changelists_cost_the_same_for_one_row_and_thirty(admin_client, make_user, organizer):
    _rows(make_user, organizer, 1)
    one = {url: len(_page(admin_client, url)[1]) for url in CHANGELISTS}
    _rows(make_user, organizer, 29)

    for url in CHANGELISTS:
        response, queries = _page(admin_client, url)
        assert len(response.context["cl"].result_list) >= 30, url
        assert len(queries) == one[url], (url, queries)


@pytest.mark.django_db(databases=["default", "documents"])
def test_reports_and_status_pages_cost_the_same_for_one_row_and_thirty(admin_client, client_for, make_user,
                                                                     organizer):
    """The admin's index (with the system's state), its revenue page, the revenue report (over
    the bookings' dates) and GET /metrics."""

    def costs() -> dict:
        api = client_for(admin_client.admin_user)
        days = (timezone.localdate() - timedelta(days=1), timezone.localdate() + timedelta(days=60))
        report = f"/api/v1/reports/revenue?startDate={days[0]}&endDate={days[1]}"
        pages = {"/admin/": admin_client, f"/admin/reporting/revenue/?startDate={days[0]}&endDate={days[1]}":
                 admin_client, report: api, f"{report}&format=csv": api, "/metrics": api}
        return {url: len(_page(client, url)[1]) for url, client in pages.items()}

    _rows(make_user, organizer, 1)
    one = costs()
    _rows(make_user, organizer, 29)
    assert costs() == one


@pytest.mark.parametrize("url,field", HIERARCHIES)
def test_date_links_come_from_the_first_and_last_date_not_from_every_row(admin_client, make_user, organizer, url,
                                                                          field):
    _rows(make_user, organizer, 3)  # (two moved to 2024 below, the third stays in this year)
    model = admin_client.get(url).context["cl"].model
    first, last = datetime(2024, 3, 5, 12, tzinfo=dt_timezone.utc), datetime(2024, 7, 9, 12, tzinfo=dt_timezone.utc)
    pks = list(model.objects.order_by("pk").values_list("pk", flat=True)[:2])
    model.objects.filter(pk=pks[0]).update(**{field: first})
    model.objects.filter(pk=pks[1]).update(**{field: last})

    years = [str(year) for year in range(2024, timezone.localdate().year + 1)]  # (2025: no row, listed)
    for page, links in ((url, years),
                        (f"{url}?{field}__year=2024", ["March 2024", "April 2024", "May 2024", "June 2024",
                                                       "July 2024"])):
        response, queries = _page(admin_client, page)
        hierarchy = response.content.decode().split('<nav class="toplinks">')[1].split("</nav>")[0]
        for text in links:
            assert f">{text}</a>" in hierarchy, (page, text, hierarchy)
        assert not [q for q in queries if "DISTINCT" in q.upper() and "TRUNC" in q.upper()], page


def test_the_event_type_filter_lists_the_types_without_reading_every_entry(admin_client):
    for event_type in ("USER", "AUTH", "AUTH", "BOOKING"):
        _log(event_type)
    outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={})

    response, queries = _page(admin_client, "/admin/ops/systemlog/")
    cl = response.context["cl"]
    [spec] = [spec for spec in cl.filter_specs if spec.title == "event type"]
    assert [choice["display"] for choice in spec.choices(cl)] == ["All", "AUTH", "BOOKING", "USER"]
    assert not [q for q in queries if "DISTINCT" in q.upper()]
    assert not [q for q in _page(admin_client, "/admin/ops/outboxevent/")[1] if "DISTINCT" in q.upper()]

    # The same URL parameter as before; a value not among the choices still filters.
    filtered = admin_client.get("/admin/ops/systemlog/?event_type__exact=AUTH").context["cl"].result_list
    assert [log.event_type for log in filtered] == ["AUTH", "AUTH"]
    assert not admin_client.get("/admin/ops/systemlog/?event_type__exact=NOPE").context["cl"].result_list
    facets = admin_client.get("/admin/ops/systemlog/?_facets=True").content.decode()
    assert "AUTH (2)" in facets and "USER (1)" in facets
    assert OutboxEvent.objects.count() == 1


@pytest.mark.parametrize("url,field", HIERARCHIES[:3])
def test_a_searched_list_takes_its_date_links_from_the_list_unsearched(admin_client, make_user, organizer, url,
                                                                         field):
    """The first and last date of the rows matching a search is a scan of the whole table (2.6 s
    on 1,000,000 log entries for a search that matched nothing); the list's own is an index lookup."""
    _rows(make_user, organizer, 3)
    model = admin_client.get(url).context["cl"].model
    model.objects.filter(pk=model.objects.order_by("pk").values_list("pk", flat=True)[0]).update(
        **{field: datetime(2024, 3, 5, 12, tzinfo=dt_timezone.utc)})

    response, queries = _page(admin_client, f"{url}?q=nothing-matches-this")
    hierarchy = response.content.decode().split('<nav class="toplinks">')[1].split("</nav>")[0]
    assert ">2024</a>" in hierarchy and not response.context["cl"].result_list
    assert not [q for q in queries if "MIN(" in q.upper() and "LIKE" in q.upper()], queries
    response, queries = _page(admin_client, f"{url}?q=nothing-matches-this&{field}__year=2024")
    assert ">March 2024</a>" in response.content.decode()
    assert not [q for q in queries if "MIN(" in q.upper() and "LIKE" in q.upper()], queries


def test_the_reconciliation_change_list_reads_its_filter_and_search_through_indexes(admin_client, make_user):
    """Its entity-type filter's choices through the (entity_type, entity_id) index, not a
    `SELECT DISTINCT` of every change row; a search matches a whole job id or entity id (by
    equality, through their indexes), not a substring of the job id turned into text, which
    scanned every row twice (~1 s per page at 210,000 rows)."""
    user = make_user()
    item_job = job_create_reconciliation(entity_type="item", entity_id=12, actor=user)
    booking_job = job_create_reconciliation(entity_type="booking", entity_id=7, actor=user)
    for job, entity_type, entity_id in ((item_job, "item", "12"), (booking_job, "booking", "7"),
                                        (booking_job, "booking", "123")):
        ReconciliationChange.objects.create(job=job, entity_type=entity_type, entity_id=entity_id, action="updated",
                                            field="name", document_value="a", relational_value="b")

    response, queries = _page(admin_client, "/admin/ops/reconciliationchange/")
    cl = response.context["cl"]
    [spec] = [spec for spec in cl.filter_specs if spec.title == "entity type"]
    assert [choice["display"] for choice in spec.choices(cl)] == ["All", "booking", "item"]
    assert not [q for q in queries if "DISTINCT" in q.upper()], queries
    filtered = admin_client.get("/admin/ops/reconciliationchange/?entity_type__exact=item").context["cl"].result_list
    assert [change.entity_id for change in filtered] == ["12"]

    def found(term):
        response, queries = _page(admin_client, f"/admin/ops/reconciliationchange/?q={term}")
        assert not [q for q in queries if "LIKE" in q.upper()], queries
        assert not [q for q in queries if q.endswith('FROM "ops_reconciliationchange"')], queries  # no full count
        return sorted(change.entity_id for change in response.context["cl"].result_list)

    assert found(str(booking_job.pk)) == ["123", "7"]
    assert found(str(booking_job.pk).upper()) == ["123", "7"]
    assert found("12") == ["12"]  # a whole id: not "123"
    assert found("nothing") == []
