import ipaddress
import json
import logging
import time
import uuid

from django.conf import settings
from django.contrib import admin, messages
from django.db import Error
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from bookings_project.admin import (ReadOnlyAdmin, action_log, action_report, action_run_each, indexed_values_filter,
                                    json_display, search_words, user_as_text)

from . import jobs, outbox
from .models import Job, JobStatus, OutboxEvent, ReconciliationChange, SystemLog

logger = logging.getLogger(__name__)


class SourceListFilter(admin.SimpleListFilter):
    """The system's own entries (a failed login …) or those an account reported: any account may
    POST /logs an entry naming anyone (docs/SECURITY.md, known limits)."""

    title = "reported by"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return (("system", "The system"), ("account", "An account (POST /logs, an action)"))

    def queryset(self, request, queryset):
        if self.value() in ("system", "account"):
            return queryset.filter(reported_by__isnull=self.value() == "system")
        return queryset


@admin.register(SystemLog)
class SystemLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "severity", "event_type", "message", "user_id", "ip_address", "source",
                    "request_id")
    list_filter = ("severity", indexed_values_filter("event_type"), SourceListFilter,
                   ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("reported_by",)
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

    def get_search_results(self, request, queryset, search_term):
        """Each word is a part of the message, or a whole user id, request id or IP address (one
        copied from a log line or a response's X-Request-ID): comparing those four as substrings,
        each upper-cased and the address turned into text for every row, cost twice the scan of
        the messages alone (0.55 s against 0.2 s per query at 1,000,000 entries)."""
        def match(term):
            found = Q(message__icontains=term) | Q(user_id=term) | Q(request_id=term)
            try:
                return found | Q(ip_address=str(ipaddress.ip_address(term)))
            except ValueError:
                return found

        return search_words(queryset, search_term, match), False

    @admin.display(description="reported by")
    def source(self, obj):
        return "system" if obj.reported_by_id is None else self.reported_by_text(obj)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_type", "recipient_email", "status", "retry_count",
                    "next_attempt_at", "processed_at", "short_error")
    list_filter = ("status", indexed_values_filter("event_type"))
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
        # In bulk (a retry of every DEAD event after a long outage is thousands of rows); the
        # history names exactly the events revived, written with each chunk revived.
        # A chunk that fails (a lock wait timed out, the database went away) leaves the chunks
        # before it revived and recorded: the page counts them and names the rest, rather than
        # the error reaching "The selection was not valid; nothing was changed" (HardenedAdminMixin).
        selected = {event.pk: event for event in queryset.order_by("pk")}
        revived = set()

        def on_revived(ids):
            action_log(self, request, [selected[pk] for pk in ids])
            revived.update(ids)  # (the chunk's last step: its transaction commits next)

        reason = "already sent or queued, or being delivered right now"
        try:
            outbox.outbox_retry(event_ids=list(selected), on_revived=on_revived)
        except Error as exc:  # (a DatabaseError, or an InterfaceError: the connection closed)
            logger.warning("outbox retry failed midway: %s", exc)
            reason = "the database failed midway (or these were already sent or queued); run the action again"
        left = [str(pk) for pk in selected if pk not in revived]
        action_report(self, request, noun="event(s)", done="queued for delivery", changed=len(revived),
                      refused={reason: left} if left else {})


@admin.register(ReconciliationChange)
class ReconciliationChangeAdmin(ReadOnlyAdmin):
    list_display = ("job", "entity_type", "entity_id", "action", "field")
    # The entity types through the (entity_type, entity_id) index: Django's filter on a column
    # without choices reads `SELECT DISTINCT` of every change row for each page.
    list_filter = ("action", indexed_values_filter("entity_type"))
    show_full_result_count = False  # (a second COUNT over every change row on each searched/filtered page)
    search_fields = ("entity_id", "job__id")
    list_select_related = ("job",)
    ordering = ("-id",)
    fields = ("job", "entity_type", "entity_id", "action", "field", "document_value_pretty",
              "relational_value_pretty")
    readonly_fields = fields
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        """A *whole* job id (as copied from GET /jobs) or entity id, each through its index: a
        substring of either (`UPPER(job_id::text) LIKE …`) scanned every change row twice, the
        page and its count (1 s at 210,000 rows; a whole-type run records one per field)."""
        types = sorted(set(jobs.ENTITY_TYPES.values()))  # as recorded: "launch" is stored as "item"

        def match(term):
            found = Q(entity_type__in=types, entity_id=term)
            try:
                found |= Q(job_id=uuid.UUID(term))
            except ValueError:
                pass
            return found

        return search_words(queryset, search_term, match), False

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
        # Each job as PUT /jobs/{id}/execute runs it (one that cannot run says why: running,
        # completed), within one JOB_EXECUTE_SECONDS for them all: a long job running at the
        # deadline answers `running` and goes on in slices on the workers, and no job is started
        # after it (an email job cannot be cut short), so the page answers inside gunicorn's
        # timeout however many are selected (give or take one EMAIL_TIMEOUT).
        # (action_run_each starts no job after the deadline: an email job ignores it once started)
        deadline = time.monotonic() + settings.JOB_EXECUTE_SECONDS
        done = action_run_each(self, request, queryset.order_by("created_at"), noun="job(s)", done=None,
                               change=lambda job: jobs.job_execute(job_id=job.pk, deadline=deadline),
                               label=lambda job: str(job.pk), deadline=deadline, again="execute it again")
        if not done:
            return
        completed = sum(1 for j in done if j.status == JobStatus.COMPLETED)
        running = sum(1 for j in done if j.status == JobStatus.RUNNING)
        level = messages.SUCCESS if completed == len(done) else messages.WARNING
        still = f"; {running} still running on the workers (see their status)" if running else ""
        self.message_user(request, f"{completed} of {len(done)} job(s) completed{still}.", level)
