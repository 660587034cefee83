"""JWT issue/rotation. Tokens carry a fingerprint of the password hash, so changing the
password (or an admin resetting it) invalidates every token issued before."""

import hashlib
import hmac

from django.conf import settings
from django.db import transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from .exceptions import InvalidToken
from .models import User

PASSWORD_CLAIM = "pwd"


def password_fingerprint(user: User) -> str:
    digest = hmac.new(settings.JWT_SIGNING_KEY.encode(), user.password.encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def token_pair_for_user(user: User) -> tuple[str, str]:
    """(access, refresh) for an authenticated user."""
    refresh = RefreshToken.for_user(user)
    refresh[PASSWORD_CLAIM] = password_fingerprint(user)
    return str(refresh.access_token), str(refresh)


def token_pair_rotate(*, refresh_token: str) -> tuple[str, str]:
    """Blacklist the presented refresh token and issue a new pair; any reuse is refused."""
    try:
        old = RefreshToken(refresh_token)
    except TokenError as exc:
        raise InvalidToken() from exc
    user = User.objects.filter(pk=old.get(settings.SIMPLE_JWT["USER_ID_CLAIM"]), is_active=True).first()
    if user is None or old.get(PASSWORD_CLAIM) != password_fingerprint(user):
        raise InvalidToken()
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=old["jti"],
            defaults={"user": user, "token": refresh_token, "expires_at": old.current_time},
        )
        # Only one of two concurrent rotations of the same token can create the blacklist row.
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise InvalidToken()
    return token_pair_for_user(user)
