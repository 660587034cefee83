from django.contrib.auth.models import AbstractUser, UserManager as DjangoUserManager
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.db import models
from django.db.models.functions import Lower


class Role(models.TextChoices):
    USER = "USER", "User"
    EVENT_ORGANIZER = "EVENT_ORGANIZER", "Event organizer"
    ADMIN = "ADMIN", "Admin"
    IT_OPERATOR = "IT_OPERATOR", "IT operator"


# Core API spelling of each role, most privileged first (a user is shown by the first it holds).
CORE_ROLE_NAMES = {
    Role.ADMIN: "admin",
    Role.IT_OPERATOR: "operator",
    Role.EVENT_ORGANIZER: "supplier",
    Role.USER: "customer",
}
ROLE_FROM_CORE = {core: role for role, core in CORE_ROLE_NAMES.items()}
SELF_SERVICE_ROLES = frozenset({Role.USER, Role.EVENT_ORGANIZER})
STAFF_ROLES = frozenset({Role.ADMIN, Role.IT_OPERATOR})


class UserManager(DjangoUserManager):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        extra_fields.setdefault("roles", [Role.ADMIN.value])
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    username = models.CharField(
        max_length=254,
        unique=True,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @/./+/-/_ only.",
    )
    email = models.EmailField(max_length=254)
    # A set of Role values, stored sorted; superusers always hold ADMIN (see save()).
    roles = models.JSONField(default=list, blank=True)
    # Whether the account gets reminder emails before its bookings start (reservations.reminders).
    booking_reminders = models.BooleanField(default=True)

    objects = UserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]

    def save(self, *args, **kwargs):
        self.roles = normalize_roles(self.roles, superuser=self.is_superuser)
        # Admin site access follows the roles: ADMIN and IT_OPERATOR are staff.
        self.is_staff = self.is_superuser or bool(STAFF_ROLES & set(self.roles))
        super().save(*args, **kwargs)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(normalize_roles(self.roles, superuser=self.is_superuser))

    def has_role(self, *roles: str) -> bool:
        return bool(self.role_set & set(roles))

    @property
    def is_admin(self) -> bool:
        return self.has_role(Role.ADMIN)

    # The ADMIN role sees everything in the Django admin, as a superuser would.
    def has_perm(self, perm, obj=None):
        return (self.is_active and self.is_admin) or super().has_perm(perm, obj)

    def has_module_perms(self, app_label):
        return (self.is_active and self.is_admin) or super().has_module_perms(app_label)

    @property
    def core_role(self) -> str:
        for role, name in CORE_ROLE_NAMES.items():
            if role in self.role_set:
                return name
        return CORE_ROLE_NAMES[Role.USER]


def normalize_roles(roles, *, superuser: bool = False) -> list[str]:
    result = {str(r) for r in (roles or [])} & set(Role.values)
    if superuser:
        result.add(Role.ADMIN.value)
    if not result:
        result.add(Role.USER.value)
    return sorted(result)


# `username__lower` / `email__lower`: the expression of the case-insensitive unique constraints,
# so lookups through it use their indexes (accounts.selectors.same_text).
for _name in ("username", "email"):
    User._meta.get_field(_name).register_lookup(Lower)
