"""Document projection through the outbox, and reconciliation of tampered/missing/orphan documents."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import JSONField, Value
from django.utils import timezone

from catalog.tests.factories import make_item
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import Document, Job, JobStatus, OutboxEvent, ReconciliationChange
from ops.reconciliation import reconciliation_run
from reservations.models import Booking
from reservations.services import booking_create

pytestmark = pytest.mark.django_db(databases=["default", "documents"])


def doc(entity_type, entity_id):
    return Document.objects.using("documents").filter(entity_type=entity_type, entity_id=str(entity_id)).first()


def tamper(entity_type, entity_id, **fields):
    document = doc(entity_type, entity_id)
    Document.objects.using("documents").filter(entity_type=entity_type, entity_id=str(entity_id)).update(
        body={**document.body, **fields})


def orphan(entity_type, entity_id):
    Document.objects.using("documents").create(entity_type=entity_type, entity_id=str(entity_id),
                                               body={"id": entity_id}, version=1, updated_at=timezone.now())


@pytest.fixture
def api_body(client_for, make_user):
    """api_body(entity_type, id) -> the row as the booking API shows it to an ADMIN (contract §7:
    a document's body is its BookableItemResponse / BookingResponse), None when the API has no
    such row: an oracle independent of the projection code under test."""
    admin = client_for(make_user(roles=["ADMIN"], username="api_oracle"))

    def body(entity_type, entity_id):
        if entity_type == "item":
            response = admin.get(f"/api/v1/items/{entity_id}")
            return response.json() if response.status_code == 200 else None
        booking = Booking.objects.filter(pk=entity_id).first()
        if booking is None:
            return None
        listed = admin.get(f"/api/v1/bookings/items/{booking.item_id}").json()
        return next(b for b in listed if b["id"] == booking.pk)

    return body


@pytest.fixture
def op_client(client_for, make_user):
    return client_for(make_user(roles=["IT_OPERATOR"]))


@pytest.fixture
def synced_item(organizer):
    item = make_item(organizer, name="Workshop", capacity=10, tiers=[("Early", "49.99", 4), ("Late", "59.99", 6)])
    outbox_dispatch_until_empty()
    return item


def test_changes_are_projected_through_the_outbox(synced_item, make_user, api_client, api_body):
    document = doc("item", synced_item.pk)
    assert document.body == api_client.get(f"/api/v1/items/{synced_item.pk}").json()
    assert document.body["availableCapacity"] == 10 and document.version == 1

    booking = booking_create(user=make_user(), item_id=synced_item.pk)
    outbox_dispatch_until_empty()

    assert doc("item", synced_item.pk).body["availableCapacity"] == 9
    assert doc("item", synced_item.pk).version == 2
    assert doc("booking", booking.pk).body == api_body("booking", booking.pk)
    assert doc("booking", booking.pk).body["pricePaid"] == 49.99


def test_a_batch_projects_each_document_once_and_ends_on_the_latest_state(synced_item, make_user, monkeypatch, api_body):
    """One locked repair per entity type for the whole batch, each document in it once (a hot
    item's document is not re-projected once per booking)."""
    from ops import documents

    calls = []
    real = documents.document_repair_many
    monkeypatch.setattr(documents, "document_repair_many",
                        lambda entity_type, ids: calls.append((entity_type, sorted(map(str, ids)))) or real(entity_type, ids))
    bookings = [booking_create(user=make_user(), item_id=synced_item.pk) for _ in range(3)]

    outbox_dispatch_until_empty()

    assert sorted(calls) == [("booking", sorted(str(b.pk) for b in bookings)), ("item", [str(synced_item.pk)])]
    assert doc("item", synced_item.pk).body["availableCapacity"] == 7
    assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
    for booking in bookings:
        assert doc("booking", booking.pk).body == api_body("booking", booking.pk)


def test_when_the_batched_sync_fails_each_event_syncs_on_its_own(synced_item, make_user, monkeypatch, api_body):
    from ops import documents

    real, failed = documents.document_repair_many, []

    def fails_for_many(entity_type, ids):
        if len(ids) > 1:
            failed.append(entity_type)
            raise RuntimeError("documents DB hiccup")
        return real(entity_type, ids)

    monkeypatch.setattr(documents, "document_repair_many", fails_for_many)
    bookings = [booking_create(user=make_user(), item_id=synced_item.pk) for _ in range(2)]

    outbox_dispatch_until_empty()

    assert failed == ["booking"]
    assert not OutboxEvent.objects.exclude(status="SENT").exists()
    for booking in bookings:
        assert doc("booking", booking.pk).body == api_body("booking", booking.pk)


def test_tampered_document_is_repaired_with_changes_log(synced_item, op_client):
    good = dict(doc("item", synced_item.pk).body)
    tamper("item", synced_item.pk, capacity=999, name="Hacked", startTime="2001-01-01T00:00:00")

    job = op_client.post("/reconciliation", {"entityType": "item", "entityId": str(synced_item.pk)},
                         format="json").json()
    assert job["status"] == "queued" and job["type"] == "RECONCILIATION"
    done = op_client.put(f"/jobs/{job['jobId']}/execute").json()

    assert done["status"] == "completed"
    assert done["reconciliation"]["changesLog"] == "Updated 3 fields: capacity, name, startTime"
    assert {c["field"]: (c["documentValue"], c["relationalValue"]) for c in done["reconciliation"]["changes"]} == {
        "capacity": (999, 10), "name": ("Hacked", "Workshop"), "startTime": ("2001-01-01T00:00:00", good["startTime"])}
    repaired = doc("item", synced_item.pk)
    assert repaired.body == good and repaired.version == 2


def test_deleted_document_is_recreated_and_orphan_deleted(synced_item, op_client, api_body):
    Document.objects.using("documents").filter(entity_type="item").delete()
    orphan("item", 424242)

    created = op_client.put(f"/jobs/{op_client.post('/reconciliation', {'entityType': 'item', 'entityId': str(synced_item.pk)}, format='json').json()['jobId']}/execute").json()
    deleted = op_client.put(f"/jobs/{op_client.post('/reconciliation', {'entityType': 'item', 'entityId': '424242'}, format='json').json()['jobId']}/execute").json()

    assert created["reconciliation"]["changesLog"] == "Created missing document"
    assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
    assert deleted["reconciliation"]["changesLog"] == "Deleted orphan document"
    assert doc("item", 424242) is None


def test_launch_is_accepted_as_item_and_echoed(synced_item, op_client, api_body):
    tamper("item", synced_item.pk, location="Mars")
    job = op_client.post("/reconciliation", {"entityType": "launch", "entityId": str(synced_item.pk)},
                         format="json").json()
    done = op_client.put(f"/jobs/{job['jobId']}/execute").json()
    assert done["reconciliation"]["entityType"] == "launch"
    assert done["reconciliation"]["changesLog"] == "Updated 1 field: location"
    [change] = op_client.get(f"/jobs/{job['jobId']}").json()["reconciliation"]["changes"]
    assert (change["entityType"], change["field"]) == ("launch", "location")  # echoed in the changes too
    assert doc("item", synced_item.pk).body["location"] == api_body("item", synced_item.pk)["location"]


@pytest.mark.parametrize("path, body", [
    ("/reconciliation", {"entityType": "item", "entityId": ""}),
    ("/jobs", {"type": "RECONCILIATION", "reconciliation": {"entityType": "item", "entityId": ""}}),
    ("/jobs", {"type": "RECONCILIATION", "reconciliation": {"entityType": "item", "entityId": 2.87e289}}),
    ("/reconciliation", {"entityType": "item", "entityId": True}),
    ("/reconciliation", {"entityType": "item", "entityId": -201}),
    ("/reconciliation/events", {"entityType": "item", "entityId": 1.5, "action": "update"}),
])
def test_a_blank_or_non_id_entity_id_is_refused_not_read_as_the_whole_type(op_client, path, body):
    response = op_client.post(path, body, format="json")
    assert response.status_code == 400 and any(k.endswith("entityId") for k in response.json()["fields"])
    assert not Job.objects.exists()


def test_an_integer_entity_id_is_an_id_like_its_string(synced_item, op_client):
    job = op_client.post("/reconciliation", {"entityType": "item", "entityId": synced_item.pk}, format="json").json()
    assert Job.objects.get(pk=job["jobId"]).params["entityId"] == str(synced_item.pk)


def test_event_triggers_reconciliation_without_execute(synced_item, op_client):
    tamper("item", synced_item.pk, capacity=1)
    response = op_client.post("/reconciliation/events", {"entityType": "item", "entityId": str(synced_item.pk),
                                                          "action": "update"}, format="json")
    assert response.status_code == 202
    event = response.json()
    assert event["status"] == "queued" and set(event) == {"eventId", "status"}

    outbox_dispatch_until_empty()  # what the worker does on its own, soon after

    job = Job.objects.get(pk=event["eventId"])
    assert job.status == JobStatus.COMPLETED and job.result["changesLog"] == "Updated 1 field: capacity"
    assert doc("item", synced_item.pk).body["capacity"] == 10
    listed = op_client.get("/reconciliation/jobs?status=completed").json()
    assert listed["total"] == 1 and listed["jobs"][0]["jobId"] == event["eventId"]


def test_whole_type_run_in_small_batches_repairs_everything_and_second_run_is_noop(organizer, api_body):
    items = [make_item(organizer, name=f"Item {n}", capacity=5) for n in range(7)]
    outbox_dispatch_until_empty()
    tamper("item", items[0].pk, name="Wrong")
    tamper("item", items[3].pk, capacity=50, description="x")
    Document.objects.using("documents").filter(entity_type="item", entity_id=str(items[5].pk)).delete()
    orphan("item", 999999)
    orphan("item", "not-a-number")

    job = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})
    first = reconciliation_run(job=job, entity_type="item", batch_size=2)

    assert first["summary"] == {"checked": 9, "created": 1, "updated": 2, "deleted": 2, "unchanged": 4}
    assert first["changesLog"].startswith("Checked 9 items: 1 created, 2 updated, 2 deleted, 4 unchanged")
    assert ReconciliationChange.objects.filter(job=job, action="updated").count() == 3
    for item in items:
        assert doc("item", item.pk).body == api_body("item", item.pk)
    assert Document.objects.using("documents").filter(entity_type="item").count() == 7

    second = reconciliation_run(job=None, entity_type="item", batch_size=2)
    assert second["summary"] == {"checked": 7, "created": 0, "updated": 0, "deleted": 0, "unchanged": 7}


def test_booking_documents_reconcile_too(synced_item, make_user):
    booking = booking_create(user=make_user(), item_id=synced_item.pk)
    outbox_dispatch_until_empty()
    tamper("booking", booking.pk, status="CANCELLED", pricePaid=0)
    result = reconciliation_run(job=None, entity_type="booking", entity_id=booking.pk)
    assert result["changesLog"] == "Updated 2 fields: pricePaid, status"
    assert doc("booking", booking.pk).body["status"] == "CONFIRMED"


def test_reconcile_command_prints_summary_and_records_a_job(synced_item, capsys):
    tamper("item", synced_item.pk, name="Wrong")
    call_command("reconcile", "--entity-type", "item", "--no-progress")
    out = capsys.readouterr().out
    assert "checked" in out and "Checked 1 item: 0 created, 1 updated, 0 deleted, 0 unchanged" in out
    job = Job.objects.get(params__trigger="cli")
    assert job.status == JobStatus.COMPLETED and job.changes.count() == 1


@pytest.mark.parametrize("args", [(), ("--entity-id", "SELF")])
def test_field_names_the_customer_side_wrote_reach_the_changes_log_as_escaped_one_line_text(
        synced_item, op_client, capsys, args):
    """A document's keys are any text: the changesLog names them, and `manage.py reconcile` prints
    it on the operator's terminal, where an escape sequence retitles or clears it (and a line
    break or a bidirectional control forges what the log says). The change itself keeps the key."""
    hostile = "\x1b]0;owned\x07\x1b[2J\u202eeman\nforged line"
    tamper("item", synced_item.pk, **{hostile: 1, "k" * 5000: 2})

    call_command("reconcile", "--entity-type", "item", "--no-progress",
                 *(str(synced_item.pk) if a == "SELF" else a for a in args))

    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "forged line" not in out.splitlines()[-1:]
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202eeman\\x0aforged line" in out
    assert "k" * 101 not in out and "(5000 characters)" in out
    job = Job.objects.get(params__trigger="cli")
    assert set(job.changes.values_list("field", flat=True)) == {hostile, "k" * 5000}


@pytest.mark.parametrize("args", [(), ("--entity-id", "SELF")])
def test_reconcile_progress_bar_ends_full(synced_item, organizer, args):
    import io
    import re

    for n in range(4):
        make_item(organizer, name=f"More {n}")
    outbox_dispatch_until_empty()
    err = io.StringIO()
    args = tuple(str(synced_item.pk) if a == "SELF" else a for a in args)
    call_command("reconcile", "--entity-type", "item", "--batch-size", "2", *args, stdout=io.StringIO(), stderr=err)
    done, total = map(int, re.findall(r"(\d+)/(\d+)", err.getvalue())[-1])
    assert done == total == (1 if args else 5 + 3)  # 5 rows, then 5 documents in 3 batches


def test_renaming_an_item_reprojects_its_booking_documents(synced_item, make_user):
    from catalog.services import item_update

    bookings = [booking_create(user=make_user(), item_id=synced_item.pk) for _ in range(3)]
    outbox_dispatch_until_empty()
    item_update(actor=synced_item.organizer, item_id=synced_item.pk, name="Renamed workshop")
    outbox_dispatch_until_empty()
    for booking in bookings:
        assert doc("booking", booking.pk).body["itemName"] == "Renamed workshop"
    assert doc("item", synced_item.pk).body["name"] == "Renamed workshop"


def test_moving_an_item_reprojects_its_booking_documents(synced_item, make_user, api_body):
    """A BookingResponse carries its item's startTime/endTime (following it when it moves), so
    its document must follow too, not wait for the nightly reconciliation."""
    from catalog.services import item_update

    booking = booking_create(user=make_user(), item_id=synced_item.pk)
    outbox_dispatch_until_empty()
    item_update(actor=synced_item.organizer, item_id=synced_item.pk,
                start_time=synced_item.start_time + timedelta(days=1), end_time=synced_item.end_time + timedelta(days=1))
    outbox_dispatch_until_empty()
    assert doc("booking", booking.pk).body == api_body("booking", booking.pk)
    assert reconciliation_run(job=None, entity_type="booking")["summary"]["updated"] == 0


def test_renaming_a_user_reprojects_their_bookings_and_items(synced_item, make_user, client_for):
    booker = make_user(username="booker")
    booking = booking_create(user=booker, item_id=synced_item.pk)
    outbox_dispatch_until_empty()
    admin = client_for(make_user(roles=["ADMIN"]))
    for user, name in ((booker, "booker_renamed"), (synced_item.organizer, "organizer_renamed")):
        assert admin.put(f"/api/v1/user/{user.pk}", {"username": name}, format="json").status_code == 200
    outbox_dispatch_until_empty()

    assert doc("booking", booking.pk).body["username"] == "booker_renamed"
    assert doc("item", synced_item.pk).body["organizerUsername"] == "organizer_renamed"
    assert reconciliation_run(job=None, entity_type="item")["summary"]["updated"] == 0
    assert reconciliation_run(job=None, entity_type="booking")["summary"]["updated"] == 0


@pytest.mark.parametrize("entity_id", ["²", "١٢", "12a", "-1", "9" * 30])
def test_document_ids_that_name_no_row_are_orphans_not_errors(synced_item, op_client, entity_id):
    """The customer side writes any text as an id: Unicode digits (which str.isdigit accepts but
    a primary key never has) must not break the whole type's reconciliation."""
    orphan("item", entity_id)
    result = reconciliation_run(job=None, entity_type="item")
    assert result["summary"] == {"checked": 2, "created": 0, "updated": 0, "deleted": 1, "unchanged": 1}
    assert doc("item", entity_id) is None

    orphan("item", entity_id)
    job = op_client.post("/reconciliation", {"entityType": "item", "entityId": entity_id}, format="json").json()
    done = op_client.put(f"/jobs/{job['jobId']}/execute").json()
    assert done["status"] == "completed" and done["reconciliation"]["changesLog"] == "Deleted orphan document"


@pytest.mark.django_db(transaction=True, databases=["default", "documents"])
@pytest.mark.parametrize("slow_writer", ["sync", "reconciliation"])
def test_two_writers_of_one_document_never_leave_the_older_read_behind(organizer, monkeypatch, slow_writer, api_body):
    """A slow writer read the row, then the row changed and a second writer synced it: the
    document must end on the newer state, not on the slow writer's older read. (PostgreSQL:
    SQLite's in-memory test databases fail a second writer at once instead of making it wait.)"""
    import threading

    from django.db import connections

    if connections["documents"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DOCUMENTS_DATABASE_URL)")

    from catalog.models import BookableItem
    from ops import documents, reconciliation
    from ops.documents import document_sync

    item = make_item(organizer, name="Before", capacity=10, tiers=[("Only", "10.00", 10)])
    document_sync(entity_type="item", entity_id=item.pk)
    read, resume, slow = threading.Event(), threading.Event(), []

    def paused(real):
        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            if threading.current_thread() in slow and not read.is_set():
                read.set()
                assert resume.wait(10)
            return result
        return wrapper

    if slow_writer == "sync":
        monkeypatch.setattr(documents, "relational_bodies", paused(documents.relational_bodies))
        work = lambda: document_sync(entity_type="item", entity_id=item.pk)  # noqa: E731
    else:
        tamper("item", item.pk, name="Tampered")  # so the slow reconciliation has a repair to make
        real_batches = reconciliation.relational_batches

        def batches(*args, **kwargs):
            for batch in real_batches(*args, **kwargs):
                yield paused(lambda: batch)()
        monkeypatch.setattr(reconciliation, "relational_batches", batches)
        work = lambda: reconciliation_run(job=None, entity_type="item")  # noqa: E731

    def in_thread(fn):
        def run():
            try:
                fn()
            finally:
                connections.close_all()
        return threading.Thread(target=run)

    slow_thread = in_thread(work)
    slow.append(slow_thread)
    slow_thread.start()
    assert read.wait(10)
    BookableItem.objects.filter(pk=item.pk).update(name="After")  # no outbox: the writers are ours
    fast_thread = in_thread(lambda: document_sync(entity_type="item", entity_id=item.pk))
    fast_thread.start()
    fast_thread.join(0.5)  # it runs to completion now, or waits for the slow writer's lock
    resume.set()
    slow_thread.join(10)
    fast_thread.join(10)

    assert not slow_thread.is_alive() and not fast_thread.is_alive()
    assert doc("item", item.pk).body == api_body("item", item.pk)
    assert doc("item", item.pk).body["name"] == "After"


def test_a_row_deleted_between_the_batch_read_and_the_repair_still_counts_as_checked(synced_item, monkeypatch):
    from ops import reconciliation

    real_batches = reconciliation.relational_batches

    def batches(*args, **kwargs):
        for bodies in real_batches(*args, **kwargs):
            yield {**bodies, "999999": {"id": 999999, "name": "read, then deleted"}}  # no row, no document

    monkeypatch.setattr(reconciliation, "relational_batches", batches)
    result = reconciliation_run(job=None, entity_type="item")

    assert result["summary"] == {"checked": 2, "created": 0, "updated": 0, "deleted": 0, "unchanged": 2}
    assert doc("item", 999999) is None


def test_a_row_that_appears_after_the_orphan_read_keeps_its_document(synced_item, organizer, monkeypatch, api_body):
    """The orphan pass read which ids have live rows; then a row appeared (a hidden item shown
    again) and its document was synced before the deletes: that document must stay, and the
    row counts as checked once."""
    from catalog.models import BookableItem
    from ops import reconciliation
    from ops.documents import document_sync

    returning = make_item(organizer, name="Back soon", capacity=3)
    outbox_dispatch_until_empty()
    BookableItem.objects.filter(pk=returning.pk).update(deleted_at=timezone.now())  # no outbox: document stays
    orphan("item", 999999)
    real_live_ids = reconciliation._live_ids

    def live_ids_then_the_row_appears(entity_type, ids):
        live = real_live_ids(entity_type, ids)
        BookableItem.objects.filter(pk=returning.pk).update(deleted_at=None)
        document_sync(entity_type="item", entity_id=returning.pk)
        return live

    monkeypatch.setattr(reconciliation, "_live_ids", live_ids_then_the_row_appears)
    result = reconciliation_run(job=None, entity_type="item")

    assert doc("item", returning.pk).body == api_body("item", returning.pk)
    assert doc("item", 999999) is None
    assert result["summary"] == {"checked": 3, "created": 0, "updated": 0, "deleted": 1, "unchanged": 2}


@pytest.mark.parametrize("label, count, expected", [
    ("launch", 2, "Checked 2 launches: 0 created, 0 updated, 0 deleted, 2 unchanged"),
    ("launch", 1, "Checked 1 launch: 0 created, 0 updated, 0 deleted, 1 unchanged"),
    ("item", 2, "Checked 2 items: 0 created, 0 updated, 0 deleted, 2 unchanged"),
])
def test_whole_type_changes_log_counts_in_the_label_as_sent(organizer, label, count, expected):
    for n in range(count):
        make_item(organizer, name=f"Item {n}")
    outbox_dispatch_until_empty()
    assert reconciliation_run(job=None, entity_type="item", label=label)["changesLog"] == expected


def test_a_document_inserted_with_only_its_key_and_body_gets_database_defaults(synced_item, api_body):
    """The customer side may INSERT a document naming only entity_type, entity_id and body:
    version and updated_at come from the database, and reconciliation treats it like any other."""
    from django.db import connections

    Document.objects.using("documents").filter(entity_type="item").delete()
    before = timezone.now()
    with connections["documents"].cursor() as cursor:
        cursor.executemany("INSERT INTO documents (entity_type, entity_id, body) VALUES (%s, %s, %s)",
                           [("item", str(synced_item.pk), '{"name": "Typed by hand"}'),
                            ("item", "777777", '{"name": "No such item"}')])
    inserted = doc("item", synced_item.pk)
    assert inserted.version == 1 and inserted.body == {"name": "Typed by hand"}
    assert before - timedelta(seconds=5) <= inserted.updated_at <= timezone.now()

    result = reconciliation_run(job=None, entity_type="item")

    assert result["summary"] == {"checked": 2, "created": 0, "updated": 1, "deleted": 1, "unchanged": 0}
    repaired = doc("item", synced_item.pk)
    assert repaired.body == api_body("item", synced_item.pk) and repaired.version == 2
    assert doc("item", 777777) is None


class TestWhatTheCustomerSideMayWrite:
    """The document DB is written by the customer side too (contract §7): whatever it holds,
    projection and reconciliation repair it exactly and never fail on it."""

    def test_a_value_of_the_wrong_json_type_is_repaired(self, synced_item):
        tamper("item", synced_item.pk, isPrivate=0, capacity=float(synced_item.capacity))  # == in Python
        result = reconciliation_run(job=None, entity_type="item", entity_id=synced_item.pk)
        assert result["changesLog"] == "Updated 2 fields: capacity, isPrivate"
        body = doc("item", synced_item.pk).body
        assert body["isPrivate"] is False and type(body["capacity"]) is int
        assert reconciliation_run(job=None, entity_type="item", entity_id=synced_item.pk)["changesLog"] == "No changes"

    @pytest.mark.parametrize("body", [["a", "list"], "text", None, 7])
    def test_a_body_that_is_not_an_object_is_one_recorded_change(self, synced_item, body, api_body):
        stored = Value(None, JSONField()) if body is None else body  # JSON null, not SQL NULL
        Document.objects.using("documents").filter(entity_type="item", entity_id=str(synced_item.pk)).update(
            body=stored)
        job = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})
        result = reconciliation_run(job=job, entity_type="item", entity_id=synced_item.pk)
        assert result["changesLog"] == "Replaced a document body that was not a JSON object"
        [change] = ReconciliationChange.objects.filter(job=job)
        assert (change.field, change.document_value) == ("", body)
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)

    def test_long_ids_and_keys_are_recorded_in_the_job_changes(self, synced_item):
        """Ids and keys are any text on the customer side: a change naming a 300-character id
        or key is recorded like any other (PostgreSQL refused a varchar(64) here, failing the
        job after the documents were already repaired)."""
        long_id, long_key = "i" * 300, "k" * 300
        orphan("item", long_id)
        tamper("item", synced_item.pk, **{long_key: 1})
        job = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})

        result = reconciliation_run(job=job, entity_type="item")

        assert result["summary"] == {"checked": 2, "created": 0, "updated": 1, "deleted": 1, "unchanged": 0}
        assert set(ReconciliationChange.objects.filter(job=job).values_list("entity_id", "field")) == {
            (long_id, ""), (str(synced_item.pk), long_key)}

    def test_a_version_at_the_columns_limit_starts_again_instead_of_blocking_the_document(self, synced_item):
        Document.objects.using("documents").filter(entity_type="item", entity_id=str(synced_item.pk)).update(
            version=2**31 - 1)
        tamper("item", synced_item.pk, name="Wrong")
        assert reconciliation_run(job=None, entity_type="item", entity_id=synced_item.pk)["changesLog"] == \
            "Updated 1 field: name"
        assert doc("item", synced_item.pk).version == 1

    @pytest.mark.parametrize("raw, field, recorded", [
        # A JSON number Python reads as inf (PostgreSQL's jsonb keeps it as the integer it is)
        ('{"capacity": 1e999}', "capacity", "Infinity"),
        ('{"capacity": -1e999, "name": "Workshop"}', "capacity", "-Infinity"),
        ('{"name": "\\ud800"}', "name", "\ufffd"),  # an unpaired surrogate (SQLite's JSON takes it)
        ('{"name": "a\\u0000b"}', "name", "a\ufffdb"),
        ('{"\\ud800": 1}', "\ufffd", 1),
        ('{"\\u0000": 1}', "\ufffd", 1),
    ])
    @pytest.mark.parametrize("whole_type", [False, True], ids=["one", "whole"])
    def test_values_no_database_or_response_can_hold_are_recorded_in_a_form_they_can(
            self, synced_item, op_client, api_body, raw, field, recorded, whole_type):
        """A change recorded the document's value as read: an infinite number failed the job
        (the repair already done, its record lost), a surrogate failed it or made every later
        GET /jobs/{jobId} a 500; PostgreSQL's jsonb and text refuse all three and NUL too."""
        from django.db import DataError, connections, transaction

        try:
            with transaction.atomic(using="documents"), connections["documents"].cursor() as cursor:
                cursor.execute("UPDATE documents SET body = %s WHERE entity_type = 'item' AND entity_id = %s",
                               [raw, str(synced_item.pk)])
        except DataError:
            pytest.skip("this documents database refuses such JSON itself")
        params = {"entityType": "item"} if whole_type else {"entityType": "item", "entityId": synced_item.pk}
        job = op_client.post("/reconciliation", params, format="json").json()

        done = op_client.put(f"/jobs/{job['jobId']}/execute")
        shown = op_client.get(f"/jobs/{job['jobId']}")

        assert done.status_code == shown.status_code == 200
        assert done.json()["status"] == "completed" and shown.json() == done.json()
        changes = {c["field"]: c["documentValue"] for c in shown.json()["reconciliation"]["changes"]}
        if connections["documents"].vendor == "postgresql" and recorded in ("Infinity", "-Infinity"):
            recorded = (-1 if recorded.startswith("-") else 1) * 10**999
        assert changes[field] == recorded
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
        assert op_client.get("/jobs").status_code == 200

    @pytest.mark.parametrize("deep", [
        '{"a": ' + "[" * 1500 + "]" * 1500 + "}",
        '{"capacity": 1' + "0" * 5000 + "}",
    ], ids=["nested-1500-deep", "integer-of-5001-digits"])
    def test_a_body_python_cannot_read_is_replaced_not_a_failure(
            self, synced_item, organizer, op_client, api_body, deep):
        """SQLite's JSON takes 2,000 levels, PostgreSQL's thousands, and both any number of digits;
        Python's parser stops near 1,000 levels and 4,300 digits: reading such a document failed
        its sync and every reconciliation of its batch."""
        from django.db import connections

        from ops.documents import document_sync

        other = make_item(organizer, name="Other")
        outbox_dispatch_until_empty()
        tamper("item", other.pk, name="Wrong")
        with connections["documents"].cursor() as cursor:
            cursor.execute("UPDATE documents SET body = %s WHERE entity_type = 'item' AND entity_id = %s",
                           [deep, str(synced_item.pk)])
        job = op_client.post("/reconciliation", {"entityType": "item"}, format="json").json()

        done = op_client.put(f"/jobs/{job['jobId']}/execute").json()

        assert done["status"] == "completed"
        assert done["reconciliation"]["summary"] == {"checked": 2, "created": 0, "updated": 2, "deleted": 0,
                                                     "unchanged": 0}
        change = next(c for c in done["reconciliation"]["changes"] if c["entityId"] == str(synced_item.pk))
        assert change["field"] == "" and change["documentValue"] == deep
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
        assert doc("item", other.pk).body == api_body("item", other.pk)
        with connections["documents"].cursor() as cursor:
            cursor.execute("UPDATE documents SET body = %s WHERE entity_type = 'item' AND entity_id = %s",
                           [deep, str(synced_item.pk)])
        assert document_sync(entity_type="item", entity_id=synced_item.pk) == "updated"
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)

    def test_a_huge_value_is_recorded_as_the_start_of_its_json(self, synced_item, op_client, api_body):
        """A value the customer side made huge is not copied whole into the job (and into every
        GET /jobs/{jobId}: 200 MB for a run over five 20 MB documents)."""
        huge = "x" * 2_000_000
        tamper("item", synced_item.pk, description=huge, extra=[huge])
        job = op_client.post("/reconciliation", {"entityType": "item", "entityId": synced_item.pk},
                             format="json").json()

        done = op_client.put(f"/jobs/{job['jobId']}/execute")

        assert done.json()["reconciliation"]["changesLog"] == "Updated 2 fields: description, extra"
        assert len(done.content) < 10_000
        changes = {c["field"]: c["documentValue"] for c in done.json()["reconciliation"]["changes"]}
        assert changes["description"] == f'"{"x" * 999}… (2000002 characters of JSON)'
        assert changes["extra"].startswith('["xxx') and changes["extra"].endswith("(2000004 characters of JSON)")
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)

    def test_a_document_records_at_most_two_hundred_changed_fields(self, synced_item, organizer):
        """A document may hold any number of keys: recording each cost a row and time that grew
        with them (200,000 keys: 200,000 rows, 11 s inside one batch, which cannot pause)."""
        other = make_item(organizer, name="Other")
        outbox_dispatch_until_empty()
        tamper("item", synced_item.pk, **{f"extra{n:04}": n for n in range(1000)})
        tamper("item", other.pk, name="Wrong")
        job = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})

        result = reconciliation_run(job=job, entity_type="item")

        assert result["summary"]["updated"] == 2
        assert ReconciliationChange.objects.filter(job=job, entity_id=str(synced_item.pk)).count() == 200
        assert list(ReconciliationChange.objects.filter(job=job, entity_id=str(other.pk)).values_list(
            "field", "document_value")) == [("name", "Wrong")]
        single = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})
        tamper("item", synced_item.pk, **{f"extra{n:04}": n for n in range(1000)})
        log = reconciliation_run(job=single, entity_type="item", entity_id=synced_item.pk)["changesLog"]
        assert log.startswith("Updated 1000 fields: extra0000, extra0001") and log.endswith("and 980 more")
        assert single.changes.count() == 200

    def test_the_changes_log_names_at_most_twenty_fields(self, synced_item, organizer):
        tamper("item", synced_item.pk, **{f"extra{n:03}": n for n in range(300)})
        single = reconciliation_run(job=None, entity_type="item", entity_id=synced_item.pk)["changesLog"]
        assert single.startswith("Updated 300 fields: extra000, extra001") and single.endswith("and 280 more")
        tamper("item", synced_item.pk, **{f"other{n:03}": n for n in range(300)})
        bulk = reconciliation_run(job=None, entity_type="item")["changesLog"]
        assert bulk.endswith("and 180 more (at least)") and len(bulk) < 1000


@pytest.fixture
def sqlite_documents():
    """A raw statement on the documents database, which must be SQLite: it keeps whatever bytes and
    storage class the customer side writes into a column (PostgreSQL refuses what is not UTF-8 text)."""
    from django.db import connections

    if connections["documents"].vendor != "sqlite":
        pytest.skip("PostgreSQL refuses such values itself")

    def execute(sql, params=()):
        with connections["documents"].cursor() as cursor:
            cursor.execute(sql, params)

    return execute


class TestWhatSQLiteKeepsThatIsNotText:
    """The embedded mode's documents database is SQLite, which stores any bytes in a TEXT column:
    a BLOB, or text that is not UTF-8. Python cannot read the latter as text, and Django binds a
    BLOB id back as another value ("b'1'")."""

    @pytest.mark.timeout(60)
    def test_ids_that_are_not_utf8_text_are_orphans_deleted_once(self, synced_item, sqlite_documents, api_body):
        """A BLOB id kept the orphan pass on the same batch for ever (its keyset never moved past
        it); an id that is not UTF-8 failed every whole-type run."""
        key = str(synced_item.pk).encode()
        sqlite_documents("INSERT INTO documents (entity_type, entity_id, body) VALUES "
                         "('item', %s, '{}'), ('item', %s, '{}'), ('item', CAST(%s AS TEXT), '{}'), "
                         "('item', 'zz', '{}')", [key, b"99", b"\xffbad"])
        job = Job.objects.create(type="RECONCILIATION", params={"entityType": "item"})

        result = reconciliation_run(job=job, entity_type="item", batch_size=1)

        assert result["summary"] == {"checked": 5, "created": 0, "updated": 0, "deleted": 4, "unchanged": 1}
        assert set(ReconciliationChange.objects.filter(job=job).values_list("entity_id", "action")) == {
            (f"x'{key.hex()}'", "deleted"), ("x'3939'", "deleted"), ("\ufffdbad", "deleted"), ("zz", "deleted")}
        assert list(Document.objects.using("documents").values_list("entity_id", flat=True)) == [str(synced_item.pk)]
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
        assert reconciliation_run(job=None, entity_type="item")["summary"]["unchanged"] == 1

    @pytest.mark.timeout(60)
    def test_a_run_in_slices_goes_past_ids_that_are_not_text(self, synced_item, sqlite_documents):
        """A slice that ends on such ids (gone by then) hands the next one the last text id."""
        sqlite_documents("INSERT INTO documents (entity_type, entity_id, body) VALUES ('item', X'31', '{}'), "
                         "('item', CAST(X'FF' AS TEXT), '{}'), ('item', 'zz', '[]'), ('item', '', '{}')")
        progress = None
        for _ in range(20):
            result = reconciliation_run(job=None, entity_type="item", batch_size=1, deadline=0, resume=progress)
            if "cursor" not in result:
                break
            progress = result
        assert result["summary"] == {"checked": 5, "created": 0, "updated": 0, "deleted": 4, "unchanged": 1}
        assert list(Document.objects.using("documents").values_list("entity_id", flat=True)) == [str(synced_item.pk)]

    @pytest.mark.parametrize("stored", ["CAST(%s AS TEXT)", "CAST(%s AS BLOB)"], ids=["text", "blob"])
    @pytest.mark.parametrize("how", ["one", "whole", "sync"])
    def test_a_body_that_is_not_utf8_is_replaced(self, synced_item, sqlite_documents, api_body, stored, how):
        """Reading such a body failed every read of the document: its syncs, its reconciliation,
        every whole-type run."""
        from ops.documents import document_sync

        sqlite_documents(f"UPDATE documents SET body = {stored} WHERE entity_id = %s",
                         [b'{"name": "\xff"}', str(synced_item.pk)])
        if how == "sync":
            assert document_sync(entity_type="item", entity_id=synced_item.pk) == "updated"
        else:
            kwargs = {"entity_id": synced_item.pk} if how == "one" else {}
            result = reconciliation_run(job=None, entity_type="item", **kwargs)
            assert result["summary"]["updated"] == 1
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)
        assert reconciliation_run(job=None, entity_type="item")["summary"]["updated"] == 0

    @pytest.mark.parametrize("updated_at", ["'2024-13-45 10:00:00'", "'yesterday'", "12345", "X'00'"])
    def test_an_updated_at_that_is_not_a_time_does_not_block_the_document(
            self, synced_item, sqlite_documents, api_body, updated_at):
        sqlite_documents(f"UPDATE documents SET updated_at = {updated_at}, version = 'v', "
                         "body = json_set(body, '$.name', 'Wrong') WHERE entity_id = %s", [str(synced_item.pk)])
        assert reconciliation_run(job=None, entity_type="item")["summary"]["updated"] == 1
        assert reconciliation_run(job=None, entity_type="item", entity_id=synced_item.pk)["changesLog"] == \
            "No changes"
        assert doc("item", synced_item.pk).body == api_body("item", synced_item.pk)


def test_a_time_zone_change_is_a_real_difference_repaired_once(organizer, make_user, settings, api_body):
    """A document is the booking API's JSON, whose times are local in TIME_ZONE without offset:
    after TIME_ZONE changes every document's times differ from what the API now writes, so the
    full reconciliation OPERATIONS.md asks for after such a restart rewrites exactly those fields
    (the same instants in the new zone), and the next run finds nothing."""
    settings.TIME_ZONE = "UTC"
    item = make_item(organizer, name="Walk", capacity=5)
    booking = booking_create(user=make_user(), item_id=item.pk)
    outbox_dispatch_until_empty()
    before = doc("item", item.pk).body

    settings.TIME_ZONE = "Asia/Kathmandu"
    result = reconciliation_run(job=None, entity_type="item", entity_id=item.pk)
    assert result["changesLog"] == "Updated 4 fields: createdAt, endTime, startTime, updatedAt"
    assert doc("item", item.pk).body == api_body("item", item.pk)
    assert (before["startTime"], doc("item", item.pk).body["startTime"]) == ("2031-09-15T10:00:00", "2031-09-15T15:45:00")
    assert reconciliation_run(job=None, entity_type="booking", entity_id=booking.pk)["changesLog"] == (
        "Updated 3 fields: bookingDate, endTime, startTime")
    for entity_type in ("item", "booking"):
        assert reconciliation_run(job=None, entity_type=entity_type)["summary"]["updated"] == 0
