from bookings_project.errors import ApplicationError, Conflict, Forbidden, ValidationFailed


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    status = 401
    default_message = "Invalid credentials"


class InvalidToken(ApplicationError):
    code = "invalid_token"
    status = 401
    default_message = "Invalid or expired token"


class DuplicateUser(Conflict):
    code = "duplicate_user"
    default_message = "A user with this username or email already exists"

    def __init__(self, field: str | None = None):
        """`field` ("username" or "email"), when known, is named in the message and in `fields`,
        so a client can show the conflict next to the input that caused it."""
        if field is None:
            super().__init__()
        else:
            super().__init__(f"A user with this {field} already exists",
                             fields={field: [f"This {field} is already taken"]})


class RoleNotAllowed(Forbidden):
    code = "role_not_allowed"
    default_message = ("Self-registration may only ask for USER or EVENT_ORGANIZER "
                       "(customer or supplier in the core API)")


class WrongCurrentPassword(ValidationFailed):
    code = "wrong_current_password"

    def __init__(self):
        super().__init__("Current password is wrong", fields={"currentPassword": ["Current password is wrong"]})


class InvalidResetLink(ValidationFailed):
    code = "invalid_reset_link"

    def __init__(self):
        super().__init__("This password reset link is invalid or has expired; ask for a new one",
                         fields={"token": ["Invalid or expired: ask for a new reset email"]})
