import argparse
import signal

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from bookings_project.commands import bounded, database_errors_as_command_error, interrupt_on
from ops import jobs
from ops.models import JobStatus
from ops.reconciliation import BATCH_SIZE, reconciliation_steps


class Command(BaseCommand):
    help = "Reconcile customer documents with the relational DB (one entity or a whole type)."

    def add_arguments(self, parser):
        parser.add_argument("--entity-type", required=True, choices=sorted(jobs.ENTITY_TYPES))
        parser.add_argument("--entity-id", type=entity_id, default=None,
                            help="One entity's id (up to 64 characters, as the API takes it); leave "
                                 "out for the whole type.")
        parser.add_argument("--batch-size", type=bounded(1, 10000), default=BATCH_SIZE,
                            help=f"Rows per batch, 1-10000 (default {BATCH_SIZE}).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        with database_errors_as_command_error():
            self._handle(**options)

    def _handle(self, *, entity_type, entity_id, batch_size, no_progress, **options):
        # SIGTERM and a dropped SSH session's SIGHUP end the run as Ctrl-C does: the job is
        # finished `failed`, not left `running` (SIGKILL cannot be caught: such a job is
        # executed again once stale, see OPERATIONS.md).
        interrupted = interrupt_on(signal.SIGTERM, signal.SIGHUP)
        try:
            total = reconciliation_steps(entity_type=jobs.ENTITY_TYPES[entity_type], entity_id=entity_id,
                                         batch_size=batch_size)
            # (the steps are relational rows plus documents read: "records", not entities)
            with tqdm(total=total, unit="record", desc=entity_type, disable=no_progress,
                      file=self.stderr._out) as bar:
                job = jobs.job_run_reconciliation_here(entity_type=entity_type, entity_id=entity_id,
                                                       batch_size=batch_size, progress=lambda n: bar.update(n or 1))
        except KeyboardInterrupt as exc:  # while counting or creating, before any job: nothing to finish
            raise CommandError(f"Reconciliation not started: {exc or 'interrupted'}") from exc
        finally:
            interrupted.restore()
        if job.status != JobStatus.COMPLETED:
            raise CommandError(f"Reconciliation failed (job {job.pk}): {job.error_message}")
        summary = job.result["summary"]
        self.stdout.write(f"job {job.pk} {job.status}")
        self.stdout.write(f"{'checked':>10} {'created':>8} {'updated':>8} {'deleted':>8} {'unchanged':>10}")
        self.stdout.write(f"{summary['checked']:>10} {summary['created']:>8} {summary['updated']:>8} "
                          f"{summary['deleted']:>8} {summary['unchanged']:>10}")
        self.stdout.write(job.result["changesLog"])
        if entity_id is not None and not summary["checked"]:
            self.stdout.write(f"No {entity_type} {entity_id} in either database: nothing to reconcile.")


def entity_id(text: str) -> str:
    """An argparse `type`: an id as `POST /reconciliation` takes one (trimmed, not blank, at most
    64 characters). A blank one (`--entity-id "$ID"` with ID unset) ran a job recorded as the
    whole type while it checked nothing; " 12" matched no entity."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError("must not be blank (leave --entity-id out to reconcile the whole type)")
    if len(value) > 64:
        raise argparse.ArgumentTypeError(f"must be at most 64 characters, got {len(value)}")
    return value
