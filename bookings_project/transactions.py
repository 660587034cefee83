from django.db import transaction


def on_commit_once(func) -> None:
    """Run `func` after the current transaction commits, once however often it is asked for
    inside that transaction (outside a transaction: at once, like transaction.on_commit)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(f is func for _, f, *_ in connection.run_on_commit):
        return
    transaction.on_commit(func)
