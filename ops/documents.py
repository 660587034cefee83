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
from django.db.models import F
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from .models import Document
from .routers import DOCUMENTS_DB

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


def relational_bodies(entity_type: str, rows) -> dict[str, dict]:
    _, serializer = entity_sources()[entity_type]
    return {str(row.pk): canonical(serializer(row).data) for row in rows}


def relational_body(entity_type: str, entity_id) -> dict | None:
    queryset, _ = entity_sources()[entity_type]
    if not str(entity_id).isdigit():
        return None
    row = queryset().filter(pk=int(entity_id)).first()
    return None if row is None else relational_bodies(entity_type, [row])[str(row.pk)]


def relational_batches(entity_type: str, *, batch_size: int, **filters) -> Iterator[dict[str, dict]]:
    """Every live row's body (optionally only rows matching `filters`), in primary-key order,
    one batch at a time (keyset paging)."""
    queryset, _ = entity_sources()[entity_type]
    last = 0
    while True:
        rows = list(queryset().filter(pk__gt=last, **filters).order_by("pk")[:batch_size])
        if not rows:
            return
        last = rows[-1].pk
        yield relational_bodies(entity_type, rows)


def documents_get(entity_type: str, entity_ids: Iterable[str]) -> dict[str, Document]:
    found = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id__in=list(entity_ids))
    return {doc.entity_id: doc for doc in found}


def document_batches(entity_type: str, *, batch_size: int) -> Iterator[list[str]]:
    """Every document id of a type, in key order, one batch at a time (keyset paging)."""
    last = None
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
    Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id=entity_id).update(
        body=body, version=F("version") + 1, updated_at=now)


def document_delete(entity_type: str, entity_ids: Iterable[str]) -> int:
    ids = list(entity_ids)
    if not ids:
        return 0
    deleted, _ = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type, entity_id__in=ids).delete()
    return deleted


@contextmanager
def document_lock(entity_type: str, entity_id: str):
    """A transaction on the documents DB holding the one writer's lock of this document.

    PostgreSQL: a transaction-scoped advisory lock on the document's key (waits are bounded by
    lock_timeout). SQLite: its transactions are IMMEDIATE (settings), so BEGIN already takes the
    database's single write lock."""
    with transaction.atomic(using=DOCUMENTS_DB):
        connection = connections[DOCUMENTS_DB]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                               [f"document:{entity_type}:{entity_id}"])
        yield


@dataclass(frozen=True)
class Repair:
    action: str  # created | updated | deleted | unchanged
    before: Document | None
    after: dict | None


def document_repair(entity_type: str, entity_id) -> Repair:
    """Make one document match its row, reading both under the document's lock."""
    entity_id = str(entity_id)
    with document_lock(entity_type, entity_id):
        body = relational_body(entity_type, entity_id)
        existing = documents_get(entity_type, [entity_id]).get(entity_id)
        if body is None:
            deleted = existing is not None and document_delete(entity_type, [entity_id])
            return Repair("deleted" if deleted else "unchanged", existing, None)
        if existing is not None and existing.body == body:
            return Repair("unchanged", existing, body)
        document_write(entity_type, entity_id, body, existing)
        return Repair("created" if existing is None else "updated", existing, body)


def document_sync_item_bookings(*, item_id, batch_size: int = 500) -> int:
    """Re-project every booking document of an item (after the item's name changed), in
    batches; returns how many documents were written. Only documents that differ are
    repaired, each under its lock."""
    written = 0
    for bodies in relational_batches("booking", batch_size=batch_size, item_id=item_id):
        existing = documents_get("booking", bodies.keys())
        for key, body in bodies.items():
            if key not in existing or existing[key].body != body:
                written += document_repair("booking", key).action != "unchanged"
    return written


def document_sync(*, entity_type: str, entity_id) -> str:
    """Make one document match its row: 'created', 'updated', 'deleted' or 'unchanged'."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"Unknown entity type {entity_type!r}")
    return document_repair(entity_type, entity_id).action
