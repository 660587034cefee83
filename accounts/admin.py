"""Users in the Django admin (ADMIN only). Roles, activation and group membership change only
through the admin actions, which call accounts.services like the API does; no page shows a
password or its hash."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import connections
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from bookings_project.admin import action_run_each
from bookings_project.errors import ApplicationError
from reservations.selectors import booking_upcoming_active_counts

from . import password_reset, services
from .models import STAFF_ROLES, Role, User
from .selectors import normalized_email, normalized_username, user_name_taken


class RoleListFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request, model_admin):
        return Role.choices

    def queryset(self, request, queryset):
        role = self.value()
        if role not in Role.values:
            return queryset
        if connections[queryset.db].features.supports_json_field_contains:
            return queryset.filter(roles__contains=[role])
        # SQLite has no JSON containment; roles are stored as a JSON list of quoted names, and no
        # role name is a part of another once quoted.
        return queryset.filter(roles__icontains=f'"{role}"')


class UserChangeForm(auth_forms.UserChangeForm):
    """Usernames and emails are unique whatever their case: say so plainly (the database
    constraints on lower() would otherwise show their names). Each is checked as it is stored
    (NFKC-normalized, the email lowercased: accounts.selectors), so "taken@ＥＸＡＭＰＬＥ.com" is
    taken@example.com's here too, not a form that saves and then a service error."""

    NORMALIZED = {"username": normalized_username, "email": normalized_email}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Each field sends back the value the page showed (a hidden "initial-" input), so
        # changed_data is what this admin changed, not whatever differs from the row by the time
        # the form is saved (UserAdmin.save_model writes only that: a user's own change made
        # while the page was open stays).
        for field in self.fields.values():
            field.show_hidden_initial = True

    def _get_validation_exclusions(self):
        # A field sent back as the page showed it is not written (UserAdmin.save_model): the
        # model's unique checks skip it too, as the clean_ methods do. The user may have renamed
        # themselves meanwhile, and a newcomer taken the old name: that is no error of this page.
        return super()._get_validation_exclusions() | {name for name in self.NORMALIZED if name not in self.changed_data}

    def clean_username(self):
        return self._unique_whatever_case("username")

    def clean_email(self):
        return self._unique_whatever_case("email")

    def _unique_whatever_case(self, field: str) -> str:
        value, normalized = self.cleaned_data[field], self.NORMALIZED[field]
        if field not in self.changed_data:  # (as the page showed it: not written, so not checked again)
            return value
        stored = getattr(self.instance, field, None)
        if value and stored and normalized(value) == normalized(stored):
            return stored  # (unchanged: one stored before NFKC normalization keeps its form; the service agrees)
        value = normalized(value) if value else value
        if value and user_name_taken(field=field, value=value, exclude_pk=self.instance.pk):
            raise forms.ValidationError(f"A user with this {field} already exists")  # (the service's words)
        return value


class _SaveRefused(Exception):
    """UserAdmin.save_model's service refused the change (UserAdmin.changeform_view answers it)."""

    def __init__(self, *, username: str, message: str):
        super().__init__(message)
        self.username, self.message = username, message


class ServicePasswordChangeForm(AdminPasswordChangeForm):
    """Django's form, but the current password is checked by the service (limited per account
    and every wrong guess logged, as in the API), not by the form."""

    def clean_old_password(self):
        return self.cleaned_data["old_password"]


def _role_action(role: str, *, grant: bool):
    """The admin action "Grant <role>" or "Revoke <role>" (UserAdmin._change_role)."""
    verb = "Grant" if grant else "Revoke"

    @admin.action(description=f"{verb} {role}", permissions=["change"])
    def action(model_admin, request, queryset):
        model_admin._change_role(request, queryset, role, grant=grant)

    action.__name__ = f"{verb.lower()}_{role.lower()}"
    return action


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form (BookingsAdminSite.login_form). Good credentials of an account the
    admin does not admit (no ADMIN or IT_OPERATOR role) are a failed login too, and logged as one
    (wrong credentials are logged by accounts.backends)."""

    def clean(self):
        retry_after = getattr(self.request, "login_retry_after", None)  # BookingsAdminSite.login
        if retry_after is not None:
            raise forms.ValidationError(f"Too many login attempts from your address; try again in {retry_after} s.",
                                        code="throttled")
        return super().clean()

    def confirm_login_allowed(self, user):
        try:
            super().confirm_login_allowed(user)
            if not user.has_role(*STAFF_ROLES):  # (a stale is_staff: BookingsAdminSite.has_permission)
                raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                            params={"username": self.username_field.verbose_name})
        except forms.ValidationError:
            services.auth_login_failed(user=user, reason="Not allowed in the admin", request=self.request,
                                       via="admin")
            raise


class PasswordChangeView(auth_views.PasswordChangeView):
    """The admin's "Change password" (BookingsAdminSite.password_change_view): the service the API
    uses (validators, the current-password check and its limit, the AUTH logs, every token
    ended), keeping this session."""

    form_class = ServicePasswordChangeForm
    SERVICE_FIELDS = {"currentPassword": "old_password", "password": "new_password2"}

    def form_valid(self, form):
        try:
            user = services.user_update(actor=self.request.user, user=self.request.user,
                                        password=form.cleaned_data["new_password1"],
                                        current_password=form.cleaned_data["old_password"], request=self.request)
        except ApplicationError as exc:
            for name, errors in (exc.fields or {None: [exc.message]}).items():
                form.add_error(self.SERVICE_FIELDS.get(name), errors)
            return self.form_invalid(form)
        update_session_auth_hash(self.request, user)
        return HttpResponseRedirect(self.get_success_url())


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    list_display = ("username", "email", "role_list", "is_active", "date_joined")
    list_filter = (RoleListFilter, "is_active")
    search_fields = ("username", "email")
    ordering = ("username",)
    date_hierarchy = "date_joined"
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("username", "email")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Emails", {"fields": ("booking_reminders",)}),
        ("Access (change with the actions on the user list)",
         {"fields": ("roles", "is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("roles", "is_active", "is_staff", "is_superuser", "groups", "last_login",
                       "date_joined")
    actions = ["grant_event_organizer", "grant_it_operator", "grant_admin", "revoke_event_organizer",
               "revoke_it_operator", "revoke_admin", "send_password_reset", "deactivate"]

    @admin.display(description="roles", ordering="roles")
    def role_list(self, obj):
        return ", ".join(obj.roles)

    def has_add_permission(self, request):
        return False  # accounts come from registration (API); ADMINs then grant roles here

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: history and revenue stay

    def get_urls(self):
        # No admin-side password setting: passwords change through the API (checked and logged).
        return [url for url in super().get_urls() if url.name != "auth_user_password_change"]

    def has_change_permission(self, request, obj=None):
        # A deactivated account keeps its history as it was: its page is view-only.
        return super().has_change_permission(request, obj) and (obj is None or obj.is_active)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":  # a form opened before the deactivation: one message, no save
            user = self.get_object(request, unquote(object_id))
            if user is not None and not user.is_active and self.has_view_permission(request, user):
                self.message_user(request, f"{user.username} is deactivated; nothing was changed.", messages.ERROR)
                return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    PROFILE_FIELDS = ("username", "email", "first_name", "last_name", "booking_reminders")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveRefused as refused:  # (raised in Django's transaction: its history entry is not written)
            self.message_user(request, f"{refused.username}: {refused.message}; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def save_model(self, request, obj, form, change):
        """Through the service (normalisation, uniqueness, logging, the row's lock), and only the
        fields this admin changed on the page (UserChangeForm): the form sends back every field,
        and writing those the user changed meanwhile undid their change (an email back to the
        old address, reminders back on). A refusal (deactivated, or the signed-in ADMIN demoted,
        meanwhile) is one error message and the change page again: no "changed successfully",
        no history entry of a change not made."""
        changed = {name: getattr(obj, name) for name in self.PROFILE_FIELDS if name in form.changed_data}
        try:
            services.user_update(actor=request.user, user=obj, **changed, request=request)
        except ApplicationError as exc:
            raise _SaveRefused(username=form.initial.get("username", obj.username), message=exc.message) from exc

    def _apply(self, request, queryset, done: str, change, unchanged: str) -> None:
        action_run_each(self, request, queryset.order_by("pk"), noun="user(s)", done=done, change=change,
                        label=lambda user: user.username, unchanged=unchanged)

    def _change_role(self, request, queryset, role: str, *, grant: bool) -> None:
        actor = request.user
        service = services.user_grant_role if grant else services.user_revoke_role

        def change(user):
            updated = service(actor=actor, user=user, role=role, request=request)
            return updated if updated.roles != user.roles else None  # nothing to change: no history

        if grant:
            self._apply(request, queryset, f"now hold {role}", change, unchanged=f"held {role} already")
        else:
            self._apply(request, queryset, f"no longer hold {role}", change, unchanged=f"did not hold {role}")

    grant_event_organizer = _role_action(Role.EVENT_ORGANIZER, grant=True)
    grant_it_operator = _role_action(Role.IT_OPERATOR, grant=True)
    grant_admin = _role_action(Role.ADMIN, grant=True)
    revoke_event_organizer = _role_action(Role.EVENT_ORGANIZER, grant=False)
    revoke_it_operator = _role_action(Role.IT_OPERATOR, grant=False)
    revoke_admin = _role_action(Role.ADMIN, grant=False)

    @admin.action(description="Send a password reset email", permissions=["change"])
    def send_password_reset(self, request, queryset):
        """Support for a locked-out customer without anyone knowing or setting their password
        (the admin sets none): the same email as POST /api/v1/auth/password-reset."""
        actor = request.user
        self._apply(request, queryset, "sent a password reset email",
                    lambda user: user if password_reset.password_reset_send(user=user, actor=actor, request=request) else None,
                    unchanged="one was sent less than a minute ago")

    DEACTIVATE_MAX = 500  # per confirmation page: its form posts each id (DATA_UPLOAD_MAX_NUMBER_FIELDS)

    @admin.action(description="Deactivate (cancels their future bookings)", permissions=["change"])
    def deactivate(self, request, queryset):
        """Asks first (like a delete): it cannot be undone here, and it emails every customer
        whose booking it cancels."""
        if request.POST.get("post") != "yes":
            # A bounded page: "select all" over a whole list loaded every account with its
            # counts (2 s, 1.7 MB for 11,000 users), and the page's own POST of every id then
            # broke Django's 1,000-field limit (a 400) — nothing could be confirmed anyway.
            count = queryset.count()
            if count > self.DEACTIVATE_MAX:
                self.message_user(request, f"{count} users selected; deactivate at most {self.DEACTIVATE_MAX} at a "
                                           "time (narrow the list with a search or a filter). Nothing was changed.",
                                  messages.ERROR)
                return None
            users = list(queryset.order_by("pk"))
            upcoming = booking_upcoming_active_counts(user_ids=[user.pk for user in users])
            return TemplateResponse(request, "admin/accounts/user/deactivate_confirmation.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Deactivate users",
                "rows": [(user, upcoming.get(user.pk, 0)) for user in users],
                "action_checkbox_name": ACTION_CHECKBOX_NAME})
        actor = request.user

        def deactivate(user):
            updated = services.user_deactivate(actor=actor, user=user, request=request)
            return updated if user.is_active else None  # deactivated already: no history

        self._apply(request, queryset, "deactivated", deactivate, unchanged="deactivated already")
