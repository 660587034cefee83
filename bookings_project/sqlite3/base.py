"""Django's SQLite backend, with SQL's LOWER() as Python's str.lower().

SQLite's own LOWER() folds the ASCII letters only. The case-insensitive unique constraints on
usernames and emails (LOWER(field), accounts.models) and every lookup by them
(accounts.selectors.same_text) compare through it, so in the embedded mode "Élodie" and
"élodie" were two accounts — PostgreSQL's LOWER() refuses the second — and a login as "ÉLODIE"
found neither. Indexes on LOWER() built before this backend must be rebuilt with it
(accounts migration 0004 does: REINDEX); a write through another SQLite client (the sqlite3
shell) computes their keys with the built-in LOWER() again.

The case-insensitive lookups (`__iexact`, `__icontains`, `__istartswith`, `__iendswith`: the
item list's `location`, `category` and `q`, the admin's searches) are Django's LIKE, whose
case-insensitivity is ASCII only too: here both sides go through this LOWER() first, so
"?location=ÉCOLE" finds "École" as on PostgreSQL (UPPER() on both sides there).
"""

from django.db.backends.sqlite3 import base, operations

CASE_INSENSITIVE_LOOKUPS = ("iexact", "icontains", "istartswith", "iendswith")


def python_lower(value):
    """LOWER(value) as SQLite answers it (NULL stays NULL, a number is read as its text), but
    with every letter Python lowercases."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).lower()


class DatabaseOperations(operations.DatabaseOperations):
    def lookup_cast(self, lookup_type, internal_type=None):
        if lookup_type in CASE_INSENSITIVE_LOOKUPS:
            return "LOWER(%s)"
        return super().lookup_cast(lookup_type, internal_type)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    # (the column's side is LOWER()ed by DatabaseOperations.lookup_cast; the value's here)
    operators = {**base.DatabaseWrapper.operators,
                 **{lookup: "LIKE LOWER(%s) ESCAPE '\\'" for lookup in CASE_INSENSITIVE_LOOKUPS}}
    pattern_ops = {**base.DatabaseWrapper.pattern_ops,
                   "icontains": r"LIKE '%%' || LOWER({}) || '%%' ESCAPE '\'",
                   "istartswith": r"LIKE LOWER({}) || '%%' ESCAPE '\'",
                   "iendswith": r"LIKE '%%' || LOWER({}) ESCAPE '\'"}

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # (deterministic: SQLite refuses any other function in an index's expression)
        connection.create_function("LOWER", 1, python_lower, deterministic=True)
        return connection
