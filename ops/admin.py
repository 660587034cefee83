from django.contrib import admin, messages

from bookings_project.errors import ApplicationError

from . import dispatch, jobs
from .models import Job, JobStatus, OutboxEvent, ReconciliationChange, SystemLog


def action_run_each(model_admin, request, objects, *, done: str, change, label=str) -> int:
    """Run `change(obj)` (a service call) for each object; every ApplicationError becomes an
    error message naming the object, the successes one summary message. Returns the successes."""
    succeeded = 0
    for obj in objects:
        try:
            change(obj)
        except ApplicationError as exc:
            model_admin.message_user(request, f"{label(obj)}: {exc.message}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        model_admin.message_user(request, f"{succeeded} {done}.", messages.SUCCESS)
    return succeeded


class ReadOnlyAdmin(admin.ModelAdmin):
    """Operational records are written by the system only."""

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


@admin.register(SystemLog)
class SystemLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "severity", "event_type", "message", "user_id", "ip_address", "request_id")
    list_filter = ("severity", "event_type", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("message", "user_id", "ip_address", "request_id")
    date_hierarchy = "timestamp"
    list_per_page = 50
    show_full_result_count = False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_type", "recipient_email", "status", "retry_count",
                    "next_attempt_at", "processed_at", "short_error")
    list_filter = ("status", "event_type")
    search_fields = ("recipient_email", "id", "error_message")
    date_hierarchy = "created_at"
    actions = ["retry_events"]
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error_message or "")[:80]

    @admin.action(description="Retry selected events now (DEAD or pending)", permissions=["operate"])
    def retry_events(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = dispatch.outbox_retry(event_ids=selected)
        self.message_user(request, f"{count} event(s) queued for delivery.", messages.SUCCESS)
        if len(selected) > count:
            self.message_user(request, f"{len(selected) - count} event(s) left alone: already sent, or being "
                                       "delivered right now.", messages.WARNING)


class ReconciliationChangeInline(admin.TabularInline):
    model = ReconciliationChange
    extra = 0
    can_delete = False
    fields = ("entity_type", "entity_id", "action", "field", "document_value", "relational_value")
    readonly_fields = fields
    max_num = 0

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ReconciliationChange)
class ReconciliationChangeAdmin(ReadOnlyAdmin):
    list_display = ("job", "entity_type", "entity_id", "action", "field")
    list_filter = ("action", "entity_type")
    search_fields = ("entity_id", "job__id")
    list_select_related = ("job",)
    list_per_page = 50


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "type", "status", "target", "attempts", "started_at", "completed_at", "summary")
    list_filter = ("type", "status")
    search_fields = ("id", "error_message")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "type", "status", "params", "result", "error_message", "attempts", "created_by",
                       "created_at", "updated_at", "started_at", "completed_at")
    inlines = [ReconciliationChangeInline]
    actions = ["execute_jobs"]
    list_per_page = 50

    @admin.display(description="target")
    def target(self, obj):
        p = obj.params
        if obj.type == "NOTIFICATION":
            return p.get("recipientEmail", "")
        return f"{p.get('entityType')}:{p.get('entityId') or 'all'}"

    @admin.display(description="result")
    def summary(self, obj):
        return obj.result.get("changesLog", "") if obj.result else (obj.error_message or "")[:80]

    @admin.action(description="Execute selected jobs now", permissions=["operate"])
    def execute_jobs(self, request, queryset):
        done = []
        for job in queryset.filter(status__in=[JobStatus.QUEUED, JobStatus.FAILED]):
            try:
                done.append(jobs.job_execute(job_id=job.pk))
            except ApplicationError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", messages.WARNING)
        completed = sum(1 for j in done if j.status == JobStatus.COMPLETED)
        level = messages.SUCCESS if completed == len(done) else messages.WARNING
        self.message_user(request, f"{completed} of {len(done)} job(s) completed.", level)
