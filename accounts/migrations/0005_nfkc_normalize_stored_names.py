"""Store the usernames and emails written before they were NFKC-normalized as they are stored now
(accounts.selectors.normalized_username / normalized_email). The uniqueness checks compare a
normalized name with LOWER(stored): a row kept as "ａｄａ" did not make "ada" taken, so a new
account could register "ada", and from then on the old account's login as typed ("ａｄａ",
normalized to "ada") found the new one — it could no longer log in by its name.

Only rows holding a character outside printable ASCII are read (NFKC leaves ASCII as it is). A
row whose normalized name or address another account already holds (both registered before
normalization), or whose normalized form the rules refuse, is left as it is and named in the
migration's output: an operator renames one of the two and runs it again
(`migrate accounts 0004`, `migrate`). Not reversed (the forms are the same
account's): migrating back leaves the rows normalized.
"""

import unicodedata

from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import migrations
from django.db.models import Q, Value
from django.db.models.functions import Lower

NOT_PRINTABLE_ASCII = r"[^ -~]"
MAX_LENGTH = 254  # both columns


def _valid(value: str, validator) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return 0 < len(value) <= MAX_LENGTH


def normalize(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    rows = (User.objects.filter(Q(username__regex=NOT_PRINTABLE_ASCII) | Q(email__regex=NOT_PRINTABLE_ASCII))
            .order_by("pk").values_list("pk", "username", "email"))
    left = []
    for pk, username, email in list(rows):  # (few: the names and addresses that are not plain ASCII)
        changes = {}
        name = unicodedata.normalize("NFKC", username)
        address = BaseUserManager.normalize_email(unicodedata.normalize("NFKC", email)).lower() if email else email
        for field, stored, value, validator, what in (
                ("username", username, name, UnicodeUsernameValidator(), "username"),
                ("email", email, address, EmailValidator(), "email address")):
            if value == stored:
                continue
            if _valid(value, validator):
                changes[field] = value
            else:  # (named, as a pair is: left as it is, its normalized form stays free)
                left.append(f"user {pk}: {field} {value!r} is not a valid {what}")
        for field, value in list(changes.items()):
            others = User.objects.exclude(pk=pk).annotate(key=Lower(field)).filter(key=Lower(Value(value)))
            if others.exists():
                left.append(f"user {pk}: {field} {value!r} is another account's")
                del changes[field]
        if changes:
            User.objects.filter(pk=pk).update(**changes)
    if left:
        print("\n  accounts.0005: left as stored (rename one of each pair, or the account, then migrate again):\n  " + "\n  ".join(left))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_reindex_lower_on_sqlite")]

    operations = [migrations.RunPython(normalize, migrations.RunPython.noop, elidable=True)]
