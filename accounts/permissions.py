from rest_framework.permissions import BasePermission

from .models import CORE_ROLE_NAMES, Role


class HasAnyRole(BasePermission):
    """Authenticated and holding one of `roles` (subclass and set `roles`)."""

    roles: tuple[str, ...] = ()

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_role(*self.roles))

    @property
    def message(self) -> str:
        """The 403's message (DRF reads `message`): which roles would do, not only "no"."""
        return f"Requires the {' or '.join(self.roles)} role"


class IsAdmin(HasAnyRole):
    roles = (Role.ADMIN,)


class IsAdminOrOperator(HasAnyRole):
    """The core API's operations routes, whose callers know the roles by its spelling too."""

    roles = (Role.ADMIN, Role.IT_OPERATOR)

    @property
    def message(self) -> str:
        return f"{super().message} ({' or '.join(CORE_ROLE_NAMES[role] for role in self.roles)} in the core API)"


class IsOrganizerOrAdmin(HasAnyRole):
    roles = (Role.EVENT_ORGANIZER, Role.ADMIN)
