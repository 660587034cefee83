from contextlib import contextmanager, suppress
from functools import cache

from django.db import transaction

from .db import DATABASE_UNAVAILABLE, connection_lost
from .errors import ServiceUnavailable


class CommitOutcomeUnknown(ServiceUnavailable):
    """The connection broke after the COMMIT may have reached the server. The transaction may
    have been applied or not; no server-side error says which. Clients must look before they
    retry (a retry of a non-idempotent write could apply it twice)."""
    code = "outcome_unknown"
    default_message = ("The database connection was lost while saving: the change may or may not "
                       "have been saved. Check before retrying")


def on_commit_once(func) -> None:
    """Run `func` after the current transaction commits, once however often it is asked for
    inside that transaction (outside a transaction: at once, like transaction.on_commit)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(f is func for _, f, *_ in connection.run_on_commit):
        return
    transaction.on_commit(func)


@contextmanager
def atomic_with_tail(using=None):
    """`transaction.atomic()` for a transaction whose last writes take a hot lock.

    Yields `at_commit(fn)`: register the tail, a function that runs the transaction's last
    statements. It runs when the block's body is done — so nothing can run after it — and, on
    PostgreSQL in the outermost block, its statements are sent without waiting for their replies
    (psycopg pipeline mode) followed by the COMMIT in the same flush: a row lock they take is held
    for the server's execution time only, not for a round trip plus however long this thread then
    waits for the GIL before it can send COMMIT. So the tail must be writes whose failure is an
    error (a CHECK constraint refusing it), never a result to inspect. Their errors surface as
    Django's exceptions and atomic() rolls everything back as usual; after a COMMIT atomic() has
    nothing left to send and runs its on_commit hooks. Inside an enclosing atomic block (tests),
    on SQLite, or without libpq pipeline support, the tail simply runs before atomic()'s COMMIT.

    A broken connection once the COMMIT may have been sent (from atomic()'s commit, or from the
    moment the pipeline queues it behind the tail) raises CommitOutcomeUnknown: the caller cannot tell
    whether the transaction is saved, and must say so rather than report a failure.
    """
    connection = transaction.get_connection(using)
    tail = []
    committing = False
    try:
        with transaction.atomic(using=using):
            yield tail.append
            # (needs_rollback: atomic() is going to roll back, so nothing may commit here)
            commits = connection.commit_on_exit and len(connection.atomic_blocks) == 1 \
                and not connection.needs_rollback
            if tail and commits and connection.vendor == "postgresql" and _pipeline_supported():
                def sending_commit():
                    nonlocal committing
                    committing = True
                _run_tail_with_commit(connection, tail, sending_commit)
            else:
                for fn in tail:
                    fn()
            committing = commits
    except DATABASE_UNAVAILABLE as exc:
        if committing and connection_lost(exc):
            raise CommitOutcomeUnknown() from exc
        raise


@cache
def _pipeline_supported() -> bool:
    from psycopg import Pipeline

    return Pipeline.is_supported()


def _run_tail_with_commit(connection, tail, sending_commit) -> None:
    from psycopg import Error

    with connection.wrap_database_errors, connection.connection.pipeline() as pipeline, \
            connection.cursor() as cursor:
        try:
            for fn in tail:
                fn()
            # One Sync for the tail and the COMMIT (psycopg's commit() would add a round trip).
            sending_commit()
            cursor.execute("COMMIT")
        except BaseException:
            # Leave the aborted pipeline here, so closing it has nothing left to complain about;
            # the error that matters is the one re-raised.
            with suppress(Error):
                pipeline.sync()
            raise
