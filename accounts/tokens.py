"""JWT issue/rotation. Tokens carry a fingerprint of the password hash, so changing the
password (or an admin resetting it) invalidates every token issued before."""

import hashlib
import hmac
from collections.abc import Mapping

from django.conf import settings
from django.db import transaction
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from .exceptions import InvalidToken
from .models import User

PASSWORD_CLAIM = "pwd"

# What simplejwt raises (beyond TokenError) on a validly signed token whose claims have shapes
# we never issue: an `exp` past year 9999 overflows its datetime, a refresh token without `jti`
# fails its blacklist lookup.
MALFORMED_CLAIMS = (OverflowError, ValueError, TypeError, KeyError)
_LAST_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
# What the blacklist's jti column holds: PostgreSQL refuses a longer one, and NUL in any text (a
# DataError, not a lookup that finds nothing). We issue 32 hex digits.
_JTI_MAX_LENGTH = OutstandingToken._meta.get_field("jti").max_length


def token_claims_valid(payload: Mapping) -> bool:
    """The claims the project reads have the shapes it issues: a user id a primary key can hold
    (simplejwt writes it as text: "42"), a non-empty `jti` the blacklist can store (printable, at
    most 255 characters), a numeric `exp` a datetime can hold.
    Only a holder of the signing key can sign anything else (a leaked key, another service
    sharing it by mistake), and then the answer is still a 401, not a 500."""
    user_id, jti, exp = (payload.get(jwt_settings.USER_ID_CLAIM), payload.get(jwt_settings.JTI_CLAIM),
                         payload.get("exp"))
    if type(user_id) is str and 0 < len(user_id) <= 19 and user_id.isascii() and user_id.isdigit():
        user_id = int(user_id)
    return (type(user_id) is int and 0 < user_id < 2**63 and isinstance(jti, str)
            and 0 < len(jti) <= _JTI_MAX_LENGTH and jti.isprintable()
            and type(exp) in (int, float) and 0 < exp <= _LAST_EPOCH)


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
        # (the claims checked before RefreshToken looks its jti up in the blacklist)
        if not token_claims_valid(token_backend.decode(refresh_token, verify=True)):
            raise InvalidToken()
        old = RefreshToken(refresh_token)
    except (TokenError, TokenBackendError, *MALFORMED_CLAIMS) as exc:
        raise InvalidToken() from exc
    user = User.objects.filter(pk=old.get(jwt_settings.USER_ID_CLAIM), is_active=True).first()
    if user is None or old.get(PASSWORD_CLAIM) != password_fingerprint(user):
        raise InvalidToken()
    if not _revoke(old.payload, refresh_token=refresh_token, user=user):
        raise InvalidToken()
    return token_pair_for_user(user)


def _revoke(token: Mapping, *, refresh_token: str, user: User) -> bool:
    """Blacklist a refresh token (`token`: its claims); False if it was already (only one of two concurrent uses can
    create the blacklist row). Its row expires when the token does (not when it was used): a
    prune of expired rows (ops.retention, simplejwt's flushexpiredtokens) must never forget a
    used token that could still be presented."""
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=token[jwt_settings.JTI_CLAIM],
            defaults={"user": user, "token": refresh_token, "expires_at": datetime_from_epoch(token["exp"])},
        )
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    return created


def refresh_token_revoke(*, refresh_token: str) -> None:
    """Log out: the refresh token can no longer be used (its access token lives out its few
    minutes). Idempotent: a token of ours revoked already (logged out, or used) is fine; one
    that is not ours (signature), not a refresh token, or expired is an InvalidToken."""
    try:
        payload = token_backend.decode(refresh_token, verify=True)  # signature and expiry, no blacklist
    except TokenBackendError as exc:
        raise InvalidToken() from exc
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != RefreshToken.token_type or not token_claims_valid(payload):
        raise InvalidToken()
    user = User.objects.filter(pk=payload.get(jwt_settings.USER_ID_CLAIM)).first()
    if user is None:
        raise InvalidToken()
    _revoke(payload, refresh_token=refresh_token, user=user)
