from django.contrib.auth.backends import ModelBackend

from .selectors import user_find_for_login


class UsernameOrEmailBackend(ModelBackend):
    """Admin-site login by username or email, case-insensitive."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user = user_find_for_login(identifier=username)
        if user is None:
            self.user_class_dummy_hash(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    @staticmethod
    def user_class_dummy_hash(password):
        from .models import User

        User().set_password(password)  # same cost as a real check: no user-existence timing oracle
