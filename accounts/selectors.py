import unicodedata

from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower

from .models import User


def same_text(field: str, value: str) -> Q:
    """`field` ("username" or "email") equal to `value` in any case, compared the way the unique
    constraints compare (`LOWER(field)`, on the database's side), so the lookup uses their
    index. (`__iexact` is `UPPER(field) = UPPER(%s)` on PostgreSQL: no index serves it, and every
    login and registration scanned the users table.)"""
    return Q(**{f"{field}__lower": Lower(Value(value))})


def normalized_username(username: str) -> str:
    """How every username is stored and looked up: NFKC, as Django's own forms and create_user
    have it (AbstractBaseUser.normalize_username), so "ａｄｍｉｎ" is "admin" — taken — and not a
    second account that looks like it."""
    return User.normalize_username(username)


def normalized_email(email: str) -> str:
    """How every email is stored and compared: NFKC (as usernames: "x@ｅｘａｍｐｌｅ.com" is
    x@example.com to IDNA, the same mailbox, and "ſ" is "s"), Django's normalisation, then lower
    case."""
    return User.objects.normalize_email(unicodedata.normalize("NFKC", email)).lower()


def user_find_for_login(*, identifier: str) -> User | None:
    """The user a login identifier (username or email, any case) names, active or not."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    # Usernames are stored NFKC-normalized (normalized_username); one stored before that was
    # done is found as typed.
    by_username = [same_text("username", name) for name in dict.fromkeys((normalized_username(identifier), identifier))]
    if "@" not in identifier:
        return _first_user(by_username)
    # Emails are stored as normalized_email() writes them, with Python's lower(), which
    # PostgreSQL's LOWER() does not match for a final sigma (SQLite's is Python's: bookings_project.sqlite3):
    # the identifier normalized the same way first (as a reset request is), then as typed (an
    # address stored otherwise, e.g. by Django's createsuperuser), then as a username.
    return _first_user(_email_lookups(identifier) + by_username)


def user_find_by_email(*, email: str, **filters) -> User | None:
    """The account using `email` as stored (normalized_email), else as typed — an address stored
    before emails were NFKC-normalized, as user_find_for_login finds it (a password reset
    request asks here)."""
    return _first_user([lookup & Q(**filters) for lookup in _email_lookups(email)])


def _email_lookups(email: str) -> list[Q]:
    """`email` normalized as stored, then — when that can differ — as typed."""
    lookups = [same_text("email", normalized_email(email))]
    if not email.isascii():
        lookups.append(same_text("email", email))
    return lookups


def _first_user(lookups: list[Q]) -> User | None:
    for lookup in lookups:
        user = User.objects.filter(lookup).first()
        if user is not None:
            return user
    return None


def user_name_taken(*, field: str, value: str, exclude_pk=None) -> bool:
    """Whether another account holds `value` as its `field` ("username" or "email"), in any case."""
    return User.objects.exclude(pk=exclude_pk).filter(same_text(field, value)).exists()


def user_list(*, include_inactive: bool = False) -> QuerySet[User]:
    qs = User.objects.all() if include_inactive else User.objects.filter(is_active=True)
    return qs.order_by("id")


def user_get(*, user_id, include_inactive: bool = False) -> User | None:
    return user_list(include_inactive=include_inactive).filter(pk=user_id).first()
