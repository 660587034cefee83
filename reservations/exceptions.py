from bookings_project.errors import ApplicationError, Conflict, NotFound
from bookings_project.transactions import CommitOutcomeUnknown


class BookingNotFound(NotFound):
    code = "booking_not_found"
    default_message = "Booking not found"


class ItemAlreadyStarted(ApplicationError):
    code = "item_already_started"
    status = 400
    default_message = "The item has already started and can no longer be booked"


class BookingTimeConflict(Conflict):
    code = "booking_time_conflict"
    default_message = "Time conflict: you already hold a confirmed booking that overlaps this item"


class BookingLimitReached(Conflict):
    code = "booking_limit_reached"
    default_message = "You hold the maximum number of upcoming bookings; cancel one to book another"


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"
    default_message = "This status change is not allowed"


class CompletionTooEarly(Conflict):
    code = "completion_too_early"
    default_message = "The item has not started yet: a booking can be completed once its item has started"


class CancellationTooLate(Conflict):
    code = "cancellation_too_late"
    default_message = "The item has already started: only an ADMIN can cancel this booking now"


class BookingOutcomeUnknown(CommitOutcomeUnknown):
    code = "booking_outcome_unknown"
    default_message = ("The database connection was lost while the booking was being saved: it may "
                       "or may not have been made. Retry with the same Idempotency-Key, or check "
                       "GET /api/v1/bookings/me before booking again")


class BookingKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used for a booking of another item or tier"
