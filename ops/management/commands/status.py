from django.core.management.base import BaseCommand, CommandError

from bookings_project.commands import database_errors_as_command_error
from ops.status import status_report


class Command(BaseCommand):
    help = ("The system's state at a glance, as GET /metrics reports it: dependencies, outbox backlog, open "
            "jobs, the last whole reconciliations, and what needs an operator. With --check, exit 1 when "
            "anything does (for a cron job or a deploy script).")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 when something needs an operator.")

    def handle(self, *args, check=False, **options):
        with database_errors_as_command_error():
            rows, problems = status_report(shell=True)
        width = max(len(label) for label, _ in rows)
        self.stdout.write("\n".join(f"{label:<{width}}  {text}" for label, text in rows) + "\n")
        self.stdout.write("\n".join(f"needs an operator: {problem.text}" for problem in problems) if problems
                          else "nothing needs an operator")
        if check and problems:
            raise CommandError(f"{len(problems)} problem(s) need an operator")
