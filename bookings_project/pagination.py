"""Paging for both API surfaces.

Booking API lists are plain JSON arrays; `?page=&pageSize=` opts in to paging, reported in
`X-Total-Count` and `Link` headers. Core API lists always page, `{<items>, total, page, pageSize}`
(ops.api.views.core_page, with the page read by a list-query serializer).
"""

from urllib.parse import urlencode

from rest_framework.response import Response

from .errors import ValidationFailed

MAX_PAGE_SIZE = 100


def parse_page_params(request, *, default_size: int = 10, max_size: int = MAX_PAGE_SIZE) -> tuple[int, int]:
    fields = {}
    values = {}
    for name, default, upper in (("page", 1, None), ("pageSize", default_size, max_size)):
        raw = request.query_params.get(name)
        if raw is None:
            values[name] = default
            continue
        try:
            value = int(raw)
        except ValueError:
            fields[name] = ["Must be an integer"]
            continue
        if value < 1 or (upper is not None and value > upper):
            fields[name] = [f"Must be between 1 and {upper}" if upper else "Must be at least 1"]
            continue
        values[name] = value
    if fields:
        raise ValidationFailed("Invalid paging parameters", fields=fields)
    return values["page"], values["pageSize"]


def page_rows(queryset, page: int, size: int) -> tuple[int, list]:
    """(total, rows of page `page`). A page past the end is empty without asking the database,
    whose OFFSET would overflow for an absurd page number."""
    total = queryset.count()
    offset = (page - 1) * size
    return total, (list(queryset[offset: offset + size]) if offset < total else [])


def wants_paging(request) -> bool:
    return "page" in request.query_params or "pageSize" in request.query_params


def array_response(request, queryset, serialize, *, default_size: int = 20) -> Response:
    """Booking API list: the whole array, or one page with X-Total-Count/Link when asked."""
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
    params = {k: v for k, v in request.query_params.items()}
    for rel, number in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", last)):
        if 1 <= number <= last and not (rel == "prev" and page == 1) and not (rel == "next" and page >= last):
            params.update(page=number, pageSize=size)
            links.append(f'<{base}?{urlencode(params)}>; rel="{rel}"')
    if links:
        response["Link"] = ", ".join(links)
    return response

