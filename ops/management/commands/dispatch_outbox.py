import signal
from contextlib import suppress
from time import sleep

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import Error, connections

from bookings_project.commands import bounded, database_errors_as_command_error, interrupt_on
from bookings_project.db import DATABASE_UNAVAILABLE
from bookings_project.text import error_line
from ops.dispatch import outbox_dispatch_run

# --loop waits out a database outage: 1 s after the first error, doubling up to this.
DB_RETRY_MAX_SECONDS = 30


class Command(BaseCommand):
    help = ("Deliver due outbox events, as a worker's dispatcher does (events that died of a mail "
            "server outage go out again once it delivers): one batch, or keep going with --loop.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true",
                            help="Keep dispatching until interrupted; waits out database outages.")
        parser.add_argument("--batch-size", type=bounded(1, 1000), default=None,
                            help="Events per batch, 1-1000 (default: OUTBOX_BATCH_SIZE).")
        parser.add_argument("--interval", type=bounded(0, 3600, kind=float), default=2.0,
                            help="Seconds to sleep when idle (--loop), 0-3600.")

    def handle(self, *args, loop=False, batch_size=None, interval=2.0, **options):
        # SIGTERM (systemd, docker, a supervisor) and a dropped SSH session's SIGHUP stop it as
        # Ctrl-C does: the batch out is handed back (ops.dispatch). Unhandled, they killed the
        # process mid-batch and its events stayed hidden for the whole lease (OUTBOX_LEASE_SECONDS).
        interrupted = interrupt_on(signal.SIGTERM, signal.SIGHUP)
        try:
            if not loop:
                with database_errors_as_command_error():
                    self._report(outbox_dispatch_run(max_seconds=0, batch_size=batch_size, nudge=False))
                return
            self._loop(batch_size=batch_size, interval=interval)
        except KeyboardInterrupt as exc:
            # (the interrupted batch's unrecorded events were made due again: ops.dispatch)
            if not loop:  # one batch that did not finish: say so (exit 1), without a traceback
                raise CommandError(f"Dispatch interrupted ({exc or 'Ctrl-C'}): the batch's undelivered "
                                   "events are due again") from exc
        finally:
            interrupted.restore()

    def _loop(self, *, batch_size, interval):
        delay = 0
        while True:
            try:
                stats = outbox_dispatch_run(max_seconds=settings.OUTBOX_DISPATCH_SECONDS, batch_size=batch_size,
                                            nudge=False)
            except DATABASE_UNAVAILABLE as exc:
                delay = min(delay * 2 or 1, DB_RETRY_MAX_SECONDS)
                self.stderr.write(f"Database unavailable: {error_line(exc)}; retrying in {delay} s")
                with suppress(Error):  # a broken connection may fail to close; it is dropped anyway
                    connections.close_all()
                sleep(delay)
                continue
            delay = 0
            if stats["claimed"] or stats["revived"]:
                self._report(stats)
            else:
                sleep(interval)

    def _report(self, stats):
        revived = f"revived {stats['revived']} after a mail server outage; " if stats["revived"] else ""
        self.stdout.write(
            f"{revived}claimed {stats['claimed']}: sent {stats['sent']}, retry {stats['retry']}, "
            f"deferred {stats['deferred']}, dead {stats['dead']}")
