"""What an operator alerts on, in Prometheus' text format (GET /metrics).

Every figure is read from the databases (and the dependency checks of /readyz) when scraped, so
every web process answers alike and nothing is counted in memory that a restart would lose:
outbox events waiting or DEAD and how long the oldest due one has waited, jobs queued, running or
failed, when each whole-type reconciliation last completed, and whether each dependency answers.
A fixed handful of indexed queries, whatever the size of the tables. Request rates and latencies
are the access log's and the proxy's (gunicorn's workers share no memory to count them in).
"""

import time
from dataclasses import dataclass, field

from django.db.models import Count, Min, Q
from django.utils import timezone

from . import health
from .documents import ENTITY_TYPES as DOCUMENT_ENTITY_TYPES
from .jobs import ENTITY_TYPES
from .models import WHOLE_TYPE_RECONCILIATION_DONE, Job, JobStatus, JobType, OutboxEvent, OutboxStatus

PREFIX = "bookings_"
# Jobs that are work still to do, or that need someone's attention (completed ones only grow).
OPEN_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED)
# The entity types a whole reconciliation covers, in the order reported.
RECONCILED_TYPES = sorted(DOCUMENT_ENTITY_TYPES)


@dataclass
class Family:
    """One metric: its samples as (labels, value)."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    type: str = "gauge"


def _outbox(now) -> list[Family]:
    waiting = Q(status=OutboxStatus.PENDING)
    due = waiting & Q(next_attempt_at__lte=now)
    row = OutboxEvent.objects.filter(status__in=(OutboxStatus.PENDING, OutboxStatus.DEAD)).aggregate(
        pending=Count("pk", filter=waiting), dead=Count("pk", filter=Q(status=OutboxStatus.DEAD)),
        due=Count("pk", filter=due), oldest_due=Min("next_attempt_at", filter=due))
    oldest = row["oldest_due"]
    return [
        Family("outbox_events", "Outbox events not delivered: PENDING (waiting, backing off or being delivered) "
                                "and DEAD (out of attempts; the admin's retry action sends them again).",
               [({"status": OutboxStatus.PENDING}, row["pending"]), ({"status": OutboxStatus.DEAD}, row["dead"])]),
        Family("outbox_due_events", "PENDING outbox events whose next attempt is due now.", [({}, row["due"])]),
        Family("outbox_oldest_due_age_seconds",
               "How long the longest-waiting due outbox event has waited (0: none). Growing: no worker or "
               "beat is taking events.", [({}, max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)]),
    ]


def _jobs() -> list[Family]:
    counts = {(row["type"], row["status"]): row["n"] for row in
              Job.objects.filter(status__in=OPEN_JOB_STATUSES).values("type", "status").annotate(n=Count("pk"))
              .order_by()}
    return [Family("jobs", "Jobs queued, running or failed (a failed job can be executed again).",
                   [({"type": job_type, "status": status}, counts.get((job_type, status), 0))
                    for job_type in JobType.values for status in OPEN_JOB_STATUSES])]


def _last_reconciliation() -> list[Family]:
    family = Family("reconciliation_last_completed_timestamp_seconds",
                    "When the latest whole-type reconciliation that completed had completed, in Unix time "
                    "(0: none yet). Beat starts one per type on RECONCILE_CRON.")
    for entity_type in RECONCILED_TYPES:
        names = [name for name, canonical in ENTITY_TYPES.items() if canonical == entity_type]
        # Latest completion first along the partial index of completed whole-type runs (two a night;
        # a failed run executed again days later completes after newer ones).
        completed_at = (Job.objects.filter(WHOLE_TYPE_RECONCILIATION_DONE, params__entityType__in=names,
                                           completed_at__isnull=False)
                        .order_by("-completed_at").values_list("completed_at", flat=True).first())
        family.samples.append(({"entity_type": entity_type}, completed_at.timestamp() if completed_at else 0.0))
    return [family]


def metrics_collect(*, errors: dict[str, Exception | None] | None = None) -> list[Family]:
    """The families of GET /metrics. With the relational database down (or not answering within
    health.DEPENDENCY_WAIT_SECONDS) only the dependency checks are reported (up == 0 is what to alert on).
    `errors`: the dependency checks' outcomes when the caller ran them (health.dependencies_check)."""
    started = time.perf_counter()
    if errors is None:
        errors = health.dependencies_check()
    families = [Family("dependency_up", "1 when the dependency answers (as /readyz checks it), else 0.",
                       [({"dependency": name}, 0 if exc else 1) for name, exc in errors.items()])]
    if errors["database"] is None:
        families += [*_outbox(timezone.now()), *_jobs(), *_last_reconciliation()]
    families.append(Family("metrics_collect_seconds", "Time taken to gather these metrics.",
                           [({}, time.perf_counter() - started)]))
    return families


def dependency_states(families: list[Family]) -> list[tuple[str, bool]]:
    """(dependency, answers) of the dependency_up family."""
    [family] = [family for family in families if family.name == "dependency_up"]
    return [(labels["dependency"], bool(up)) for labels, up in family.samples]


def sample(families: list[Family], name: str, **labels) -> float | None:
    """The value metric `name` has with exactly these labels; None when it was not reported."""
    for family in families:
        if family.name == name:
            return next((value for sample_labels, value in family.samples if sample_labels == labels), None)
    return None


def _label_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def exposition(families: list[Family]) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines = []
    for family in families:
        name = PREFIX + family.name
        lines += [f"# HELP {name} {family.help}", f"# TYPE {name} {family.type}"]
        for labels, value in family.samples:
            label_text = ",".join(f'{key}="{_label_value(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"
