import signal

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ops import jobs
from ops.documents import entity_sources
from ops.models import Document, JobStatus
from ops.reconciliation import BATCH_SIZE, reconcile
from ops.routers import DOCUMENTS_DB

from bookings_project.commands import bounded, database_errors_as_command_error, error_line


class Command(BaseCommand):
    help = "Reconcile customer documents with the relational DB (one entity or a whole type)."

    def add_arguments(self, parser):
        parser.add_argument("--entity-type", required=True, choices=sorted(jobs.ENTITY_TYPES))
        parser.add_argument("--entity-id", default=None)
        parser.add_argument("--batch-size", type=bounded(1, 10000), default=BATCH_SIZE,
                            help=f"Rows per batch, 1-10000 (default {BATCH_SIZE}).")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        with database_errors_as_command_error():
            self._handle(**options)

    def _handle(self, *, entity_type, entity_id, batch_size, no_progress, **options):
        kind = jobs.ENTITY_TYPES[entity_type]
        # Recorded as a job, so the run and its changes are readable in the admin like any other.
        # No JOB_RUN event: this shell runs it, and a run that fails here is not re-run unattended.
        job = jobs.job_create_reconciliation(entity_type=entity_type, entity_id=entity_id, trigger="cli",
                                             on_worker=False)
        if not jobs.claim(job.pk):
            raise CommandError(f"Job {job.pk} was taken by a worker; see the admin")
        job.refresh_from_db()
        # From the claim on, every way out finishes the job: none is left `running` for a worker
        # to wait out (Ctrl-C, SIGTERM and a dropped SSH session's SIGHUP included; SIGKILL
        # cannot be caught: such a job is executed again once stale, see OPERATIONS.md).
        interrupted = _interrupt_on(signal.SIGTERM, signal.SIGHUP)
        try:
            queryset, _ = entity_sources()[kind]
            # Rows one by one, then the document side one step per batch (`progress(0)`).
            total = 1 if entity_id else queryset().count() + -(-Document.objects.using(DOCUMENTS_DB).filter(
                entity_type=kind).count() // batch_size)
            with tqdm(total=total, unit=kind, disable=no_progress, file=self.stderr._out) as bar:
                result = reconcile(job=job, entity_type=kind, entity_id=entity_id, label=entity_type,
                                   batch_size=batch_size, progress=lambda n: bar.update(n or 1))
        except (Exception, KeyboardInterrupt) as exc:
            jobs.job_finish(job, error=exc)
            raise CommandError(f"Reconciliation failed (job {job.pk}): {error_line(exc)}") from exc
        finally:
            interrupted.restore()
        job = jobs.job_finish(job, result=result)
        summary = result["summary"]
        self.stdout.write(f"job {job.pk} {job.status}")
        self.stdout.write(f"{'checked':>10} {'created':>8} {'updated':>8} {'deleted':>8} {'unchanged':>10}")
        self.stdout.write(f"{summary['checked']:>10} {summary['created']:>8} {summary['updated']:>8} "
                          f"{summary['deleted']:>8} {summary['unchanged']:>10}")
        self.stdout.write(result["changesLog"])
        if job.status != JobStatus.COMPLETED:
            raise CommandError(job.error_message)


class _interrupt_on:
    """Turn these signals into KeyboardInterrupt (as Ctrl-C) until restore()."""

    def __init__(self, *signals):
        self.previous = {}
        for sig in signals:
            try:
                self.previous[sig] = signal.signal(sig, self._raise)
            except ValueError:  # not the main thread (call_command from a worker thread): leave it
                pass

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
