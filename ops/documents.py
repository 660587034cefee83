"""The customer document DB: one JSON document per live item and per booking.

An item's body is its BookableItemResponse JSON, a booking's its BookingResponse JSON —
exactly what the booking API returns, produced by the same serializers. The relational DB is
the source of truth; `document_sync` (run through the outbox after every change) and
reconciliation bring documents to match it.

Every write of a document that follows a read of its row happens under `document_lock`, and
the row is read again under it: two workers syncing the same entity at once (a nudge and the
beat sweep, or a sync and a reconciliation) cannot leave the older of their two reads behind.
"""

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import IntegrityError, connections, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from .models import Document
from .outbox import ITEM_BOOKINGS, ORGANIZER_ITEMS, USER_BOOKINGS
from .routers import DOCUMENTS_DB

MAX_VERSION = 2**31 - 1  # `version` is a 4-byte integer column (a public schema: contract §7)
ENTITY_TYPES = ("item", "booking")


def entity_sources():
    """(queryset, serializer) per entity type: the booking API's own reads and shapes."""
    from catalog.api.serializers import ItemResponseSerializer
    from catalog.selectors import item_queryset
    from reservations.api.serializers import BookingResponseSerializer
    from reservations.selectors import booking_queryset

    return {
        "item": (item_queryset, ItemResponseSerializer),
        "booking": (booking_queryset, BookingResponseSerializer),
    }


def canonical(data) -> dict:
    """The body exactly as stored and compared: plain JSON types (decimals as numbers)."""
    return json.loads(JSONRenderer().render(data))


def same_json(a, b) -> bool:
    """Equal as JSON documents, types included: `0` is not `false` and `10.0` is not `10` (Python's
    `==` says they are, and a document holding the wrong type would never be repaired)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(value, b[key]) for key, value in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_json, a, b))
    return a == b


def relational_bodies(entity_type: str, rows) -> dict[str, dict]:
    _, serializer = entity_sources()[entity_type]
    return {str(row.pk): canonical(serializer(row).data) for row in rows}


def numeric_ids(entity_ids: Iterable[str]) -> list[int]:
    """The ids that can name a row (document ids are any text the customer side wrote)."""
    return [int(i) for i in entity_ids if i.isascii() and i.isdigit() and len(i) < 19]


def relational_bodies_of(entity_type: str, entity_ids: Iterable[str]) -> dict[str, dict]:
    """The bodies of the live rows these (document) ids name, in one query; others are absent."""
    queryset, _ = entity_sources()[entity_type]
    return relational_bodies(entity_type, queryset().filter(pk__in=numeric_ids(entity_ids)))


def relational_body(entity_type: str, entity_id) -> dict | None:
    return relational_bodies_of(entity_type, [str(entity_id)]).get(str(entity_id))


def relational_batches(entity_type: str, *, batch_size: int, after: int = 0, **filters) -> Iterator[dict[str, dict]]:
    """Every live row's body (optionally only rows matching `filters`) with a primary key above
    `after`, in primary-key order, one batch at a time (keyset paging)."""
    queryset, _ = entity_sources()[entity_type]
    last = after
    while True:
        rows = list(queryset().filter(pk__gt=last, **filters).order_by("pk")[:batch_size])
        if not rows:
            return
        last = rows[-1].pk
        yield relational_bodies(entity_type, rows)


def documents_get(entity_type: str, entity_ids: Iterable[str]) -> dict[str, Document]:
    # (keys and bodies only: nothing reads the rest, which SQLite keeps as the customer side
    # wrote it — an updated_at of "2024-13-45 10:00" failed every read of the document)
    found = Document.objects.using(DOCUMENTS_DB).filter(
        entity_type=entity_type, entity_id__in=list(entity_ids)).defer("version", "updated_at")
    return {doc.entity_id: doc for doc in found}


@dataclass(frozen=True)
class UnreadableId:
    """A document id SQLite holds that is not UTF-8 text (a BLOB, or bytes that are not UTF-8):
    it names no row, and Python can neither read it as text nor bind it back as one."""

    raw: bytes
    storage: str  # SQLite's typeof(): "text" or "blob"

    def __str__(self) -> str:
        """As a change records it: a BLOB as its SQL literal (x'31', not the id 1), text with U+FFFD."""
        return f"x'{self.raw.hex()}'" if self.storage == "blob" else self.raw.decode("utf-8", "replace")

    def sql(self) -> str:
        """The SQL of this exact value, with `raw` as its parameter."""
        return "%s" if self.storage == "blob" else "CAST(%s AS TEXT)"


@dataclass
class DocumentBatch:
    ids: list[str]
    unreadable: list[UnreadableId]


def document_batches(entity_type: str, *, batch_size: int, after: str | None = None) -> Iterator[DocumentBatch]:
    """Every document id of a type (after `after`), in key order, one batch at a time (keyset paging)."""
    if connections[DOCUMENTS_DB].vendor == "sqlite":
        yield from _sqlite_document_batches(entity_type, batch_size=batch_size, after=after)
        return
    last = after
    while True:
        qs = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type)
        if last is not None:
            qs = qs.filter(entity_id__gt=last)
        ids = list(qs.order_by("entity_id").values_list("entity_id", flat=True)[:batch_size])
        if not ids:
            return
        last = ids[-1]
        yield DocumentBatch(ids, [])


def _sqlite_document_batches(entity_type: str, *, batch_size: int, after: str | None) -> Iterator[DocumentBatch]:
    """document_batches on SQLite, whose TEXT column keeps what the customer side stores: each id
    is read as its bytes, and the keyset compares with the exact value last read, in the key's
    own order (text by its bytes, then BLOBs by theirs). Read as text, an id that is not UTF-8
    failed the run; a BLOB id, bound back by Django as the text "b'…'", kept the pass on the same
    batch for ever. Such ids are returned apart (`unreadable`)."""
    last = None if after is None else UnreadableId(after.encode("utf-8", "surrogatepass"), "text")
    while True:
        where, params = "", [entity_type]
        if last is not None:
            where, params = f" AND entity_id > {last.sql()}", [entity_type, last.raw]
        with connections[DOCUMENTS_DB].cursor() as cursor:
            cursor.execute("SELECT CAST(entity_id AS BLOB), typeof(entity_id) FROM documents"
                           f" WHERE entity_type = %s{where} ORDER BY entity_id LIMIT %s", [*params, batch_size])
            rows = [UnreadableId(bytes(raw), storage) for raw, storage in cursor.fetchall()]
        if not rows:
            return
        last = rows[-1]
        batch = DocumentBatch([], [])
        for row in rows:
            try:
                if row.storage != "text":
                    raise UnicodeDecodeError("utf-8", row.raw, 0, 0, "not text")
                batch.ids.append(row.raw.decode("utf-8"))
            except UnicodeDecodeError:
                batch.unreadable.append(row)
        yield batch


def document_write(entity_type: str, entity_id: str, body: dict, existing: Document | None) -> None:
    """Create or overwrite one document, bumping its version."""
    now = timezone.now()
    if existing is None:
        try:
            with transaction.atomic(using=DOCUMENTS_DB):
                Document.objects.using(DOCUMENTS_DB).create(
                    entity_type=entity_type, entity_id=entity_id, body=body, version=1, updated_at=now)
            return
        except IntegrityError:
            pass  # created concurrently (by us or the customer side): overwrite it below
    # The customer side may write any version; one at the column's limit starts again from 1
    # rather than failing every write of this document (and its batch) on integer overflow.
    Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id=entity_id).update(
        body=body, updated_at=now,
        version=Case(When(version__gte=MAX_VERSION, then=Value(1)), default=F("version") + 1))


def document_delete(entity_type: str, entity_ids: Iterable[str]) -> int:
    ids = list(entity_ids)
    if not ids:
        return 0
    deleted, _ = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id__in=ids).delete()
    return deleted


@contextmanager
def document_lock(entity_type: str, entity_ids: Iterable[str]):
    """A transaction on the documents DB holding the one writer's lock of these documents.

    PostgreSQL: transaction-scoped advisory locks on the documents' keys, taken in the order of
    their lock values so two writers of overlapping sets cannot deadlock (waits are bounded by
    lock_timeout). SQLite: its transactions are IMMEDIATE (settings), so BEGIN already takes the
    database's single write lock."""
    with transaction.atomic(using=DOCUMENTS_DB):
        connection = connections[DOCUMENTS_DB]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(key) FROM (SELECT DISTINCT hashtextextended(%s || id, 0) AS key"
                    " FROM unnest(%s::text[]) AS id ORDER BY key) AS keys",
                    [f"document:{entity_type}:", list(entity_ids)])
        yield


@dataclass(frozen=True)
class Repair:
    action: str  # created | updated | deleted | unchanged
    before: Document | None
    after: dict | None


def document_repair_many(entity_type: str, entity_ids: Iterable) -> dict[str, Repair]:
    """Make these documents match their rows, reading both sides under the documents' locks
    (one statement per side for the whole set)."""
    ids = sorted({str(entity_id) for entity_id in entity_ids})
    if not ids:
        return {}
    with document_lock(entity_type, ids):
        bodies = relational_bodies_of(entity_type, ids)
        existing = documents_get(entity_type, ids)
        orphans = [key for key in ids if key not in bodies and key in existing]
        document_delete(entity_type, orphans)  # one statement for all of them (a whole-type run's orphans)
        repairs = {}
        for key in ids:
            body, document = bodies.get(key), existing.get(key)
            if body is None:
                repairs[key] = Repair("deleted" if document is not None else "unchanged", document, None)
            elif document is not None and same_json(document.body, body):
                repairs[key] = Repair("unchanged", document, body)
            else:
                document_write(entity_type, key, body, document)
                repairs[key] = Repair("created" if document is None else "updated", document, body)
        return repairs


def documents_delete_unreadable(entity_type: str, ids: list[UnreadableId]) -> dict[UnreadableId, Repair]:
    """Delete documents whose ids are not text: they name no row (orphans). What was deleted,
    as repairs. No lock: no writer of the system ever writes such an id."""
    body = Document._meta.get_field("body")
    connection = connections[DOCUMENTS_DB]
    repairs = {}
    with transaction.atomic(using=DOCUMENTS_DB), connection.cursor() as cursor:
        for entity_id in ids:
            where, params = f"WHERE entity_type = %s AND entity_id = {entity_id.sql()}", [entity_type, entity_id.raw]
            cursor.execute(f"SELECT CAST(body AS BLOB) FROM documents {where}", params)
            found = cursor.fetchone()
            if found is not None:
                cursor.execute(f"DELETE FROM documents {where}", params)
                before = Document(entity_type=entity_type, entity_id=str(entity_id),
                                  body=body.from_db_value(found[0], None, connection))
                repairs[entity_id] = Repair("deleted", before, None)
    return repairs


def differing(entity_type: str, bodies: dict[str, dict]) -> list[str]:
    """The ids among `bodies` (rows read without locks) whose document is missing or differs."""
    existing = documents_get(entity_type, bodies.keys())
    return [key for key, body in bodies.items() if key not in existing or not same_json(existing[key].body, body)]


# DOCUMENT_SYNC pseudo entity types → (the documents' entity type, the row field naming the owner).
RELATED_DOCUMENTS = {
    ITEM_BOOKINGS: ("booking", "item_id"),
    USER_BOOKINGS: ("booking", "user_id"),
    ORGANIZER_ITEMS: ("item", "organizer_id"),
}


def document_sync_related(*, related: str, owner_id, batch_size: int = 500) -> int:
    """Re-project every document related to one row (an item's bookings after its name changed,
    a user's bookings and items after a rename), in batches; returns how many documents were
    written. The documents that differ are repaired together, per batch, under their locks."""
    entity_type, owner_field = RELATED_DOCUMENTS[related]
    written = 0
    for bodies in relational_batches(entity_type, batch_size=batch_size, **{owner_field: owner_id}):
        repairs = document_repair_many(entity_type, differing(entity_type, bodies))
        written += sum(repair.action != "unchanged" for repair in repairs.values())
    return written


def document_sync(*, entity_type: str, entity_id) -> str:
    """Make one document match its row: 'created', 'updated', 'deleted' or 'unchanged'."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"Unknown entity type {entity_type!r}")
    return document_repair_many(entity_type, [entity_id])[str(entity_id)].action
