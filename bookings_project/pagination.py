"""Paging for both API surfaces.

Booking API lists are plain JSON arrays; `?page=&pageSize=` opts in to paging, reported in
`X-Total-Count` and `Link` headers. Core API lists always page, `{<items>, total, page, pageSize}`
(core_page, with the page read by a list-query serializer).
"""

from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.response import Response

from .validation import valid_data

MAX_PAGE_SIZE = 100


class PageQuerySerializer(serializers.Serializer):
    """`page` (from 1) and `pageSize` (1–100): the paging query of every list, both APIs."""

    page = serializers.IntegerField(required=False, min_value=1, default=1)
    pageSize = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=10)


ARRAY_PAGE_SIZE = 20

# OpenAPI of a booking API list's opt-in paging: its two query parameters and, on a paged
# answer, its two headers.
ARRAY_PAGING = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1, "default": 1},
                     description="Opt in to paging: the page, from 1"),
    OpenApiParameter("pageSize",
                     {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": ARRAY_PAGE_SIZE},
                     description=f"Opt in to paging: rows per page, 1–{MAX_PAGE_SIZE} (default {ARRAY_PAGE_SIZE})"),
    OpenApiParameter("X-Total-Count", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200],
                     description="Paged answers only: rows in the whole list"),
    OpenApiParameter("Link", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                     description='Paged answers only: first/prev/next/last pages (RFC 8288, `<url>; rel="next"`)'),
]


def parse_page_params(request, *, default_size: int = 10) -> tuple[int, int]:
    """(page, pageSize) of a booking API list; pageSize defaults to `default_size`."""
    query = valid_data(PageQuerySerializer, request.query_params)
    return query["page"], query["pageSize"] if "pageSize" in request.query_params else default_size


def page_rows(queryset, page: int, size: int) -> tuple[int, list]:
    """(total, rows of page `page`). A page past the end is empty without asking the database,
    whose OFFSET would overflow for an absurd page number."""
    total = len(queryset) if isinstance(queryset, list) else queryset.count()
    offset = (page - 1) * size
    return total, (list(queryset[offset: offset + size]) if offset < total else [])


def wants_paging(request) -> bool:
    return "page" in request.query_params or "pageSize" in request.query_params


def array_response(request, queryset, serialize, *, default_size: int = ARRAY_PAGE_SIZE) -> Response:
    """Booking API list (a queryset, or a list already computed): the whole array, or one page
    with X-Total-Count/Link when asked."""
    if not wants_paging(request):
        return Response(serialize(list(queryset)))
    page, size = parse_page_params(request, default_size=default_size)
    total, rows = page_rows(queryset, page, size)
    return add_paging_headers(Response(serialize(rows)), request, total=total, page=page, size=size)


def add_paging_headers(response, request, *, total: int, page: int, size: int):
    """X-Total-Count and Link (first/prev/next/last) for one page of a booking API list."""
    response["X-Total-Count"] = str(total)
    last = max(1, -(-total // size))
    links = []
    base = request.build_absolute_uri(request.path)
    # Every value of a repeated parameter (`status=CONFIRMED&status=PENDING`): items() keeps the last only.
    params = dict(request.query_params.lists())
    for rel, number in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", last)):
        if 1 <= number <= last and not (rel == "prev" and page == 1) and not (rel == "next" and page >= last):
            params.update(page=[number], pageSize=[size])
            links.append(f'<{base}?{urlencode(params, doseq=True)}>; rel="{rel}"')
    if links:
        response["Link"] = ", ".join(links)
    return response


def core_page(queryset, query: dict, serializer_class, *, key: str) -> Response:
    """Core API list body {key: [...], total, page, pageSize} from a validated list query."""
    page, size = query["page"], query["pageSize"]
    total, rows = page_rows(queryset, page, size)
    return Response({key: serializer_class(rows, many=True).data, "total": total, "page": page, "pageSize": size})

