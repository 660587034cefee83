from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from bookings_project.content import ExactJSONRenderer, MetadataInJSON
from bookings_project.openapi import error_responses
from bookings_project.pagination import ARRAY_PAGING, array_response
from bookings_project.validation import valid_data

from .. import selectors
from .renderers import CSV_HEADER, RevenueCSVRenderer
from .serializers import (RECOMMENDATION_DESCRIPTION, RecommendationQuerySerializer, RecommendedItemSerializer,
                          RevenueQuerySerializer, RevenueReportSerializer)

CSV_EXAMPLE = ",".join(CSV_HEADER) + "\r\n101,Spring Boot Workshop,149.97,3\r\n,TOTAL,149.97,3\r\n"


class RevenueReportView(MetadataInJSON, APIView):
    """GET /reports/revenue (ADMIN): JSON, or CSV with ?format=csv / Accept: text/csv."""

    permission_classes = (IsAdmin,)
    renderer_classes = (ExactJSONRenderer, RevenueCSVRenderer)

    @extend_schema(
        summary="Revenue report (ADMIN)",
        tags=["reports"], parameters=[RevenueQuerySerializer],
        description="Sum of `pricePaid` over CONFIRMED and COMPLETED bookings, by item, revenue descending "
                    "(ties by item id). `startDate`/`endDate` are inclusive days of the booking date in "
                    "TIME_ZONE. `?format=csv` returns the same rows as text/csv with a final total row "
                    "(empty itemId, itemName `TOTAL`). Errors are always JSON.",
        responses={
            (200, "application/json"): RevenueReportSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="Header itemId,itemName,itemRevenue,numberOfBookings; one row "
                                              "per item; a final total row",
                examples=[OpenApiExample("csv", value=CSV_EXAMPLE, media_type="text/csv")]),
            # Errors are JSON even for ?format=csv (bookings_project.errors.exception_handler).
            **{(code, ExactJSONRenderer.media_type): error for code, error in error_responses(400, 401, 403).items()},
        },
    )
    def get(self, request):
        filters = selectors.RevenueFilters(**valid_data(RevenueQuerySerializer, request.query_params))
        return Response(RevenueReportSerializer(selectors.revenue_by_item(filters=filters)).data)


class MyRecommendationsView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(summary="Recommended items for the caller",
                   tags=["recommendations"], parameters=[RecommendationQuerySerializer, *ARRAY_PAGING],
                   description=RECOMMENDATION_DESCRIPTION,
                   responses={200: RecommendedItemSerializer(many=True), **error_responses(400, 401)})
    def get(self, request):
        limit = valid_data(RecommendationQuerySerializer, request.query_params)["limit"]
        items = selectors.recommended_items(user=request.user, limit=limit)
        return array_response(request, items, lambda rows: RecommendedItemSerializer(rows, many=True).data)
