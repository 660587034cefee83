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
    found = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id__in=list(entity_ids))
    return {doc.entity_id: doc for doc in found}


def document_batches(entity_type: str, *, batch_size: int, after: str | None = None) -> Iterator[list[str]]:
    """Every document id of a type (after `after`), in key order, one batch at a time (keyset paging)."""
    last = after
    while True:
        qs = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type)
        if last is not None:
            qs = qs.filter(entity_id__gt=last)
        ids = list(qs.order_by("entity_id").values_list("entity_id", flat=True)[:batch_size])
        if not ids:
            return
        last = ids[-1]
        yield ids


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
