"""The user-row lock every writing service takes first (the project's lock order: user → item
→ booking → tier). Its own module, below accounts.services, so reservations and catalog can
take it without importing the account services (which build on reservations)."""

from .models import User


def user_lock(*, user_id) -> None:
    """Lock one user's row for the rest of the transaction, whatever state the row is in."""
    list(User.objects.select_for_update().filter(pk=user_id).values_list("pk"))
