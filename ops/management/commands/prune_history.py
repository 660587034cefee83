from django.core.management.base import BaseCommand

from bookings_project.commands import bounded, database_errors_as_command_error
from ops.retention import history_prune


class Command(BaseCommand):
    help = ("Delete system log entries and SENT outbox events past their retention (defaults: "
            "LOG_RETENTION_DAYS, OUTBOX_SENT_RETENTION_DAYS; 0 keeps everything). PENDING and DEAD "
            "events are never deleted. Beat runs this nightly (RETENTION_CRON).")

    def add_arguments(self, parser):
        parser.add_argument("--log-days", type=bounded(0, 36_500), default=None,
                            help="Keep system log entries this many days (0: keep all).")
        parser.add_argument("--sent-event-days", type=bounded(0, 36_500), default=None,
                            help="Keep SENT outbox events this many days after delivery (0: keep all).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args, log_days=None, sent_event_days=None, dry_run=False, **options):
        with database_errors_as_command_error():
            result = history_prune(log_days=log_days, sent_event_days=sent_event_days, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {result['logs']} system log entries, {result['sentEvents']} sent outbox events and "
                          f"{result['expiredTokens']} expired refresh tokens")
