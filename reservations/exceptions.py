from bookings_project.errors import ApplicationError, Conflict, NotFound
from bookings_project.transactions import CommitOutcomeUnknown


class BookingNotFound(NotFound):
    default_message = "Booking not found"


class ItemAlreadyStarted(ApplicationError):
    status = 400
    default_message = "The item has already started and can no longer be booked"


class BookingTimeConflict(Conflict):
    default_message = "Time conflict: you already hold a confirmed booking that overlaps this item"


class BookingLimitReached(Conflict):
    default_message = "You hold the maximum number of upcoming bookings; cancel one to book another"


class InvalidStatusTransition(Conflict):
    default_message = "This status change is not allowed"


class CompletionTooEarly(Conflict):
    default_message = "The item has not started yet: a booking can be completed once its item has started"


class CancellationTooLate(Conflict):
    default_message = "The item has already started: only an ADMIN can cancel this booking now"


class BookingOutcomeUnknown(CommitOutcomeUnknown):
    default_message = ("The database connection was lost while the booking was being saved: it may "
                       "or may not have been made. Retry with the same Idempotency-Key, or check "
                       "GET /api/v1/bookings/me before booking again")


class BookingKeyReused(Conflict):
    default_message = "This Idempotency-Key was already used for a booking of another item or tier"
