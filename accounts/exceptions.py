from bookings_project.errors import ApplicationError, Conflict, Forbidden, ValidationFailed


class InvalidCredentials(ApplicationError):
    status = 401
    default_message = "Invalid credentials"


class InvalidToken(ApplicationError):
    status = 401
    default_message = "Invalid or expired token"


class DuplicateUser(Conflict):
    default_message = "A user with this username or email already exists"


class RoleNotAllowed(Forbidden):
    default_message = ("Self-registration may only ask for USER or EVENT_ORGANIZER "
                       "(customer or supplier in the core API)")


class WrongCurrentPassword(ValidationFailed):
    def __init__(self):
        super().__init__("Current password is wrong", fields={"currentPassword": ["Current password is wrong"]})
