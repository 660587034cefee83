"""The password reset page a reset email links to (Django's own views and the admin's templates),
for people with a browser and no app; API clients use POST /api/v1/auth/password-reset/confirm."""

from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.urls import reverse_lazy

from bookings_project.admin import SITE_NAME
from bookings_project.errors import ValidationFailed

from . import password_reset

BRANDED = {"site_header": SITE_NAME, "site_title": SITE_NAME}  # (not "Django administration")


class PasswordResetPage(auth_views.PasswordResetConfirmView):
    """Django's page (the link's token moves into the session, then a new-password form), with
    the password set by accounts.password_reset like the API's: under the account's lock, the link
    checked again there, the change logged."""

    success_url = reverse_lazy("password-reset-done")
    token_generator = password_reset.reset_token_generator
    extra_context = BRANDED

    def form_valid(self, form):
        token = self.request.session.get(auth_views.INTERNAL_RESET_SESSION_TOKEN)
        try:
            password_reset.password_reset_complete(uidb64=self.kwargs["uidb64"], token=token,
                                                   password=form.cleaned_data["new_password1"], request=self.request)
        except ValidationFailed as exc:  # (used meanwhile through the API, or too weak)
            form.add_error(None, exc.message)
            return self.form_invalid(form)
        self.request.session.pop(auth_views.INTERNAL_RESET_SESSION_TOKEN, None)
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDonePage(auth_views.PasswordResetCompleteView):
    extra_context = BRANDED
