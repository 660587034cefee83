from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower

from .models import User


def same_text(field: str, value: str) -> Q:
    """`field` ("username" or "email") equal to `value` in any case, compared the way the unique
    constraints compare (`LOWER(field)`, on the database's side), so the lookup uses their
    index. (`__iexact` is `UPPER(field) = UPPER(%s)` on PostgreSQL: no index serves it, and every
    login and registration scanned the users table.)"""
    return Q(**{f"{field}__lower": Lower(Value(value))})


def user_find_for_login(*, identifier: str) -> User | None:
    """The user a login identifier (username or email, any case) names, active or not."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    user = User.objects.filter(same_text("email" if "@" in identifier else "username", identifier)).first()
    if user is None and "@" in identifier:
        user = User.objects.filter(same_text("username", identifier)).first()
    return user


def user_name_taken(*, field: str, value: str, exclude_pk=None) -> bool:
    """Whether another account holds `value` as its `field` ("username" or "email"), in any case."""
    return User.objects.exclude(pk=exclude_pk).filter(same_text(field, value)).exists()


def user_list(*, include_inactive: bool = False) -> QuerySet[User]:
    qs = User.objects.all() if include_inactive else User.objects.filter(is_active=True)
    return qs.order_by("id")


def user_get(*, user_id) -> User | None:
    return user_list().filter(pk=user_id).first()
