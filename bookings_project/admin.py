"""The project's admin site: Django's, with every registered ModelAdmin hardened against crafted
query strings, so no admin URL answers a 500 to input (a year 9999 in the date hierarchy, a
`__regex` lookup the database refuses, a tampered action selection, an empty `_to_field`).

Installed through `BookingsAdminConfig` (INSTALLED_APPS), so third-party registrations get the
same treatment as ours without being registered twice; the ones that would bypass the services
(groups, the token blacklist) are taken off the site once every app has registered.

Also the plumbing the apps' ModelAdmins share: ReadOnlyAdmin (records written by the system only),
action_run_each (an admin action calling a service per object, with history and refusal
messages), json_display and user_as_text (read-only fields).
"""

import json
import logging
import time
from collections import defaultdict

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, Error, models
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.text import smart_split, unescape_string_literal

from .db import distinct_values
from .errors import ApplicationError
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

    def get_object(self, request, object_id, from_field=None):
        # `?_to_field=` sent empty passes Django's to_field check (it checks a non-empty one) and
        # would then name no field here (a 500): it means the primary key, as no `_to_field` does.
        return super().get_object(request, object_id, from_field or None)

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        for inline in inlines:
            inline.view_on_site = False  # (their rows would link the unserved shortcut too)
        return inlines

    def get_view_on_site_url(self, obj=None):
        # The site serves no "view on site" shortcut (BookingsAdminSite.get_urls): a model that
        # gains a get_absolute_url must not make its change page reverse it (a 500).
        return self.view_on_site(obj) if obj is not None and callable(self.view_on_site) else None


SITE_NAME = "Booking platform"  # the admin's header, and the password reset page's


class BookingsAdminSite(admin.AdminSite):
    site_header = SITE_NAME
    site_title = f"{SITE_NAME} admin"
    index_title = "Operations"
    index_template = "admin/bookings_index.html"
    # The header's "Change password": through accounts.services, like the API.
    password_change_view = "accounts.admin.PasswordChangeView"

    @property
    def login_form(self):
        """Failed logins here are system log entries, as on the API (accounts.admin)."""
        return import_string("accounts.admin.AdminLoginForm")

    def login(self, request, extra_context=None):
        """Password attempts here count against the same per-IP login limit as the API's."""
        retry_after = None
        if request.method == "POST":
            retry_after = rate_limit_hit(request, group="login", rate_setting="RATE_LIMIT_LOGIN")
            # (read by AdminLoginForm, which then refuses before checking any password)
            request.login_retry_after = retry_after
        response = super().login(request, extra_context)
        if retry_after is not None and response.status_code == 200:  # the login page again, saying when
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

    def has_permission(self, request):
        """Staff access follows the roles (contract §3), checked here rather than through the
        `is_staff` column that User.save() derives from them: a row written around save() — a
        fixture loaded (loaddata writes raw), a bulk or SQL update of the roles — keeps a stale
        `is_staff`, which must not open the admin to an account holding neither staff role."""
        from accounts.models import STAFF_ROLES

        user = request.user
        return user.is_active and user.is_staff and user.has_role(*STAFF_ROLES)

    def index(self, request, extra_context=None):
        """The index, with the system's state on top for those who operate it (ops.status)."""
        from accounts.models import Role

        if request.user.is_active and request.user.has_role(Role.ADMIN, Role.IT_OPERATOR):
            extra_context = {**(extra_context or {}), "system_status": _system_status()}
        return super().index(request, extra_context)

    def password_change(self, request, extra_context=None):
        request.current_app = self.name
        return import_string(self.password_change_view).as_view(
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)

    def autocomplete_view(self, request):
        """Only for a relation some ModelAdmin here declares in `autocomplete_fields` (the only
        widget that calls it; none does today). Django's view searches the target of any relation
        of any model for any staff member who may view that target, and a reverse relation
        (`?app_label=ops&model_name=job&field_name=changes`) is a 500."""
        try:
            source = apps.get_model(request.GET.get("app_label", ""), request.GET.get("model_name", ""))
        except (LookupError, ValueError):
            raise PermissionDenied from None
        source_admin = self._registry.get(source)
        if source_admin is None or request.GET.get("field_name") not in source_admin.get_autocomplete_fields(request):
            raise PermissionDenied
        return super().autocomplete_view(request)

    def get_urls(self):
        # No "view on site" shortcut (r/<content type>/<id>/): no model has a get_absolute_url,
        # so it served only 404s, after loading a row of any model for any staff member (an IT
        # operator too) — and a 500 for a malformed UUID key, which it does not catch.
        return [url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"]

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, HardenedAdminMixin):
            admin_class = type(admin_class.__name__, (HardenedAdminMixin, admin_class), {})
        return super().register(model_or_iterable, admin_class, **options)


def _system_status() -> dict:
    from ops.status import status_report

    rows, problems = status_report()
    return {"rows": rows, "problems": [
        {"text": problem.text, "url": f"{reverse('admin:' + problem.changelist)}?{problem.query}"
         if problem.changelist else ""} for problem in problems]}


class BookingsAdminConfig(AdminConfig):
    default_site = "bookings_project.admin.BookingsAdminSite"

    def ready(self):
        super().ready()  # autodiscover: every app's admin module has registered
        for label in UNSERVED_MODELS:
            model = apps.get_model(label)
            if admin.site.is_registered(model):
                admin.site.unregister(model)


# --- Shared by the apps' ModelAdmins -----------------------------------------------------------

# A refusal message lists this many of the refused objects, then "and N more".
REFUSED_LABELS_SHOWN = 5


def action_run_each(model_admin, request, objects, *, noun: str, done: str | None, change, label=str,
                    unchanged: str = "nothing to change", deadline: float | None = None,
                    again: str = "run the action again") -> list:
    """Run `change(obj)` (a service call) for each object and return what the calls returned.

    Every object changed gets an admin history entry naming the action (the object logged is
    what `change` returned if that is a model instance, else `obj`). `None` means nothing needed
    changing: no entry, not counted as done, and one message saying so (`unchanged`: why).
    ApplicationErrors are refusals: one error message per distinct reason, with a count and the
    first few labels, and no history; so is a database error of one call (a lock wait timed out). The changes get one summary message,
    `f"{count} {noun} {done}."`, unless `done` is None.

    No object is started after `deadline` (time.monotonic(); default JOB_EXECUTE_SECONDS from
    now): those are refused, "not run: this page's N s were used up; <again>". So the page
    answers inside gunicorn's timeout however many rows are selected ("Select all 2,000" bookings
    of an event took a minute: the worker was killed halfway, the page a 502, and the history of
    the bookings already cancelled never written)."""
    if deadline is None:
        deadline = time.monotonic() + settings.JOB_EXECUTE_SECONDS
    out_of_time = f"not run: this page's {settings.JOB_EXECUTE_SECONDS} s were used up; {again}"
    results, changed, changed_labels, refused, same = [], [], [], defaultdict(list), []
    for obj in objects:
        if time.monotonic() >= deadline:
            refused[out_of_time].append(label(obj))
            continue
        try:
            result = change(obj)
        except ApplicationError as exc:
            refused[exc.message].append(label(obj))
            continue
        except Error as exc:  # (a DatabaseError, or an InterfaceError: the connection closed)
            # A lock wait or a statement that timed out, a deadlock (another page or request
            # holding the row), or the database failing: this object is not changed, and those
            # changed before it keep their history and count — not the page's "the selection was
            # not valid; nothing was changed" (HardenedAdminMixin.response_action), which the
            # error would otherwise reach.
            logger.warning("admin action on %s: %s failed: %s", model_admin.opts.label, label(obj), exc)
            refused[f"the database did not answer in time or failed; {again}"].append(label(obj))
            continue
        results.append(result)
        if result is None:
            same.append(label(obj))
        else:
            changed.append(result if isinstance(result, models.Model) else obj)
            changed_labels.append(label(obj))
    try:
        action_log(model_admin, request, changed)
        unrecorded = []
    except Error as exc:
        # The database gone meanwhile (its connection closed: every later query fails): what was
        # changed stays changed and is reported — not "nothing was changed" (HardenedAdminMixin).
        logger.warning("admin action on %s: history of %s object(s) not written: %s", model_admin.opts.label,
                       len(changed), exc)
        unrecorded = changed_labels
    action_report(model_admin, request, noun=noun, done=done, changed=len(changed), refused=refused)
    if unrecorded:
        model_admin.message_user(request, f"The admin history of the {len(unrecorded)} {noun} changed could not be "
                                          f"written (the database failed): {_labels(unrecorded)}",
                                 messages.ERROR)
    if same:
        model_admin.message_user(request, f"{len(same)} {noun} left as they were: {unchanged} ({_labels(same)})",
                                 messages.INFO)
    return results


def action_report(model_admin, request, *, noun: str, done: str | None, changed: int,
                  refused: dict[str, list[str]]) -> None:
    """An action's messages: one error per refusal reason (count and first labels), then
    `f"{changed} {noun} {done}."` when anything changed (and `done` is given)."""
    for reason, labels in refused.items():
        model_admin.message_user(request, f"{len(labels)} {noun} not changed: {reason} ({_labels(labels)})",
                                 messages.ERROR)
    if changed and done is not None:
        model_admin.message_user(request, f"{changed} {noun} {done}.", messages.SUCCESS)


def _labels(labels: list[str]) -> str:
    """The first few labels, then "and N more"."""
    more = f" and {len(labels) - REFUSED_LABELS_SHOWN} more" if len(labels) > REFUSED_LABELS_SHOWN else ""
    return ", ".join(labels[:REFUSED_LABELS_SHOWN]) + more


def action_log(model_admin, request, objects) -> None:
    """Admin history entries on `objects` naming the action being run (from the posted form),
    written in bulk (an action on thousands of rows writes one INSERT per 1,000)."""
    from django.contrib.admin.models import CHANGE, LogEntry

    action = model_admin.get_action(request.POST.get("action", ""))
    description = action[2] if action else request.POST.get("action", "")
    for start in range(0, len(objects), 1000):
        LogEntry.objects.log_actions(user_id=request.user.pk, queryset=objects[start:start + 1000],
                                     action_flag=CHANGE, change_message=f"Ran the action “{description}”.")


def json_display(field: str, description: str):
    """A read-only field showing the JSON in `field` pretty-printed (escaped) in a <pre>."""
    @admin.display(description=description)
    def show(model_admin, obj):
        value = getattr(obj, field)
        # Keys sorted: PostgreSQL's jsonb keeps its own key order, SQLite the inserted one.
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False,
                                                       default=str))
    return show


def indexed_values_filter(field: str, *, limit: int = 100):
    """A list filter on an indexed column, as Django's for `list_filter = (field,)` (the same URL
    parameter, `<field>__exact`), whose choices are read through the index
    (bookings_project.db.distinct_values) instead of a DISTINCT over every row; the first `limit`
    of them (a log's event type is any text a client sent). A value given in the URL filters
    whether listed or not."""

    class IndexedValuesFilter(admin.SimpleListFilter):
        title = field.replace("_", " ")
        parameter_name = f"{field}__exact"

        def lookups(self, request, model_admin):
            return [(value, value) for value in distinct_values(model_admin.model, field, limit=limit)]

        def queryset(self, request, queryset):
            value = self.value()
            return queryset if value is None else queryset.filter(**{field: value})

        def get_facet_counts(self, pk_attname, filtered_qs):
            # ("Show counts": a condition on the column, not SimpleListFilter's `pk IN (subquery)`
            # per value, which took 1.7 s on 1,000,000 log entries)
            return {f"{i}__c": models.Count(pk_attname, filter=models.Q(**{field: value}))
                    for i, (value, _title) in enumerate(self.lookup_choices)}

    return IndexedValuesFilter


def search_words(queryset, search_term: str, match):
    """`queryset` filtered as Django's admin search does (each word, or "quoted phrase", must
    match), each word's condition being `match(word)` (a Q): for searches whose fields Django's
    OR over joined columns would make a whole-table scan."""
    for term in smart_split(search_term):
        if term.startswith(('"', "'")) and term[0] == term[-1]:
            term = unescape_string_literal(term)
        queryset = queryset.filter(match(term))
    return queryset


def user_as_text(field: str, description: str):
    """A read-only field showing the user in `field` as "username (#id)", without a link."""
    @admin.display(description=description)
    def show(model_admin, obj):
        user = getattr(obj, field)
        return f"{user.username} (#{user.pk})" if user is not None else "-"
    return show


class ReadOnlyAdmin(admin.ModelAdmin):
    """Operational records are written by the system only."""

    # Foreign keys to users: Django's links to the user page for viewers who may open it, else
    # the `<field>_text` display (an IT operator gets a 403 behind such a link).
    user_fields = ()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        """Actions (retry, execute) run services, never edit a record: they need the model's
        change permission, which the "IT operators" group holds, while the forms stay read-only."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def get_fields(self, request, obj=None):
        return self._users_as_text(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        return self._users_as_text(request, super().get_readonly_fields(request, obj))

    def _users_as_text(self, request, names) -> list:
        if not self.user_fields:
            return list(names)
        user_admin = self.admin_site._registry.get(get_user_model())
        if user_admin is not None and user_admin.has_view_permission(request):
            return list(names)
        return [f"{name}_text" if name in self.user_fields else name for name in names]
