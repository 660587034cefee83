from django.contrib.auth.backends import ModelBackend

from .services import auth_check, auth_login_failed


class UsernameOrEmailBackend(ModelBackend):
    """Admin-site login by username or email, case-insensitive; a failure is a system log entry
    like a failed API login (contract §4: every failed login)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user, refused = auth_check(identifier=username, password=password)
        if refused is not None:
            auth_login_failed(user=user, reason=refused, request=request, via="admin")
            return None
        return user
