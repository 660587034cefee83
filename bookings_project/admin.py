"""The project's admin site: Django's, with every registered ModelAdmin hardened against crafted
query strings, so no admin URL answers a 500 to input (a year 9999 in the date hierarchy, a
`__regex` lookup the database refuses, a tampered action selection).

Installed through `BookingsAdminConfig` (INSTALLED_APPS), so third-party registrations get the
same treatment as ours without being registered twice; the ones that would bypass the services
(groups, the token blacklist) are taken off the site once every app has registered.
"""

import logging

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.module_loading import import_string

from .ratelimit import rate_limit_hit

logger = logging.getLogger(__name__)

# What a query string or an action selection can make the ORM or the database raise.
BAD_INPUT_ERRORS = (ValueError, OverflowError, ValidationError, DatabaseError)

# Third-party admin pages the site does not serve (docs/DECISIONS.md, "Admin site"):
# - auth.Group: roles are the access model; the "IT operators" group follows the IT_OPERATOR
#   role (accounts.services), and editing or deleting it would widen or end operators' access.
# - simplejwt's token blacklist: deleting a BlacklistedToken makes a used refresh token valid
#   again, and OutstandingToken rows hold live refresh tokens. Sessions end through a password
#   change or a deactivation (the tokens' password fingerprint).
UNSERVED_MODELS = ("auth.Group", "token_blacklist.BlacklistedToken", "token_blacklist.OutstandingToken")


class HardenedAdminMixin:
    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except BAD_INPUT_ERRORS as exc:  # the changelist answers "?e=1" (Django's invalid-filter page)
            raise IncorrectLookupParameters(exc) from exc

    def response_action(self, request, queryset):
        try:
            return super().response_action(request, queryset)
        except BAD_INPUT_ERRORS as exc:
            logger.warning("admin action on %s refused: %s", self.opts.label, exc)
            self.message_user(request, "The selection was not valid; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class BookingsAdminSite(admin.AdminSite):
    # The header's "Change password": through accounts.services, like the API.
    password_change_view = "accounts.admin.PasswordChangeView"

    def login(self, request, extra_context=None):
        """Password attempts here count against the same per-IP login limit as the API's."""
        if request.method == "POST":
            retry_after = rate_limit_hit(request, group="login", rate_setting="RATE_LIMIT_LOGIN")
            if retry_after is not None:
                response = HttpResponse(f"Too many login attempts; retry in {retry_after} s.", status=429,
                                        content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(retry_after)
                return response
        return super().login(request, extra_context)

    def password_change(self, request, extra_context=None):
        request.current_app = self.name
        return import_string(self.password_change_view).as_view(
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, HardenedAdminMixin):
            admin_class = type(admin_class.__name__, (HardenedAdminMixin, admin_class), {})
        return super().register(model_or_iterable, admin_class, **options)


class BookingsAdminConfig(AdminConfig):
    default_site = "bookings_project.admin.BookingsAdminSite"

    def ready(self):
        super().ready()  # autodiscover: every app's admin module has registered
        for label in UNSERVED_MODELS:
            model = apps.get_model(label)
            if admin.site.is_registered(model):
                admin.site.unregister(model)
