from django.http import HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOrganizerOrAdmin
from bookings_project.content import ExactJSONRenderer
from bookings_project.http import location, not_modified
from bookings_project.openapi import CONDITIONAL_GET, error_responses, location_header
from bookings_project.pagination import (ARRAY_PAGE_SIZE, ARRAY_PAGING, add_paging_headers, page_rows,
                                         parse_page_params, wants_paging)
from bookings_project.validation import no_body_expected, valid_data

from .. import selectors, services
from ..cache import cached_list
from .serializers import (AvailabilitySerializer, ItemFilterSerializer, ItemRequestSerializer, ItemResponseSerializer,
                          ItemUpdateSerializer)


def items_json(items) -> list[dict]:
    return ItemResponseSerializer(items, many=True).data


def item_json(request, item_id) -> dict:
    return ItemResponseSerializer(selectors.item_get_visible(actor=request.user, item_id=item_id)).data


class ItemCollectionView(APIView):
    """GET /items (public), POST /items (EVENT_ORGANIZER or ADMIN)."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsOrganizerOrAdmin()]

    @extend_schema(summary="List items",
                   description="Items the caller may see (public ones; also the caller's own private items, all for "
                               "an ADMIN), past ones included, by start time. Filters combine; `from`/`to` select "
                               "items overlapping [from, to). A plain array; `page`/`pageSize` opt in to paging "
                               "(X-Total-Count, Link). The answer carries an `ETag`: send it back as `If-None-Match` "
                               "and an unchanged list is a 304 without a body.",
                   tags=["items"], parameters=[ItemFilterSerializer, *ARRAY_PAGING, *CONDITIONAL_GET],
                   responses={200: ItemResponseSerializer(many=True),
                              304: OpenApiResponse(description="Not modified: the list is the one the If-None-Match "
                                                               "ETag names"),
                              **error_responses(400, 401)})
    def get(self, request):
        # No query string: the default filters (validating nothing costs a serializer per request).
        params = valid_data(ItemFilterSerializer, request.query_params) if request.query_params else {}
        if params.get("only_mine") and not request.user.is_authenticated:
            raise NotAuthenticated("onlyMyItems=true needs a token")
        filters = selectors.ItemFilters(**params)
        paging = parse_page_params(request, default_size=ARRAY_PAGE_SIZE) if wants_paging(request) else None
        scope, lister = selectors.item_list_scope(actor=request.user, filters=filters)

        def render() -> tuple[int, bytes]:
            items = selectors.item_list(actor=lister, filters=filters)
            total, rows = page_rows(items, *paging) if paging else (None, list(items))
            return (len(rows) if total is None else total), ExactJSONRenderer().render(items_json(rows))

        listed = cached_list((scope, filters, paging), render)
        if not_modified(request, listed.etag):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(listed.body, content_type="application/json")
        # (private: what a caller sees depends on who they are; no-cache: ask again each time,
        # a 304 when nothing changed)
        response["ETag"], response["Cache-Control"] = f'"{listed.etag}"', "private, no-cache"
        patch_vary_headers(response, ["Authorization"])
        if paging:
            add_paging_headers(response, request, total=listed.total, page=paging[0], size=paging[1])
        return response

    @extend_schema(summary="Create an item (EVENT_ORGANIZER, ADMIN)",
                   description="The caller becomes the organizer. `priceTiers` are sold in the listed order and their "
                               "`maxCapacity` values must sum to `capacity`; no tiers is a free item. An organizer "
                               "holds at most MAX_UPCOMING_ITEMS_PER_ORGANIZER items that have not ended (409 beyond; "
                               "ADMINs are not limited).",
                   tags=["items"], request=ItemRequestSerializer, parameters=[location_header(201, "the new item")],
                   responses={201: ItemResponseSerializer, **error_responses(400, 401, 403, 409)})
    def post(self, request):
        item = services.item_create(organizer=request.user, **valid_data(ItemRequestSerializer, request.data))
        return Response(item_json(request, item.pk), status=status.HTTP_201_CREATED,
                        headers=location(request, "item-detail", item_id=item.pk))


class ItemDetailView(APIView):
    """GET (public; private items only for organizer/ADMIN), PUT and DELETE (organizer or ADMIN)."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsOrganizerOrAdmin()]

    @extend_schema(summary="Get an item",
                   description="Private items answer 404 to everyone but their organizer and ADMINs.",
                   tags=["items"], responses={200: ItemResponseSerializer, **error_responses(404)})
    def get(self, request, item_id):
        return Response(item_json(request, item_id))

    @extend_schema(summary="Update an item (its organizer, ADMIN)",
                   description="Partial update: fields left out keep their value; `priceTiers`, when sent, is the "
                               "complete new list. Capacity cannot go below the seats already booked. Moving an item "
                               "emails its bookers.",
                   tags=["items"], request=ItemUpdateSerializer,
                   responses={200: ItemResponseSerializer, **error_responses(400, 401, 403, 404, 409)})
    def put(self, request, item_id):
        data = valid_data(ItemUpdateSerializer, request.data)
        services.item_update(actor=request.user, item_id=item_id, **data)
        return Response(item_json(request, item_id))

    @extend_schema(summary="Delete an item (its organizer, ADMIN)",
                   description="The item leaves the API; its upcoming active bookings are cancelled (each booker is "
                               "emailed); revenue history stays.",
                   tags=["items"], responses={204: None, **error_responses(400, 401, 403, 404)})
    def delete(self, request, item_id):
        no_body_expected(request)
        services.item_delete(actor=request.user, item_id=item_id, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemAvailabilityView(APIView):
    permission_classes = (AllowAny,)

    @extend_schema(summary="Seats of an item",
                   description="Total capacity, seats held by PENDING and CONFIRMED bookings, seats left.",
                   tags=["availability"], responses={200: AvailabilitySerializer, **error_responses(404)})
    def get(self, request, item_id):
        item = selectors.item_get_visible(actor=request.user, item_id=item_id)
        return Response(AvailabilitySerializer(item).data)
