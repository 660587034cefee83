from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdminOrOperator
from bookings_project.content import MetadataInJSON, TextRenderer
from bookings_project.http import location
from bookings_project.openapi import error_responses, location_header
from bookings_project.validation import valid_data
from bookings_project.pagination import core_page

from bookings_project.errors import NotFound, ValidationFailed
from bookings_project.ratelimit import rate_limit

from .. import jobs, metrics, selectors, services
from ..models import JobType
from .authentication import CanReadMetrics, MetricsTokenAuthentication
from .serializers import (
    JobCreateSerializer,
    JobExecuteSerializer,
    JobListSerializer,
    JobQuerySerializer,
    JobSerializer,
    LogCreateSerializer,
    LogListSerializer,
    LogQuerySerializer,
    LogSerializer,
    NotificationRequestSerializer,
    QueuedSerializer,
    ReconciliationEventQueuedSerializer,
    ReconciliationEventSerializer,
    ReconciliationJobQuerySerializer,
    ReconciliationParamsSerializer,
)


class LogViewSet(viewsets.ViewSet):
    """/logs: anyone authenticated records an event; ADMIN/IT_OPERATOR read them."""

    def get_permissions(self):
        return [IsAdminOrOperator()] if self.action == "search" else [IsAuthenticated()]

    @extend_schema(summary="Record a log entry",
                   description="Any authenticated caller; the caller is recorded as `reportedBy`. Rate limited per "
                               "account.",
                   tags=["core: logs"], request=LogCreateSerializer,
                   responses={201: LogSerializer, **error_responses(400, 401, 429)})
    @rate_limit(group="logs", rate_setting="RATE_LIMIT_LOGS", per="user")
    def create(self, request):
        data = valid_data(LogCreateSerializer, request.data)
        entry = services.system_log_create(
            event_type=data["eventType"], severity=data["severity"], message=data["message"],
            user_id=data.get("userId") or None, ip_address=data.get("ipAddress"),
            additional_data=data.get("additionalData"), reported_by=request.user,
        )
        return Response(LogSerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Search log entries (ADMIN, IT_OPERATOR)",
                   description="Newest entries first; filters combine. Times without an offset are UTC; a bare date in "
                               "`to` includes that day.",
                   tags=["core: logs"], parameters=[LogQuerySerializer], operation_id="logs_list",
                   responses={200: LogListSerializer, **error_responses(400, 401, 403)})
    def search(self, request):  # not `list`: the core API answers an envelope, not an array
        q = valid_data(LogQuerySerializer, request.query_params)
        logs = selectors.log_list(date_from=q.get("from"), date_to=q.get("to"), event_type=q.get("eventType"),
                                  severity=q.get("severity"), user_id=q.get("userId"))
        return core_page(logs, q, LogSerializer, key="logs")


def _job_body(job, *, with_changes: bool = False) -> dict:
    return JobSerializer(job, context={"with_changes": with_changes}).data


class NotificationView(viewsets.ViewSet):
    permission_classes = [IsAdminOrOperator]

    @extend_schema(summary="Send a notification email (ADMIN, IT_OPERATOR)",
                   description="Queues an email from a known template; it is sent by the workers (GET /jobs/{jobId} "
                               "follows it).",
                   tags=["core: notifications"], request=NotificationRequestSerializer,
                   parameters=[location_header(202, "the job (GET /jobs/{jobId})")],
                   responses={202: QueuedSerializer, **error_responses(400, 401, 403)})
    def create(self, request):
        data = valid_data(NotificationRequestSerializer, request.data)
        job = jobs.job_create_notification(template=data["type"], recipient_email=data["recipient"],
                                           subject=data["data"].get("subject", ""),
                                           message=data["data"].get("message", ""),
                                           data=data["data"], actor=request.user)
        return Response({"jobId": str(job.pk), "status": job.status}, status=status.HTTP_202_ACCEPTED,
                        headers=location(request, "job-detail", pk=job.pk))


class JobViewSet(viewsets.ViewSet):
    """/jobs: ADMIN and IT_OPERATOR."""

    permission_classes = [IsAdminOrOperator]

    def _get(self, pk):
        job = selectors.job_get(job_id=pk)
        if job is None:
            raise NotFound("Job not found")
        return job

    @extend_schema(summary="Create a job (ADMIN, IT_OPERATOR)",
                   description="A NOTIFICATION job needs `notification`, a RECONCILIATION job `reconciliation`. The "
                               "job runs on the workers soon after; GET /jobs/{jobId} follows it.",
                   tags=["core: jobs"], request=JobCreateSerializer,
                   parameters=[location_header(202, "the job (GET /jobs/{jobId})")],
                   responses={202: JobSerializer, **error_responses(400, 401, 403)})
    def create(self, request):
        data = valid_data(JobCreateSerializer, request.data)
        job = jobs.job_create(job_type=data["type"], notification=data.get("notification"),
                              reconciliation=data.get("reconciliation"), actor=request.user)
        return Response(_job_body(job), status=status.HTTP_202_ACCEPTED,
                        headers=location(request, "job-detail", pk=job.pk))

    @extend_schema(summary="Search jobs (ADMIN, IT_OPERATOR)",
                   description="Newest jobs first; filters combine. Times without an offset are UTC; a bare date in "
                               "`to` includes that day.",
                   tags=["core: jobs"], parameters=[JobQuerySerializer], operation_id="jobs_list",
                   responses={200: JobListSerializer, **error_responses(400, 401, 403)})
    def search(self, request):
        q = valid_data(JobQuerySerializer, request.query_params)
        found = selectors.job_list(type=q.get("type"), status=q.get("status"),
                                   date_from=q.get("from"), date_to=q.get("to"))
        return core_page(found, q, JobSerializer, key="jobs")

    @extend_schema(summary="Get a job (ADMIN, IT_OPERATOR)",
                   description="A reconciliation job includes its structured list of `changes`.",
                   tags=["core: jobs"], responses={200: JobSerializer, **error_responses(401, 403, 404)})
    def retrieve(self, request, pk=None):
        return Response(_job_body(self._get(pk), with_changes=True))

    @extend_schema(summary="Run a job now (ADMIN, IT_OPERATOR)",
                   description="Runs a queued or failed job and returns its final state; a long reconciliation "
                               "answers `running` with its progress and the workers finish it. A running or completed "
                               "job is a 409. The body's `jobId` is optional; if sent it must be this job's.",
                   tags=["core: jobs"], request=JobExecuteSerializer,
                   responses={200: JobSerializer, **error_responses(400, 401, 403, 404, 409)})
    def execute(self, request, pk=None):
        job = self._get(pk)
        if request.data not in (None, {}):  # (no body, or an empty one: nothing to check)
            named = valid_data(JobExecuteSerializer, request.data).get("jobId")
            if named is not None and named.lower() != str(job.pk):  # (a job id is a UUID: any case)
                raise ValidationFailed("The body's jobId names another job than the path",
                                       fields={"jobId": [f"Must be this job's id ({job.pk}) or left out"]})
        job = jobs.job_execute(job_id=job.pk)
        return Response(_job_body(job, with_changes=True))


class ReconciliationViewSet(viewsets.ViewSet):
    """/reconciliation: ADMIN and IT_OPERATOR."""

    permission_classes = [IsAdminOrOperator]

    @extend_schema(summary="Reconcile documents (ADMIN, IT_OPERATOR)",
                   description="Queues a reconciliation job: one entity with `entityId`, else the whole type in "
                               "batches. `launch` is another name for `item`.",
                   tags=["core: reconciliation"], request=ReconciliationParamsSerializer,
                   parameters=[location_header(202, "the job (GET /jobs/{jobId})")],
                   responses={202: JobSerializer, **error_responses(400, 401, 403)})
    def create(self, request):
        data = valid_data(ReconciliationParamsSerializer, request.data)
        job = jobs.job_create_reconciliation(entity_type=data["entityType"], entity_id=data.get("entityId"),
                                             actor=request.user)
        return Response(_job_body(job), status=status.HTTP_202_ACCEPTED,
                        headers=location(request, "job-detail", pk=job.pk))

    @extend_schema(summary="Report a change on the customer side (ADMIN, IT_OPERATOR)",
                   description="Queues a reconciliation of that entity, run soon after without an execute call; "
                               "`eventId` is the job's id.",
                   tags=["core: reconciliation"], request=ReconciliationEventSerializer,
                   parameters=[location_header(202, "the job (GET /jobs/{jobId})")],
                   responses={202: ReconciliationEventQueuedSerializer, **error_responses(400, 401, 403)})
    def event(self, request):
        data = valid_data(ReconciliationEventSerializer, request.data)
        job = jobs.job_create_reconciliation(entity_type=data["entityType"], entity_id=data["entityId"],
                                             actor=request.user, trigger=f"event:{data['action']}")
        return Response({"eventId": str(job.pk), "status": job.status}, status=status.HTTP_202_ACCEPTED,
                        headers=location(request, "job-detail", pk=job.pk))

    @extend_schema(summary="Search reconciliation jobs (ADMIN, IT_OPERATOR)",
                   description="Like GET /jobs, for RECONCILIATION jobs only.",
                   tags=["core: reconciliation"], parameters=[ReconciliationJobQuerySerializer],
                   responses={200: JobListSerializer, **error_responses(400, 401, 403)})
    def jobs(self, request):
        q = valid_data(ReconciliationJobQuerySerializer, request.query_params)
        found = selectors.job_list(type=JobType.RECONCILIATION, status=q.get("status"),
                                   date_from=q.get("from"), date_to=q.get("to"))
        return core_page(found, q, JobSerializer, key="jobs")


class PrometheusTextRenderer(TextRenderer):
    media_type = "text/plain"
    format = "prometheus"
    # (with the exposition format's version, which scrapers look for)
    headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}

    def text(self, data) -> str:
        return data


METRICS_EXAMPLE = ('# HELP bookings_outbox_events Outbox events not delivered: ...\n# TYPE bookings_outbox_events gauge\n'
                   'bookings_outbox_events{status="PENDING"} 3\nbookings_outbox_events{status="DEAD"} 0\n')


class MetricsView(MetadataInJSON, APIView):
    """GET /metrics: ADMIN, IT_OPERATOR or the scraper's METRICS_TOKEN (ops.metrics)."""

    authentication_classes = (MetricsTokenAuthentication, *APIView.authentication_classes)
    permission_classes = (CanReadMetrics,)
    renderer_classes = (PrometheusTextRenderer,)

    @extend_schema(
        summary="Operational metrics for Prometheus (ADMIN, IT_OPERATOR, metrics scraper)",
        tags=["operations"],
        description="Prometheus text format 0.0.4, read from the databases when asked: outbox events PENDING "
                    "and DEAD and the age of the oldest due one, jobs queued/running/failed by type, when each "
                    "whole-type reconciliation last completed, and `bookings_dependency_up` per dependency (with "
                    "the relational database down, only that and `bookings_metrics_collect_seconds`). A scraper "
                    "sends `Authorization: Bearer <METRICS_TOKEN>`. Errors are JSON.",
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Prometheus text exposition",
                                                 examples=[OpenApiExample("metrics", value=METRICS_EXAMPLE,
                                                                          media_type="text/plain")]),
            **{(code, "application/json"): error for code, error in error_responses(401, 403).items()},
        },
    )
    def get(self, request):
        return Response(metrics.exposition(metrics.metrics_collect()))
