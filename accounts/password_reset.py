"""Password reset: the request (API and admin), the email's link (made when the outbox sends
it), and the new password set with that link (API and the link's page).

The outbox event names the account only (PASSWORD_RESET, payload {"userId"}): the link is made
when the email is sent (password_reset_email_context), to the account's address at that moment,
so no reset token is ever stored — the outbox admin and its operators never see one — and nobody
can point a reset email elsewhere. Django's token generator signs the account's password hash,
last login and the time: a link works once (the new password changes the hash), until
PASSWORD_RESET_TIMEOUT, and no longer after any other password change. The time is UTC
(ResetTokenGenerator): Django's dates a link by the local wall clock, so its lifetime stretched
or shrank by an hour across a DST change, and by the offset when TIME_ZONE changed."""

from contextlib import suppress
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode

from bookings_project.errors import Conflict
from ops.models import OutboxEvent, Severity
from ops.outbox import EventType, outbox_enqueue
from ops.services import system_log_create

from .exceptions import InvalidResetLink
from .models import User
from .selectors import user_find_by_email
from .services import security_notices_enqueue, validate_password

PASSWORD_RESET_EMAIL_INTERVAL = timedelta(seconds=60)  # per account, whatever the client's IP
CLOCK_SKEW_SECONDS = 60  # how far ahead of this process's clock another's may date a link


class ResetTokenGenerator(PasswordResetTokenGenerator):
    """Django's generator with links dated in UTC, not by the local wall clock (`datetime.now()`),
    so PASSWORD_RESET_TIMEOUT is elapsed time whatever TIME_ZONE and its DST changes do. A link
    dated ahead of now is refused: one dated by a local clock east of UTC (before this) would
    otherwise live hours longer."""

    def _now(self):
        return datetime.now(UTC).replace(tzinfo=None)

    def check_token(self, user, token):
        if not super().check_token(user, token):
            return False
        issued = base36_to_int(token.partition("-")[0])  # (well-formed: checked above)
        return issued <= self._num_seconds(self._now()) + CLOCK_SKEW_SECONDS


reset_token_generator = ResetTokenGenerator()


def password_reset_request(*, email: str, request=None) -> None:
    """Email a reset link to the active account using `email`, if there is one; the caller's
    answer is the same either way (no account enumeration)."""
    user = user_find_by_email(email=email, is_active=True)
    if user is None:
        system_log_create(event_type="AUTH", severity=Severity.WARNING, message="Password reset for an unknown email",
                          request=request, additional_data={"reason": "Unknown or inactive email"})
        return
    with suppress(Conflict):  # deactivated this very moment: the same answer as for no account
        password_reset_send(user=user, request=request)


def password_reset_send(*, user: User, actor: User | None = None, request=None) -> bool:
    """Queue a reset email for `user` (`actor`: the ADMIN who asked for it in the admin); False
    when one went out less than PASSWORD_RESET_EMAIL_INTERVAL ago — at most one per account per
    interval, so many IPs cannot flood someone's mailbox. A deactivated account gets none (409)."""
    extra = {"by": actor.pk} if actor is not None else {}
    with transaction.atomic():
        locked = User.objects.select_for_update().filter(pk=user.pk).first()  # one request at a time per account
        if locked is None or not locked.is_active:
            raise Conflict("The account is deactivated: no password reset")
        recent = OutboxEvent.objects.filter(event_type=EventType.PASSWORD_RESET, payload__userId=user.pk,
                                            created_at__gte=timezone.now() - PASSWORD_RESET_EMAIL_INTERVAL)
        if recent.exists():
            system_log_create(event_type="AUTH", severity=Severity.WARNING, message="Password reset requested again",
                              user_id=user.pk, request=request, reported_by=actor,
                              additional_data={"reason": "An email was sent less than a minute ago", **extra})
            return False
        outbox_enqueue(event_type=EventType.PASSWORD_RESET, recipient_email=locked.email, payload={"userId": user.pk})
        system_log_create(event_type="AUTH", severity=Severity.INFO, message="Password reset requested",
                          user_id=user.pk, request=request, reported_by=actor, additional_data=extra or None)
    return True


def password_reset_email_context(*, user_id) -> tuple[str, dict] | None:
    """(recipient, template context) of a reset email, made now; None when the account is gone
    or inactive (nothing to send)."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), reset_token_generator.make_token(user)
    path = reverse("password-reset-page", kwargs={"uidb64": uid, "token": token})
    return user.email, {"username": user.username, "email": user.email, "uid": uid, "token": token,
                        "link": settings.PUBLIC_BASE_URL.rstrip("/") + path,
                        "valid_for": _duration_in_words(settings.PASSWORD_RESET_TIMEOUT)}


def _duration_in_words(seconds: int) -> str:
    """"2 hours", "30 minutes": rounded down, so an email never promises more time than its link has."""
    count, unit = (seconds // 3600, "hour") if seconds >= 3600 else (max(1, seconds // 60), "minute")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def password_reset_complete(*, uidb64: str, token: str | None, password: str, request=None) -> User:
    """Set a new password with a reset link's uid and token (InvalidResetLink if it is not
    valid now). Checked again under the account's lock, so two uses of one link cannot both
    succeed; every session and token of the account ends with the old password."""
    try:
        user_id = int(urlsafe_base64_decode(uidb64 or "").decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidResetLink() from None
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id, is_active=True).first()
        if user is None or not token or not reset_token_generator.check_token(user, token):
            raise InvalidResetLink()
        validate_password(password, user)
        user.set_password(password)
        user.save(update_fields=["password"])
        security_notices_enqueue(user=user, password_changed=True)
        system_log_create(event_type="AUTH", severity=Severity.INFO, message="Password reset", user_id=user.pk,
                          request=request)
    return user
