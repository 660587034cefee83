#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookings_project.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a configuration mistake is one line, not a traceback
        sys.exit(f"Configuration error: {exc}")
    except KeyboardInterrupt as exc:  # Ctrl-C (or a signal a command turns into it) that no command handled
        sys.stderr.write(f"Interrupted{f' ({exc})' if str(exc) else ''}.\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
