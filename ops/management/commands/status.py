from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from bookings_project.commands import database_errors_as_command_error

from ops.metrics import ENTITY_TYPES, OPEN_JOB_STATUSES, metrics_collect, metrics_problems, sample
from ops.models import JobType, OutboxStatus


def _ago(timestamp: float, now: float) -> str:
    if not timestamp:
        return "never"
    minutes = (now - timestamp) / 60
    when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{when} ({minutes / 60:.0f} h ago)" if minutes >= 60 else f"{when} ({minutes:.0f} min ago)"


def _dependencies(families) -> str:
    [family] = [family for family in families if family.name == "dependency_up"]
    return " · ".join(f"{labels['dependency']} {'ok' if up else 'DOWN'}" for labels, up in family.samples)


def _outbox(families) -> str:
    pending, due = sample(families, "outbox_events", status=OutboxStatus.PENDING), sample(families, "outbox_due_events")
    waited = f", the oldest for {sample(families, 'outbox_oldest_due_age_seconds'):.0f} s" if due else ""
    return f"{pending:.0f} pending ({due:.0f} due{waited}) · {sample(families, 'outbox_events', status=OutboxStatus.DEAD):.0f} dead"


def _jobs(families, job_type) -> str:
    return f"{job_type}: " + " · ".join(f"{sample(families, 'jobs', type=job_type, status=status):.0f} {status}"
                                        for status in OPEN_JOB_STATUSES)


def _reconciliation(families, now) -> str:
    return " · ".join(
        f"{entity_type} {_ago(sample(families, 'reconciliation_last_completed_timestamp_seconds', entity_type=entity_type), now)}"
        for entity_type in sorted(set(ENTITY_TYPES.values())))


class Command(BaseCommand):
    help = ("The system's state at a glance, as GET /metrics reports it: dependencies, outbox backlog, open "
            "jobs, the last whole reconciliations, and what needs an operator. With --check, exit 1 when "
            "anything does (for a cron job or a deploy script).")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 when something needs an operator.")

    def handle(self, *args, check=False, **options):
        with database_errors_as_command_error():
            families = metrics_collect()
        now = datetime.now(UTC).timestamp()
        rows = [("dependencies", _dependencies(families))]
        if sample(families, "outbox_events", status=OutboxStatus.PENDING) is not None:  # (the database answered)
            rows += [("outbox", _outbox(families)), *((("jobs" if i == 0 else ""), _jobs(families, job_type))
                                                      for i, job_type in enumerate(JobType.values)),
                     ("reconciliation", _reconciliation(families, now))]
        width = max(len(label) for label, _ in rows)
        self.stdout.write("\n".join(f"{label:<{width}}  {text}" for label, text in rows) + "\n")
        problems = metrics_problems(families, now=now)
        self.stdout.write("\n".join(f"needs an operator: {problem}" for problem in problems) if problems
                          else "nothing needs an operator")
        if check and problems:
            raise CommandError(f"{len(problems)} problem(s) need an operator")
