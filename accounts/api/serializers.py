from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from bookings_project.datetimes import UtcDateTimeField
from bookings_project.validation import ChoiceField, StrictBooleanField, StrictCharField
from ops.api.serializers import LogSerializer
from reservations.api.serializers import BookingResponseSerializer

from ..models import CORE_ROLE_NAMES, Role, User
from ..selectors import normalized_username

ROLE_CHOICES = Role.values
USERNAME_MAX_LENGTH = User._meta.get_field("username").max_length
CORE_ROLE_CHOICES = list(CORE_ROLE_NAMES.values())


class UsernameField(StrictCharField):
    """NFKC-normalized before its checks, as Django's forms.UsernameField: the length and the
    characters are those of the name stored (accounts.selectors.normalized_username). As long as
    the column (254): a core-API account's username is its email, which may be that long."""

    def __init__(self, **kwargs):
        super().__init__(max_length=USERNAME_MAX_LENGTH, min_length=1, validators=[UnicodeUsernameValidator()],
                         **kwargs)

    def to_internal_value(self, data):
        return normalized_username(super().to_internal_value(data))


class PasswordProblemsWithOtherErrors:
    """When other fields are invalid, the password's problems are reported with them, so a
    client sees every error at once (the service checks the password again before saving)."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            password = data.get("password") if isinstance(data, dict) else None
            if isinstance(exc.detail, dict) and "password" not in exc.detail and isinstance(password, str):
                from accounts.models import User
                from accounts.services import password_problems

                texts = {name: data.get(name) for name in ("username", "email")}
                # (only plausible values: the similarity check's cost grows with their length)
                user = User(**{name: value for name, value in texts.items() if isinstance(value, str) and len(value) <= 254})
                if problems := password_problems(password, user):
                    exc.detail["password"] = problems
            raise


class UserRegisterSerializer(PasswordProblemsWithOtherErrors, serializers.Serializer):
    username = UsernameField()
    email = serializers.EmailField(max_length=254)
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False)
    roles = serializers.ListField(child=ChoiceField(choices=ROLE_CHOICES), required=False,
                                  allow_null=True, max_length=4, help_text="Left out, null or []: USER")


class UserUpdateSerializer(serializers.Serializer):
    username = UsernameField(required=False)
    email = serializers.EmailField(max_length=254, required=False)
    roles = serializers.ListField(child=ChoiceField(choices=ROLE_CHOICES), required=False,
                                  allow_null=True, max_length=4, help_text="Left out or null: unchanged")
    password = StrictCharField(max_length=128, required=False, write_only=True, trim_whitespace=False)
    currentPassword = StrictCharField(max_length=128, required=False, write_only=True,
                                      trim_whitespace=False)
    bookingReminders = StrictBooleanField(required=False, help_text="Reminder emails before bookings start")


class UserResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = StrictCharField()
    email = serializers.EmailField()
    roles = serializers.ListField(child=ChoiceField(choices=ROLE_CHOICES), source="role_set")
    bookingReminders = serializers.BooleanField(
        source="booking_reminders", help_text="Whether the account gets reminder emails before its bookings start")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["roles"] = sorted(data["roles"])
        return data


class PasswordResetAskSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = StrictCharField(max_length=64, help_text="From the reset email")
    token = StrictCharField(max_length=128, help_text="From the reset email")
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False, help_text="The new password")


class QueuedStatusSerializer(serializers.Serializer):
    status = ChoiceField(choices=["queued"])


class LoginSerializer(serializers.Serializer):
    username = StrictCharField(max_length=254, help_text="Username or email")
    password = StrictCharField(max_length=128, trim_whitespace=False)


class TokenPairSerializer(serializers.Serializer):
    token = StrictCharField()
    refreshToken = StrictCharField()


class RefreshSerializer(serializers.Serializer):
    refreshToken = StrictCharField(max_length=4096)


# --- Core API (seed 000) ---------------------------------------------------------------------


class CoreRegisterSerializer(PasswordProblemsWithOtherErrors, serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = StrictCharField(max_length=128, trim_whitespace=False)
    role = ChoiceField(choices=CORE_ROLE_CHOICES, required=False, allow_null=True, default="customer",
                                   help_text="Left out or null: customer")

    def validate_role(self, value):
        return value or "customer"


class CoreUserSerializer(serializers.Serializer):
    id = StrictCharField()
    email = serializers.EmailField()
    role = ChoiceField(choices=CORE_ROLE_CHOICES, source="core_role")


class CoreRegisteredSerializer(CoreUserSerializer):
    createdAt = UtcDateTimeField(source="date_joined")


class CoreLoginSerializer(serializers.Serializer):
    email = StrictCharField(max_length=254)
    password = StrictCharField(max_length=128, trim_whitespace=False)


class CoreLoginResponseSerializer(serializers.Serializer):
    token = StrictCharField()
    refreshToken = StrictCharField()
    expiresIn = serializers.IntegerField()
    user = CoreUserSerializer()


class UserExportProfileSerializer(UserResponseSerializer):
    """UserResponse and the account's other personal fields (names are set in the admin)."""

    firstName = StrictCharField(source="first_name", allow_blank=True)
    lastName = StrictCharField(source="last_name", allow_blank=True)
    createdAt = UtcDateTimeField(source="date_joined")
    lastLogin = UtcDateTimeField(source="last_login", allow_null=True,
                                 help_text="The last sign-in to the admin site (API logins do not set it)")
    active = serializers.BooleanField(source="is_active", help_text="False: the account was deactivated")


class UserExportSerializer(serializers.Serializer):
    """Everything the system holds about one person (accounts.export)."""

    exportedAt = UtcDateTimeField()
    timeZone = StrictCharField(help_text="The IANA zone (TIME_ZONE) of the bookings' times, which are local and "
                                         "without offset as everywhere in the booking API; every other time in "
                                         "the document is UTC with Z")
    user = UserExportProfileSerializer()
    bookings = BookingResponseSerializer(many=True, help_text="Every booking the account made, any status, oldest first")
    systemLog = LogSerializer(many=True, help_text="System log entries about the account, newest first; "
                                                   "`ipAddress` null on those another account made")
    systemLogTruncated = serializers.BooleanField(
        help_text="True when the log part holds only the newest entries (at most 10,000 and 8 MB: "
                  "accounts.export.EXPORT_LOG_ENTRIES, EXPORT_LOG_BYTES)")
