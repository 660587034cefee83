from django.db.models import QuerySet

from .models import User


def user_find_for_login(*, identifier: str) -> User | None:
    """The user a login identifier (username or email, any case) names, active or not."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    field = "email__iexact" if "@" in identifier else "username__iexact"
    user = User.objects.filter(**{field: identifier}).first()
    if user is None and "@" in identifier:
        user = User.objects.filter(username__iexact=identifier).first()
    return user


def user_name_taken(*, field: str, value: str, exclude_pk=None) -> bool:
    """Whether another account holds `value` as its `field` ("username" or "email"), in any case."""
    return User.objects.exclude(pk=exclude_pk).filter(**{f"{field}__iexact": value}).exists()


def user_list(*, include_inactive: bool = False) -> QuerySet[User]:
    qs = User.objects.all() if include_inactive else User.objects.filter(is_active=True)
    return qs.order_by("id")


def user_get(*, user_id) -> User | None:
    return user_list().filter(pk=user_id).first()
