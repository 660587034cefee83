"""The outbox's and the jobs' own exceptions: how a handler or a job run says "not yet" or
"failed", for the dispatcher to record (ops.dispatch)."""

from datetime import datetime


class EventDeferred(Exception):
    """A handler's "not yet": the event is tried again at `until` without counting a failure
    (a job left `running` by a worker that may have died can only be taken over once stale)."""

    def __init__(self, reason: str, *, until: datetime):
        super().__init__(reason)
        self.until = until


class JobFailed(Exception):
    """The job ran and failed; the outbox retries it with backoff. `transient`: it failed on
    the mail server's passing trouble (ops.emails.delivery_failure_is_transient);
    `mail_server_failing`: trouble of the server as a whole (ops.emails.mail_server_failing)."""

    def __init__(self, message: str, *, transient: bool = False, mail_server_failing: bool = False):
        super().__init__(message)
        self.transient = transient
        self.mail_server_failing = mail_server_failing
