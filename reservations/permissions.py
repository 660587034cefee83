from accounts.models import Role
from accounts.permissions import HasAnyRole


class CanBook(HasAnyRole):
    """Booking API customers: USER, EVENT_ORGANIZER and ADMIN may book (seed 004)."""

    roles = (Role.USER, Role.EVENT_ORGANIZER, Role.ADMIN)
