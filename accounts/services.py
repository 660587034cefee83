"""Writes on accounts: registration, login, profile updates, role changes, deactivation
(password reset: accounts.password_reset)."""

import re
import secrets

from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from bookings_project.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from bookings_project.ratelimit import rate_limit_hit
from catalog.cache import catalog_changed
from ops.models import Severity
from ops.outbox import (ORGANIZER_ITEMS, USER_BOOKINGS, EventType, outbox_enqueue_document_sync, outbox_enqueue_many,
                        outbox_enqueue_user_registered, outbox_event)
from ops.services import system_log_create
from reservations.services import booking_cancel_future_for_user

from .exceptions import DuplicateUser, InvalidCredentials, RoleNotAllowed, WrongCurrentPassword
from .models import SELF_SERVICE_ROLES, Role, User, normalize_roles
from .selectors import normalized_email, normalized_username, same_text, user_find_for_login, user_name_taken
from .tokens import token_pair_for_user


# Staff access of IT operators (contract §3): the ops admin pages only. Mirrored, frozen, in
# migration accounts.0002, which creates the group; the change permissions run admin actions.
IT_OPERATORS_GROUP = "IT operators"
IT_OPERATORS_PERMISSIONS = (
    "view_systemlog", "view_job", "change_job", "view_outboxevent", "change_outboxevent",
    "view_reconciliationchange",
)


def it_operators_group_get() -> Group:
    """The group, (re)created with its permissions if a flush or a hand removed it."""
    group, created = Group.objects.get_or_create(name=IT_OPERATORS_GROUP)
    if created:
        group.permissions.set(Permission.objects.filter(content_type__app_label="ops",
                                                        codename__in=IT_OPERATORS_PERMISSIONS))
    return group


def _operator_group_sync(user: User) -> None:
    """Group membership follows the IT_OPERATOR role, whichever path changed the roles."""
    if user.has_role(Role.IT_OPERATOR):
        user.groups.add(it_operators_group_get())
    else:
        user.groups.remove(*user.groups.filter(name=IT_OPERATORS_GROUP))


def _ensure_unique(*, username: str, email: str, exclude_pk=None) -> None:
    for field, value in (("username", username), ("email", email)):
        if user_name_taken(field=field, value=value, exclude_pk=exclude_pk):
            raise DuplicateUser(field)


def password_problems(password: str, user: User) -> list[str]:
    """What Django's password validators say about `password` for `user` (its username and
    email count: a password too much like them is weak); [] when it is fine."""
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        return list(exc.messages)
    return []


def validate_password(password: str, user: User) -> None:
    if problems := password_problems(password, user):
        raise ValidationFailed("Password is too weak", fields={"password": problems})


def email_to_store(email: str) -> str:
    """`email` as it is stored (normalized_email), refused (400 naming `email`) when that form is
    no valid address of at most 254 characters: lower() may lengthen a text the serializer took
    ("İ" is "i̇", two characters) or make it invalid, and the column holds 254 (PostgreSQL
    refused the write: a 500)."""
    email = normalized_email(email)
    try:
        User._meta.get_field("email").run_validators(email)
    except DjangoValidationError as exc:
        raise ValidationFailed(fields={"email": list(exc.messages)}) from None
    return email


def user_register(*, username: str, email: str, password: str, roles=None, request=None) -> User:
    """Self-registration: only USER/EVENT_ORGANIZER may be asked for (else 403)."""
    wanted = set(roles or [Role.USER])
    if wanted - SELF_SERVICE_ROLES:
        raise RoleNotAllowed()
    email, username = email_to_store(email), normalized_username(username)
    user = User(username=username, email=email, roles=sorted(wanted))
    validate_password(password, user)
    user.set_password(password)
    _ensure_unique(username=username, email=email)
    try:
        with transaction.atomic():
            user.save()
            outbox_enqueue_user_registered(user=user)
            system_log_create(event_type="USER", severity=Severity.INFO, message="User registered",
                              user_id=user.pk, request=request, additional_data={"roles": user.roles})
    except IntegrityError as exc:  # a concurrent registration won the race
        raise DuplicateUser() from exc
    return user


def user_register_by_email(*, email: str, password: str, roles=None, request=None) -> User:
    """Core-API registration (no username field): the username is the email (each character a
    username may not hold written "_", username_for_email), unless another account already chose
    that text as its username — then that plus a short suffix, so a username that looks like
    someone's address cannot keep its owner from registering."""
    email = email_to_store(email)
    username = username_for_email(email)
    suffixed = f"{username[:240]}-{secrets.token_hex(4)}"
    if User.objects.filter(same_text("username", username)).exclude(same_text("email", email)).exists():
        return user_register(username=suffixed, email=email, password=password, roles=roles, request=request)
    try:
        return user_register(username=username, email=email, password=password, roles=roles, request=request)
    except DuplicateUser as exc:
        if User.objects.filter(same_text("email", email)).exists():  # the email itself is taken
            raise DuplicateUser("email") from exc
        # Someone took this text as a username between the check and the insert.
        return user_register(username=suffixed, email=email, password=password, roles=roles, request=request)


_NOT_IN_A_USERNAME = re.compile(r"[^\w.@+-]")  # (UnicodeUsernameValidator's characters)


def username_for_email(email: str) -> str:
    """The username of an account registered by email: the email, each character a username may
    not hold as "_" ("o'brien@example.com" is "o_brien@example.com"). A username the validator
    refuses made the account's admin page unsavable and a PUT echoing the username a 400."""
    return _NOT_IN_A_USERNAME.sub("_", email)


def _same_time_as_a_password_check(password: str) -> None:
    User().set_password(password)  # no user-existence timing oracle


def auth_check(*, identifier: str, password: str) -> tuple[User | None, str | None]:
    """(the account, None) when the credentials open it, else (the account or None, why not),
    in the time of one password check either way. Both logins use it: the API's and the admin's
    (accounts.backends)."""
    user = user_find_for_login(identifier=identifier)
    if user is None:
        _same_time_as_a_password_check(password or "")
        return None, "Unknown user"
    if not user.is_active:  # deactivation also made the password unusable: say why it failed
        _same_time_as_a_password_check(password or "")
        return user, "Account inactive"
    if not user.check_password(password or ""):
        return user, "Invalid password"
    return user, None


def auth_login_failed(*, user: User | None, reason: str, request=None, via: str | None = None) -> None:
    """The system log entry of a failed login (the seed's fields; `via` names a login other than
    the API's, e.g. "admin")."""
    system_log_create(
        event_type="AUTH",
        severity=Severity.ERROR,
        message="Failed login attempt",
        user_id=user.pk if user is not None else None,
        request=request,
        additional_data={"reason": reason, **({"via": via} if via else {})},
    )


def auth_login(*, identifier: str, password: str, request=None) -> tuple[User, str, str]:
    """Check credentials; every failure is logged and answered with the same 401."""
    user, refused = auth_check(identifier=identifier, password=password)
    if refused is not None:
        auth_login_failed(user=user, reason=refused, request=request)
        raise InvalidCredentials()
    access, refresh = token_pair_for_user(user)
    return user, access, refresh


# A password change by its owner checks the current password: as many guesses as logins allow,
# per account (a stolen token or session must not become unlimited guessing). Both the API and
# the admin's "Change password" count against it (bookings_project.ratelimit.rate_limit_hit).
PASSWORD_CHECK_LIMIT = {"group": "password-check", "rate_setting": "RATE_LIMIT_LOGIN", "per": "user"}


# What each kind of profile change writes (User.save derives is_staff from the roles).
UPDATED_COLUMNS = {"username": ["username"], "email": ["email"], "roles": ["roles", "is_staff"],
                   "password": ["password"], "first_name": ["first_name"], "last_name": ["last_name"],
                   "booking_reminders": ["booking_reminders"]}


def user_update(
    *,
    actor: User,
    user: User,
    username: str | None = None,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    booking_reminders: bool | None = None,
    roles=None,
    password: str | None = None,
    current_password: str | None = None,
    request=None,
) -> User:
    """Profile update. Only an ADMIN changes roles (`roles`: the new set, or a function of the
    roles the user holds under the lock, as user_grant_role / user_revoke_role pass); anyone
    else's `roles` is ignored. Changing one's own password is rate limited per account
    (PASSWORD_CHECK_LIMIT), through the API and the admin alike.

    Every decision is made on the row as it is under its lock (the lock a deactivation and a
    booking also take), and only the changed columns are written: a copy loaded at the request's
    start could otherwise undo a deactivation, or bring back a role revoked meanwhile."""
    if actor.pk != user.pk and not actor.is_admin:
        raise Forbidden()
    if password is not None and actor.pk == user.pk and request is not None:  # (an ADMIN's reset checks none)
        retry_after = rate_limit_hit(request, **PASSWORD_CHECK_LIMIT)
        if retry_after is not None:
            raise RateLimited(f"Too many attempts: retry in {retry_after} s.", retry_after=retry_after)
    names = {"first_name": first_name, "last_name": last_name, "booking_reminders": booking_reminders}
    try:
        return _user_update_locked(actor=actor, user=user, username=username, email=email, names=names,
                                   roles=roles, password=password, current_password=current_password,
                                   request=request)
    except WrongCurrentPassword:
        # Logged after the transaction rolled back, like a failed login.
        system_log_create(event_type="AUTH", severity=Severity.ERROR, message="Failed password check", user_id=user.pk,
                          request=request, reported_by=actor, additional_data={"reason": "Invalid current password"})
        raise


def _lock_actor_and_user(*, actor: User, user: User) -> tuple[User, User]:
    """Lock the actor's and the target's rows together, in primary-key order (user rows come
    first in the project's lock order), and return both as they are now. Two ADMINs acting on
    each other at the same moment are serialized, and the second sees what the first did: an
    ADMIN demoted or deactivated meanwhile is refused (403) — never both demoted, no lockout.
    404 if the target is gone or deactivated."""
    rows = {row.pk: row for row in User.objects.select_for_update().filter(pk__in={actor.pk, user.pk}).order_by("pk")}
    target = rows.get(user.pk)
    if target is None or not target.is_active:
        raise NotFound("User not found")
    current = rows.get(actor.pk)
    if actor.pk != user.pk and (current is None or not current.is_active or not current.is_admin):
        raise Forbidden()
    return current, target


def _user_update_locked(*, actor, user, username, email, names, roles, password, current_password,
                        request) -> User:
    with transaction.atomic():
        actor, user = _lock_actor_and_user(actor=actor, user=user)
        old_roles, old_email = sorted(user.role_set), user.email
        changed = _apply_profile_changes(actor=actor, user=user, username=username, email=email, names=names,
                                         roles=roles, password=password, current_password=current_password)
        if not changed:
            return user
        _ensure_unique(username=user.username, email=user.email, exclude_pk=user.pk)
        try:
            with transaction.atomic():
                user.save(update_fields=sorted({column for name in changed for column in UPDATED_COLUMNS[name]}))
        except IntegrityError as exc:
            raise DuplicateUser() from exc
        if "roles" in changed:
            _operator_group_sync(user)
        if "username" in changed:
            _announce_username_change(user)
        # (in the transaction, like every audit entry of a change: both commit, or neither)
        if "roles" in changed:
            system_log_create(event_type="USER", severity=Severity.WARNING, message="User roles changed",
                              user_id=user.pk, request=request, reported_by=actor,
                              additional_data={"from": old_roles, "to": user.roles, "by": actor.pk})
        if "password" in changed:
            system_log_create(event_type="AUTH", severity=Severity.INFO, message="Password changed",
                              user_id=user.pk, request=request, reported_by=actor, additional_data={"by": actor.pk})
        security_notices_enqueue(user=user, email_was=old_email if "email" in changed else None,
                                 password_changed="password" in changed)
    return user


def _masked_email(email: str) -> str:
    """"n•••@example.com": enough for the owner to recognise, not an address to write to."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def security_notices_enqueue(*, user: User, email_was: str | None = None, password_changed: bool = False) -> None:
    """The account's owner hears of what could lock them out: an email change at the old address
    (else whoever changed it — with a stolen session, say — could then reset the password to an
    address the owner never sees) and a password change at the current one. In the change's
    transaction, like every email of a change."""
    events = []
    if email_was is not None:
        # (the new address masked: the old one may belong to someone else — a typo corrected)
        events.append(outbox_event(event_type=EventType.EMAIL_CHANGED, recipient_email=email_was,
                                   payload={"userId": user.pk, "username": user.username,
                                            "emailMasked": _masked_email(user.email), "emailWas": email_was}))
    if password_changed:
        events.append(outbox_event(event_type=EventType.PASSWORD_CHANGED, recipient_email=user.email,
                                   payload={"userId": user.pk, "username": user.username, "email": user.email}))
    if events:
        outbox_enqueue_many(events)


def _apply_profile_changes(*, actor: User, user: User, username, email, names, roles, password,
                           current_password) -> list[str]:
    """Set the requested changes on the (locked) user; returns the names of what changed."""
    changed = [name for name, value in names.items() if value is not None and value != getattr(user, name)]
    for name in changed:
        setattr(user, name, names[name])
    # A name or an address equal to the stored one once both are normalized is no change: the
    # admin's form and a PUT sending the profile back as read send them as stored, and one stored
    # before they were NFKC-normalized or checked as stored (email_to_store) — "ａｄａ" beside
    # another account's "ada" — must not make every other change of the account fail.
    if username is not None and (username := normalized_username(username)) != normalized_username(user.username):
        user.username, changed = username, changed + ["username"]
    if email is not None and normalized_email(email) != normalized_email(user.email):
        user.email, changed = email_to_store(email), changed + ["email"]
    if callable(roles):
        roles = roles(user.role_set)
    if roles is not None and actor.is_admin:
        asked = normalize_roles(roles, superuser=False)
        if actor.pk == user.pk and Role.ADMIN not in asked:
            raise Conflict("You cannot remove your own ADMIN role")
        if user.is_superuser and Role.ADMIN not in asked:
            raise Conflict("A superuser always holds the ADMIN role")
        new_roles = normalize_roles(roles, superuser=user.is_superuser)
        if new_roles != sorted(user.role_set):
            user.roles, changed = new_roles, changed + ["roles"]
    if password is not None:
        if not actor.is_admin or actor.pk == user.pk:
            if not current_password:
                raise ValidationFailed("Current password is required",
                                       fields={"currentPassword": ["Required to change your own password"]})
            if not user.check_password(current_password):
                raise WrongCurrentPassword()
        validate_password(password, user)
        user.set_password(password)
        changed.append("password")
    return changed


def _announce_username_change(user: User) -> None:
    """Booking documents carry the booker's username and item documents and lists the
    organizer's: refresh them after this transaction commits."""
    outbox_enqueue_document_sync((USER_BOOKINGS, user.pk), (ORGANIZER_ITEMS, user.pk))
    catalog_changed()


def user_grant_role(*, actor: User, user: User, role: str, request=None) -> User:
    """Admin action: add one role to a user."""
    return user_update(actor=actor, user=user, roles=lambda held: held | {role}, request=request)


def user_revoke_role(*, actor: User, user: User, role: str, request=None) -> User:
    """Admin action: take one role from a user (one left with none is a USER; an ADMIN cannot
    drop their own ADMIN role, nor anyone a superuser's)."""
    return user_update(actor=actor, user=user, roles=lambda held: held - {role}, request=request)


def user_deactivate(*, actor: User, user: User, request=None) -> User:
    """DELETE /user/{id}: the account stops working at once; its history stays.
    Future bookings are cancelled (with notifications) by the reservations service."""
    if not actor.is_admin:
        raise Forbidden()
    if actor.pk == user.pk:
        raise Conflict("You cannot delete your own account")
    with transaction.atomic():
        try:
            actor, user = _lock_actor_and_user(actor=actor, user=user)
        except NotFound:
            gone = User.objects.filter(pk=user.pk).first()
            if gone is None:
                raise
            return gone  # deactivated already (DELETE is idempotent)
        user.is_active = False
        # A new password fingerprint kills every token already issued, even if reactivated.
        user.set_unusable_password()
        user.save(update_fields=["is_active", "password"])
        cancelled = booking_cancel_future_for_user(user=user)
        # (in the transaction: the audit entry commits with the deactivation, or neither does)
        system_log_create(event_type="USER", severity=Severity.WARNING, message="User deleted",
                          user_id=user.pk, request=request, reported_by=actor,
                          additional_data={"by": actor.pk, "cancelledBookings": cancelled})
    return user


def superuser_ensure(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """Create the admin from DJANGO_SUPERUSER_* once; later runs leave it untouched. It meets the
    rules every account meets (a valid username and email, a password the validators accept),
    else ValidationFailed names what is wrong and nothing is created."""
    username = normalized_username(username)
    existing = User.objects.filter(same_text("username", username)).first()
    if existing is not None:
        return existing, False
    email = normalized_email(email)
    candidate, problems = User(username=username, email=email), {}
    try:
        candidate.full_clean(exclude=["password"])
    except DjangoValidationError as exc:
        problems.update(exc.message_dict)
    if weak := password_problems(password, candidate):
        problems["password"] = weak
    if problems:
        raise ValidationFailed("The admin account from DJANGO_SUPERUSER_* is not valid", fields=problems)
    user = User.objects.create_superuser(username=username, email=email, password=password)
    system_log_create(event_type="USER", severity=Severity.INFO, message="Superuser created", user_id=user.pk)
    return user, True
