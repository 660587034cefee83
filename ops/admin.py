import json
from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from bookings_project.errors import ApplicationError, Conflict

from . import dispatch, jobs
from .models import Job, JobStatus, OutboxEvent, ReconciliationChange, SystemLog

# A refusal message lists this many of the refused objects, then "and N more".
REFUSED_LABELS_SHOWN = 5


def action_run_each(model_admin, request, objects, *, noun: str, done: str | None, change, label=str) -> list:
    """Run `change(obj)` (a service call) for each object and return what the calls returned.

    Every object changed gets an admin history entry naming the action (the object logged is
    what `change` returned if that is a model instance, else `obj`; `None` means nothing needed
    changing: no entry). ApplicationErrors are refusals: one error message per distinct reason,
    with a count and the first few labels, and no history. The successes get one summary
    message, `f"{count} {noun} {done}."`, unless `done` is None."""
    results, refused = [], defaultdict(list)
    for obj in objects:
        try:
            result = change(obj)
        except ApplicationError as exc:
            refused[exc.message].append(label(obj))
            continue
        results.append(result)
        if result is not None:
            action_log(model_admin, request, result if isinstance(result, models.Model) else obj)
    for reason, labels in refused.items():
        shown = ", ".join(labels[:REFUSED_LABELS_SHOWN])
        more = f" and {len(labels) - REFUSED_LABELS_SHOWN} more" if len(labels) > REFUSED_LABELS_SHOWN else ""
        model_admin.message_user(request, f"{len(labels)} {noun} not changed: {reason} ({shown}{more})",
                                 messages.ERROR)
    if results and done is not None:
        model_admin.message_user(request, f"{len(results)} {noun} {done}.", messages.SUCCESS)
    return results


def action_log(model_admin, request, obj) -> None:
    """An admin history entry on `obj` naming the action being run (from the posted form)."""
    action = model_admin.get_action(request.POST.get("action", ""))
    description = action[2] if action else request.POST.get("action", "")
    model_admin.log_change(request, obj, f"Ran the action “{description}”.")


def json_display(field: str, description: str):
    """A read-only field showing the JSON in `field` pretty-printed (escaped) in a <pre>."""
    @admin.display(description=description)
    def show(model_admin, obj):
        value = getattr(obj, field)
        # Keys sorted: PostgreSQL's jsonb keeps its own key order, SQLite the inserted one.
        return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False,
                                                       default=str))
    return show


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


@admin.register(SystemLog)
class SystemLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "severity", "event_type", "message", "user_id", "ip_address", "request_id")
    list_filter = ("severity", "event_type", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("message", "user_id", "ip_address", "request_id")
    date_hierarchy = "timestamp"
    fields = ("timestamp", "severity", "event_type", "message", "user_id", "ip_address", "request_id",
              "reported_by", "additional_data_pretty")
    readonly_fields = fields
    user_fields = ("reported_by",)
    list_per_page = 50
    show_full_result_count = False

    additional_data_pretty = json_display("additional_data", "additional data")
    reported_by_text = user_as_text("reported_by", "reported by")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_type", "recipient_email", "status", "retry_count",
                    "next_attempt_at", "processed_at", "short_error")
    list_filter = ("status", "event_type")
    search_fields = ("recipient_email", "id", "error_message")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = ("id", "event_type", "recipient_email", "status", "retry_count", "created_at", "next_attempt_at",
              "claimed_until", "processed_at", "error_message", "payload_pretty")
    readonly_fields = fields
    actions = ["retry_events"]
    list_per_page = 50
    show_full_result_count = False

    payload_pretty = json_display("payload", "payload")

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error_message or "")[:80]

    @admin.action(description="Retry selected events now (DEAD or pending)", permissions=["operate"])
    def retry_events(self, request, queryset):
        # One event per call, so the history names exactly the events revived.
        action_run_each(self, request, queryset.order_by("pk"), noun="event(s)",
                        done="queued for delivery", change=self._retry, label=lambda event: str(event.pk))

    @staticmethod
    def _retry(event):
        if not dispatch.outbox_retry(event_ids=[event.pk]):
            raise Conflict("already sent, or being delivered right now")
        return event


@admin.register(ReconciliationChange)
class ReconciliationChangeAdmin(ReadOnlyAdmin):
    list_display = ("job", "entity_type", "entity_id", "action", "field")
    list_filter = ("action", "entity_type")
    search_fields = ("entity_id", "job__id")
    list_select_related = ("job",)
    ordering = ("-id",)
    fields = ("job", "entity_type", "entity_id", "action", "field", "document_value_pretty",
              "relational_value_pretty")
    readonly_fields = fields
    list_per_page = 50

    document_value_pretty = json_display("document_value", "document value")
    relational_value_pretty = json_display("relational_value", "relational value")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "type", "status", "target", "attempts", "started_at", "completed_at", "summary")
    list_filter = ("type", "status")
    search_fields = ("id", "error_message")
    date_hierarchy = "created_at"
    fields = ("id", "type", "status", "params_pretty", "result_pretty", "error_message", "attempts", "created_by",
              "created_at", "updated_at", "started_at", "completed_at", "paused_at", "changes")
    readonly_fields = fields
    user_fields = ("created_by",)
    actions = ["execute_jobs"]
    list_per_page = 50

    # The job page shows this many reconciliation changes; the rest are one link away.
    CHANGES_SHOWN = 50

    params_pretty = json_display("params", "params")
    result_pretty = json_display("result", "result")
    created_by_text = user_as_text("created_by", "created by")

    @admin.display(description="target")
    def target(self, obj):
        p = obj.params
        if obj.type == "NOTIFICATION":
            return p.get("recipientEmail", "")
        return f"{p.get('entityType')}:{p.get('entityId') or 'all'}"

    @admin.display(description="result")
    def summary(self, obj):
        return obj.result.get("changesLog", "") if obj.result else (obj.error_message or "")[:80]

    @admin.display(description="reconciliation changes")
    def changes(self, obj):
        total = obj.changes.count()
        if not total:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (c.entity_type, c.entity_id, c.action, c.field, json.dumps(c.document_value, default=str),
             json.dumps(c.relational_value, default=str)) for c in obj.changes.all()[:self.CHANGES_SHOWN]))
        url = reverse("admin:ops_reconciliationchange_changelist", current_app=self.admin_site.name)
        return format_html(
            '<p><a href="{}?job__id__exact={}">All {} change(s) of this job</a>{}</p>'
            "<table><thead><tr><th>entity type</th><th>entity id</th><th>action</th><th>field</th>"
            "<th>document value</th><th>relational value</th></tr></thead><tbody>{}</tbody></table>",
            url, obj.pk, total, f" (the first {self.CHANGES_SHOWN} below)" if total > self.CHANGES_SHOWN else "",
            rows)

    @admin.action(description="Execute selected jobs now", permissions=["operate"])
    def execute_jobs(self, request, queryset):
        done = action_run_each(self, request, queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.FAILED]),
                               noun="job(s)", done=None, change=lambda job: jobs.job_execute(job_id=job.pk),
                               label=lambda job: str(job.pk))
        completed = sum(1 for j in done if j.status == JobStatus.COMPLETED)
        level = messages.SUCCESS if completed == len(done) else messages.WARNING
        self.message_user(request, f"{completed} of {len(done)} job(s) completed.", level)
