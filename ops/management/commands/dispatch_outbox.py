import time

from django.core.management.base import BaseCommand

from ops.dispatch import outbox_dispatch_batch


class Command(BaseCommand):
    help = "Deliver due outbox events: one batch, or keep going with --loop."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep dispatching until interrupted.")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds to sleep when idle (--loop).")

    def handle(self, *args, **options):
        while True:
            stats = outbox_dispatch_batch(batch_size=options["batch_size"])
            if stats["claimed"] or not options["loop"]:
                self.stdout.write(
                    f"claimed {stats['claimed']}: sent {stats['sent']}, retry {stats['retry']}, "
                    f"deferred {stats['deferred']}, dead {stats['dead']}")
            if not options["loop"]:
                return
            if not stats["claimed"]:
                try:
                    time.sleep(options["interval"])
                except KeyboardInterrupt:
                    return
