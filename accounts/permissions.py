from rest_framework.permissions import BasePermission

from .models import Role


class HasAnyRole(BasePermission):
    """Authenticated and holding one of `roles` (subclass and set `roles`)."""

    roles: tuple[str, ...] = ()

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_role(*self.roles))


class IsAdmin(HasAnyRole):
    roles = (Role.ADMIN,)


class IsAdminOrOperator(HasAnyRole):
    roles = (Role.ADMIN, Role.IT_OPERATOR)


class IsOrganizerOrAdmin(HasAnyRole):
    roles = (Role.EVENT_ORGANIZER, Role.ADMIN)
