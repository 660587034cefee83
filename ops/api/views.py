from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.permissions import IsAdminOrOperator
from bookings_project.openapi import error_responses

from .. import selectors, services
from .serializers import LogCreateSerializer, LogListSerializer, LogQuerySerializer, LogSerializer


def core_page(queryset, query: dict, serializer_class, *, key: str) -> Response:
    """Core API list body {key: [...], total, page, pageSize} from a validated list query."""
    page, size = query["page"], query["pageSize"]
    total = queryset.count()
    rows = queryset[(page - 1) * size: page * size]
    return Response({key: serializer_class(rows, many=True).data, "total": total, "page": page, "pageSize": size})


class LogViewSet(viewsets.ViewSet):
    """/logs: anyone authenticated records an event; ADMIN/IT_OPERATOR read them."""

    def get_permissions(self):
        return [IsAdminOrOperator()] if self.action == "list" else [IsAuthenticated()]

    @extend_schema(tags=["core: logs"], request=LogCreateSerializer,
                   responses={201: LogSerializer, **error_responses(400, 401)})
    def create(self, request):
        serializer = LogCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        entry = services.log_event(
            event_type=data["eventType"], severity=data["severity"], message=data["message"],
            user_id=data.get("userId") or None, ip_address=data.get("ipAddress"),
            additional_data=data.get("additionalData"), reported_by=request.user,
        )
        return Response(LogSerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(tags=["core: logs"], parameters=[LogQuerySerializer],
                   responses={200: LogListSerializer, **error_responses(400, 401, 403)})
    def list(self, request):
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        logs = selectors.log_list(date_from=q.get("from"), date_to=q.get("to"), event_type=q.get("eventType"),
                                  severity=q.get("severity"), user_id=q.get("userId"))
        return core_page(logs, q, LogSerializer, key="logs")
