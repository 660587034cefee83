"""Reconciliation: repair customer documents from the relational rows (the source of truth).

Missing document → created; differing fields → overwritten; orphan document (no live row) →
deleted. Every repair is recorded as ReconciliationChange rows ({field, documentValue,
relationalValue}) and summarised in a human changesLog. A whole-type run makes two batched,
keyset-paged passes — rows → documents (create/update/unchanged), then documents → rows
(orphan candidates, deleted by the same locked repair) — so memory stays flat and queries grow
with N / batch size, never with N.
Runs are idempotent: a second run finds nothing to change. A whole-type run can stop between
any two batches and go on later from its saved progress (`deadline`/`resume`: ops.jobs slices).
The differences seen in a batch are repaired by `document_repair_many`, which reads those rows
and documents again under the documents' locks, so a sync running at the same moment is never
overwritten with an older read.
"""

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from django.utils import timezone

from bookings_project.content import storable_json
from bookings_project.text import loggable

from .documents import (
    entity_sources,
    document_batches,
    documents_delete_unreadable,
    Repair,
    differing,
    document_repair_many,
    numeric_ids,
    relational_batches,
    same_json,
)
from .models import Document, Job, ReconciliationChange
from .routers import DOCUMENTS_DB

BATCH_SIZE = 500
MAX_FIELD_NAMES = 200  # distinct field names a run keeps for its changesLog; change rows kept per document
MORE_FIELDS = "…"  # where the updates of names past MAX_FIELD_NAMES are counted
Action = ReconciliationChange.Action
# Characters of one recorded documentValue/relationalValue as JSON: more than any body the system
# writes (an item's is at most ~20,000), so only a value the customer side made huge is cut.
MAX_RECORDED_JSON = 65_536


def diff_fields(document_body: dict, relational_body: dict) -> list[tuple[str, object, object]]:
    """(field, documentValue, relationalValue) for every top-level field that differs."""
    keys = sorted(set(document_body) | set(relational_body))
    missing = object()
    changed = []
    for key in keys:
        doc_value, rel_value = document_body.get(key, missing), relational_body.get(key, missing)
        if (doc_value is missing) != (rel_value is missing) or not same_json(doc_value, rel_value):
            changed.append((key, None if doc_value is missing else doc_value,
                            None if rel_value is missing else rel_value))
    return changed


def recorded(value):
    """A document's value (or key, or id) as a change records it. The customer side may write
    any JSON: NUL, unpaired surrogates, infinite numbers or deep nesting (storable_json) would
    fail the change rows' INSERT on PostgreSQL, or every later render of the job; a huge value
    would be copied into the job and into every GET /jobs/{jobId}. So a value is made storable,
    and one longer than MAX_RECORDED_JSON as JSON is recorded as the start of its JSON text."""
    value = storable_json(value)
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= MAX_RECORDED_JSON:
        return value
    return f"{text[:1000]}… ({len(text)} characters of JSON)"


@dataclass
class Recorder:
    """Counts outcomes and buffers change rows, written once per batch."""

    job: Job | None
    entity_type: str
    counts: Counter = field(default_factory=Counter)
    fields_updated: Counter = field(default_factory=Counter)
    pending: list = field(default_factory=list)
    last_fields: list = field(default_factory=list)

    def record(self, entity_id: str, action: str, changes=()) -> None:
        self.counts[action] += 1
        self.counts["checked"] += 1
        if action == Action.UPDATED:
            self.last_fields = [recorded(name) for name, _, _ in changes]
            # Bounded (a document may hold any number of unknown keys): names past the first
            # MAX_FIELD_NAMES are counted, not kept, and the logs say how many.
            for name in self.last_fields:
                if name in self.fields_updated or len(self.fields_updated) < MAX_FIELD_NAMES:
                    self.fields_updated[name] += 1
                else:
                    self.fields_updated[MORE_FIELDS] += 1
        if action == "unchanged" or self.job is None:
            return
        # A row per differing field, for the first MAX_FIELD_NAMES of a document: one the customer
        # side filled with 200,000 keys cost 200,000 rows and 11 s (a batch cannot pause midway);
        # the changesLog still counts them all ("… and 199,980 more").
        for name, doc_value, rel_value in changes[:MAX_FIELD_NAMES]:
            self.pending.append(ReconciliationChange(
                job=self.job, entity_type=self.entity_type, entity_id=recorded(entity_id), action=action,
                field=recorded(name), document_value=recorded(doc_value), relational_value=recorded(rel_value)))

    def flush(self) -> None:
        """After each batch: its change rows, and a sign of life on the job, so a long run (a
        shell's `manage.py reconcile`) is never taken for a dead worker's and run twice."""
        if self.pending:
            ReconciliationChange.objects.bulk_create(self.pending, batch_size=500)
            self.pending = []
        if self.job is not None:
            Job.objects.filter(pk=self.job.pk).update(updated_at=timezone.now())

    def summary(self) -> dict:
        return {key: self.counts[key] for key in ("checked", "created", "updated", "deleted", "unchanged")}

    def paused(self, cursor: dict) -> dict:
        """A whole-type run's progress, from which `reconciliation_run(resume=…)` goes on."""
        return {"summary": self.summary(), "fieldsUpdated": dict(self.fields_updated), "cursor": cursor}

    def resume(self, progress: dict) -> None:
        self.counts.update(progress["summary"])
        self.fields_updated.update(progress.get("fieldsUpdated", {}))


def _record_repair(rec: Recorder, entity_id: str, repair: Repair, seen: bool = False) -> None:
    """Record what `document_repair_many` did; `seen`: a batch read the row (so it counts as
    checked even if it was deleted, with no document, before the repair)."""
    if repair.action == Action.DELETED:
        rec.record(entity_id, Action.DELETED, [("", repair.before.body, None)])
    elif repair.action == Action.CREATED:
        rec.record(entity_id, Action.CREATED, [("", None, repair.after)])
    elif repair.action == Action.UPDATED:
        before = repair.before.body
        # A body that is not an object (the customer side may write anything) is one change.
        rec.record(entity_id, Action.UPDATED,
                   diff_fields(before, repair.after) if isinstance(before, dict) else [("", before, repair.after)])
    elif seen or repair.before is not None or repair.after is not None:
        rec.record(entity_id, "unchanged")  # (a batch's difference repaired meanwhile by a sync)


def counted(count: int, noun: str) -> str:
    """"1 item", "2 items", "2 launches": the label is the entity type as the caller sent it."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('s', 'sh', 'ch', 'x', 'z')) else 's'}"


def _single_log(rec: Recorder) -> str:
    if rec.counts[Action.CREATED]:
        return "Created missing document"
    if rec.counts[Action.DELETED]:
        return "Deleted orphan document"
    if rec.counts[Action.UPDATED]:
        if rec.last_fields == [""]:
            return "Replaced a document body that was not a JSON object"
        return f"Updated {counted(len(rec.last_fields), 'field')}: {_field_list(rec.last_fields)}"
    return "No changes"


def _field_list(names: list[str], *, truncated: bool = False, shown: int = 20) -> str:
    """The first `shown` field names, then how many more: a document may hold any number of
    keys. `truncated`: more names were seen than were kept. A name is any text the customer side
    wrote: shown on one line, its control characters escaped (`manage.py reconcile` prints the
    log on a terminal, which would act on an escape sequence) and cut after 100 characters."""
    hidden = len(names) - shown
    text = ", ".join(loggable(name, limit=100) for name in names[:shown])
    if hidden > 0:
        return f"{text} and {hidden} more" + (" (at least)" if truncated else "")
    return f"{text} and more" if truncated else text


def _bulk_log(rec: Recorder, label: str) -> str:
    s = rec.summary()
    text = (f"Checked {counted(s['checked'], label)}: {s['created']} created, {s['updated']} updated, "
            f"{s['deleted']} deleted, {s['unchanged']} unchanged")
    if rec.fields_updated:
        names = sorted(name or "(whole body)" for name in rec.fields_updated if name != MORE_FIELDS)
        text += f". Updated fields: {_field_list(names, truncated=MORE_FIELDS in rec.fields_updated)}"
    return text


def _live_ids(entity_type: str, entity_ids: list[str]) -> set[str]:
    queryset, _ = entity_sources()[entity_type]
    return {str(pk) for pk in queryset().filter(pk__in=numeric_ids(entity_ids)).values_list("pk", flat=True)}


def reconciliation_run(*, job: Job | None, entity_type: str, entity_id=None, label: str | None = None,
                       batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None,
                       resume: dict | None = None, deadline: float | None = None) -> dict:
    """Reconcile one entity (entity_id) or every entity of a type; returns the job result.

    A whole-type run stops after the first batch that ends past `deadline` (time.monotonic())
    and returns its progress with a `cursor` instead (Recorder.paused); called again with that
    as `resume`, it goes on where it stopped. Every batch is complete in itself (repaired and its
    changes written), so a run can stop between any two."""
    rec = Recorder(job=job, entity_type=entity_type)
    if entity_id is not None:
        return _reconcile_one(rec, str(entity_id), progress=progress)

    cursor = {"phase": "rows", "after": 0}
    if resume is not None:
        rec.resume(resume)
        cursor = resume["cursor"]
    out_of_time = (lambda: False) if deadline is None else (lambda: time.monotonic() >= deadline)
    batch_done = partial(_batch_done, rec, progress=progress, out_of_time=out_of_time)
    if cursor["phase"] == "rows":
        stopped = _rows_pass(rec, batch_size=batch_size, after=cursor["after"], batch_done=batch_done)
        if stopped is not None:
            return rec.paused({"phase": "rows", "after": stopped})
        cursor = {"phase": "documents", "after": None}
    stopped = _documents_pass(rec, batch_size=batch_size, after=cursor["after"], batch_done=batch_done)
    if stopped is not None:
        return rec.paused({"phase": "documents", "after": stopped})
    return {"changesLog": _bulk_log(rec, label or entity_type), "summary": rec.summary()}


def _reconcile_one(rec: Recorder, entity_id: str, *, progress: Callable[[int], None] | None) -> dict:
    _record_repair(rec, entity_id, document_repair_many(rec.entity_type, [entity_id])[entity_id])
    rec.flush()
    if progress:
        progress(1)
    return {"changesLog": _single_log(rec), "summary": rec.summary()}


def _batch_done(rec: Recorder, steps: int, *, progress: Callable[[int], None] | None,
                out_of_time: Callable[[], bool]) -> bool:
    """After each batch of a whole-type run: its changes written, its steps reported. True: the
    run must pause here."""
    rec.flush()
    if progress:
        progress(steps)
    return out_of_time()


def _rows_pass(rec: Recorder, *, batch_size: int, after: int,
               batch_done: Callable[[int], bool]) -> int | None:
    """Rows → documents (create/update/unchanged), in batches of rows after the id `after`;
    the last row id done if the run pauses, else None."""
    for bodies in relational_batches(rec.entity_type, batch_size=batch_size, after=after):
        # Compared without locks; only the documents that differ are read again and repaired
        # under their locks (a sync running meanwhile is never overwritten with this read).
        changed = differing(rec.entity_type, bodies)
        for key in bodies.keys() - set(changed):
            rec.record(key, "unchanged")
        for key, repair in document_repair_many(rec.entity_type, changed).items():
            _record_repair(rec, key, repair, seen=True)
        if batch_done(len(bodies)):
            return int(next(reversed(bodies)))
    return None


def _documents_pass(rec: Recorder, *, batch_size: int, after: str | None,
                    batch_done: Callable[[int], bool]) -> str | None:
    """Documents → rows (orphans deleted), in batches of documents after the id `after`; the
    last document id done if the run pauses, else None."""
    for batch in document_batches(rec.entity_type, batch_size=batch_size, after=after):
        ids = batch.ids
        # Only candidates: a row created (and its document synced) since `_live_ids` read must
        # keep its document, so the repair reads rows and documents again under their locks.
        candidates = sorted(set(ids) - _live_ids(rec.entity_type, ids))
        for key, repair in document_repair_many(rec.entity_type, candidates).items():
            _record_repair(rec, key, repair)  # a row that appeared is checked here, once
        for key, repair in documents_delete_unreadable(rec.entity_type, batch.unreadable).items():
            _record_repair(rec, str(key), repair)
        if ids:
            after = ids[-1]  # (an id that is not text is gone: a resumed run starts before it)
        if batch_done(0) and after is not None:  # (None would read as "done": go on to the next batch)
            return after
    return None


def reconciliation_steps(*, entity_type: str, entity_id=None, batch_size: int = BATCH_SIZE) -> int:
    """How many `progress` steps `reconciliation_run` will report: the rows one by one, then one
    per batch of documents (for a progress bar)."""
    if entity_id is not None:
        return 1
    queryset, _ = entity_sources()[entity_type]
    rows = queryset().count()
    documents = Document.objects.using(DOCUMENTS_DB).filter(entity_type=entity_type).count()
    return rows + -(-documents // batch_size)

