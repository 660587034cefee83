"""The customer document DB: one JSON document per live item and per booking.

An item's body is its BookableItemResponse JSON, a booking's its BookingResponse JSON —
exactly what the booking API returns, produced by the same serializers. The relational DB is
the source of truth; `document_sync` (run through the outbox after every change) and
reconciliation bring documents to match it.
"""

import json
from collections.abc import Iterable, Iterator

from django.db import IntegrityError, transaction
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


def document_sync_item_bookings(*, item_id, batch_size: int = 500) -> int:
    """Re-project every booking document of an item (after the item's name changed), in
    batches; returns how many documents were written."""
    written = 0
    for bodies in relational_batches("booking", batch_size=batch_size, item_id=item_id):
        existing = documents_get("booking", bodies.keys())
        for key, body in bodies.items():
            if key not in existing or existing[key].body != body:
                document_write("booking", key, body, existing.get(key))
                written += 1
    return written


def document_sync(*, entity_type: str, entity_id) -> str:
    """Make one document match its row: 'created', 'updated', 'deleted' or 'unchanged'."""
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"Unknown entity type {entity_type!r}")
    entity_id = str(entity_id)
    body = relational_body(entity_type, entity_id)
    existing = documents_get(entity_type, [entity_id]).get(entity_id)
    if body is None:
        return "deleted" if document_delete(entity_type, [entity_id]) else "unchanged"
    if existing is not None and existing.body == body:
        return "unchanged"
    document_write(entity_type, entity_id, body, existing)
    return "created" if existing is None else "updated"
