"""The system at a glance, for people: what GET /metrics reports, as lines of text, and what needs
an operator — the documented alerts' conditions (OPERATIONS.md, "Metrics and alerts"), without
their `for` delays — each with the admin page to look at. `manage.py status` prints them; the
admin's index shows them to ADMINs and IT operators.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bookings_project.text import error_line

from .health import OUTBOX_STALLED_SECONDS, dependencies_check
from .metrics import OPEN_JOB_STATUSES, RECONCILED_TYPES, Family, dependency_states, metrics_collect, sample
from .models import JobStatus, JobType, OutboxStatus

RECONCILIATION_OVERDUE_SECONDS = 2 * 86400


@dataclass(frozen=True)
class Problem:
    """Something that needs an operator; `changelist` (an admin URL name) and `query` say where
    to look."""

    text: str
    changelist: str = ""
    query: str = ""


def duration(seconds: float) -> str:
    """`seconds` as a person reads it: 45 s, 12 min, 5 h, 3 d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _when(timestamp: float, now: float) -> str:
    if not timestamp:
        return "never"
    return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M} UTC ({duration(now - timestamp)} ago)"


def _database_answered(families: list[Family]) -> bool:
    return sample(families, "outbox_events", status=OutboxStatus.PENDING) is not None


def status_rows(families: list[Family], *, now: float) -> list[tuple[str, str]]:
    """(label, text) lines: dependencies, then — when the database answered — outbox, jobs per
    type and the last whole reconciliations."""
    rows = [("dependencies", " · ".join(f"{name} {'ok' if up else 'DOWN'}" for name, up in dependency_states(families)))]
    if not _database_answered(families):
        return rows
    due = sample(families, "outbox_due_events")
    waited = f", the oldest for {duration(sample(families, 'outbox_oldest_due_age_seconds'))}" if due else ""
    rows.append(("outbox", f"{sample(families, 'outbox_events', status=OutboxStatus.PENDING):.0f} pending "
                           f"({due:.0f} due{waited}) · {sample(families, 'outbox_events', status=OutboxStatus.DEAD):.0f} dead"))
    rows += [("jobs" if i == 0 else "", f"{job_type}: " + " · ".join(
        f"{sample(families, 'jobs', type=job_type, status=status):.0f} {status}" for status in OPEN_JOB_STATUSES))
        for i, job_type in enumerate(JobType.values)]
    rows.append(("reconciliation", " · ".join(
        f"{entity_type} {_when(sample(families, 'reconciliation_last_completed_timestamp_seconds', entity_type=entity_type), now)}"
        for entity_type in RECONCILED_TYPES)))
    return rows


def status_problems(families: list[Family], *, now: float,
                    causes: dict[str, Exception | None] | None = None) -> list[Problem]:
    """What needs an operator: a dependency down (with `causes`, the checks' errors, saying why),
    delivery stalled, DEAD events, failed jobs, a whole-type reconciliation overdue (or none
    completed yet)."""
    causes = causes or {}
    problems = [Problem(f"{name} is not answering" + (f": {error_line(causes[name])}" if causes.get(name) else ""))
                for name, up in dependency_states(families) if not up]
    if not _database_answered(families):
        return problems  # (the relational database is down: nothing else could be read)
    waited = sample(families, "outbox_oldest_due_age_seconds")
    if waited > OUTBOX_STALLED_SECONDS:
        problems.append(Problem(f"outbox delivery stalled: an event has been due for {duration(waited)} (is a worker "
                                f"running, and beat?)", "ops_outboxevent_changelist", "status__exact=PENDING"))
    if dead := sample(families, "outbox_events", status=OutboxStatus.DEAD):
        problems.append(Problem(f"{dead:.0f} DEAD outbox event(s): the admin's retry action sends them again",
                                "ops_outboxevent_changelist", "status__exact=DEAD"))
    for job_type in JobType.values:
        if failed := sample(families, "jobs", type=job_type, status=JobStatus.FAILED):
            problems.append(Problem(f"{failed:.0f} failed {job_type} job(s): the admin's execute action (or PUT "
                                    f"/jobs/{{jobId}}/execute) runs one again", "ops_job_changelist",
                                    f"type__exact={job_type}&status__exact={JobStatus.FAILED}"))
    for entity_type in RECONCILED_TYPES:
        last = sample(families, "reconciliation_last_completed_timestamp_seconds", entity_type=entity_type)
        where = ("ops_job_changelist", f"type__exact={JobType.RECONCILIATION}")
        if not last:
            problems.append(Problem(f"no whole {entity_type} reconciliation has completed yet (beat runs one nightly; "
                                    f"manage.py reconcile --entity-type {entity_type} runs one now)", *where))
        elif now - last > RECONCILIATION_OVERDUE_SECONDS:
            problems.append(Problem(f"the last whole {entity_type} reconciliation completed {duration(now - last)} ago",
                                    *where))
    return problems


def status_report(*, shell: bool = False) -> tuple[list[tuple[str, str]], list[Problem]]:
    """status_rows and status_problems of the system now. `shell` (manage.py status): a dependency
    that is down is named with its error in the problem's text, and not logged (a shell's stderr
    got the check's traceback, the process log's record of an outage, for a broker that was down)."""
    errors = dependencies_check(log=not shell)
    families, now = metrics_collect(errors=errors), time.time()
    return status_rows(families, now=now), status_problems(families, now=now, causes=errors if shell else None)
