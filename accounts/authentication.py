from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from .tokens import MALFORMED_CLAIMS, PASSWORD_CLAIM, password_fingerprint, token_claims_valid


class JWTAuthentication(authentication.JWTAuthentication):
    """simplejwt's bearer auth, plus: inactive users and tokens from before a password
    change are refused (simplejwt already refuses inactive users; we keep that)."""

    def get_raw_token(self, header: bytes):
        # The scheme is case-insensitive (RFC 7235 §2.1): "bearer …" is as good as "Bearer …".
        scheme, space, rest = header.partition(b" ")
        if scheme.lower() == b"bearer":
            header = b"Bearer" + space + rest
        return super().get_raw_token(header)

    def get_validated_token(self, raw_token):
        try:
            token = super().get_validated_token(raw_token)
        except MALFORMED_CLAIMS as exc:
            raise AuthenticationFailed("Token is invalid", code="token_not_valid") from exc
        if not token_claims_valid(token.payload):
            raise AuthenticationFailed("Token is invalid", code="token_not_valid")
        return token

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if validated_token.get(PASSWORD_CLAIM) != password_fingerprint(user):
            raise AuthenticationFailed("Token is no longer valid", code="token_not_valid")
        return user
