"""Django's SQLite backend, with SQL's LOWER() as Python's str.lower().

SQLite's own LOWER() folds the ASCII letters only. The case-insensitive unique constraints on
usernames and emails (LOWER(field), accounts.models) and every lookup by them
(accounts.selectors.same_text) compare through it, so in the embedded mode "Élodie" and
"élodie" were two accounts — PostgreSQL's LOWER() refuses the second — and a login as "ÉLODIE"
found neither. Indexes on LOWER() built before this backend must be rebuilt with it
(accounts migration 0004 does: REINDEX); a write through another SQLite client (the sqlite3
shell) computes their keys with the built-in LOWER() again.
"""

from django.db.backends.sqlite3 import base


def python_lower(value):
    """LOWER(value) as SQLite answers it (NULL stays NULL, a number is read as its text), but
    with every letter Python lowercases."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).lower()


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # (deterministic: SQLite refuses any other function in an index's expression)
        connection.create_function("LOWER", 1, python_lower, deterministic=True)
        return connection
