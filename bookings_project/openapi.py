"""Shared OpenAPI pieces: every documented endpoint lists its error statuses with the envelope."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    error = serializers.CharField(help_text="The status's name (`conflict`)")
    code = serializers.CharField(help_text="Why, stable for clients to branch on (`booking_time_conflict`, "
                                           "`capacity_exceeded`, `validation_failed`, …; else the same as `error`); "
                                           "the message is for people and may be reworded")
    message = serializers.CharField()
    path = serializers.CharField()
    timestamp = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


_DESCRIPTIONS = {
    400: "Invalid input",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed for the caller's role",
    404: "Not found (or not visible to the caller)",
    405: "Method not allowed",
    409: "Conflict with the current state",
    411: "A chunked request body: send it with a Content-Length header",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Rate limited (see Retry-After)",
    503: "A backing service is unavailable; retry",
}


def error_responses(*codes: int, **described: str) -> dict[int, OpenApiResponse]:
    """Error responses for `codes`, plus the ones any JSON endpoint may return; `e503="..."`
    describes what a status means on this endpoint instead of the general description."""
    every = {*codes, 405, 503}
    return {code: OpenApiResponse(ErrorSerializer, description=described.get(f"e{code}", _DESCRIPTIONS[code]))
            for code in sorted(every)}


class AutoSchema(SpectacularAutoSchema):
    """Adds the statuses that cross-cutting layers return on every operation they cover, so no
    view has to repeat them: 401 wherever a bearer token is read (a bad one is refused even where
    no token is needed), 411, 413 and 415 wherever a request body is parsed. Request bodies are closed
    objects (`additionalProperties: false`): a field the endpoint does not take is a 400
    (bookings_project.validation.valid_data)."""

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema

    # (drf-spectacular's own hook for every operation's responses; the version is pinned in
    # requirements.txt, and bookings_project/tests/test_schema.py probes what it produces.)
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        implicit = set()
        if self.view.get_authenticators():
            implicit.add(401)
        if self.method in {"POST", "PUT", "PATCH"}:
            implicit |= {411, 413, 415}
        for code in sorted(implicit - {int(c) for c in responses if c.isdigit()}):
            responses[str(code)] = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]), str(code), direction=direction)
        return dict(sorted(responses.items()))


# The docs pages load only this server's files (drf-spectacular-sidecar); ReDoc's bundle still
# names a logo on a CDN, which this policy keeps the browser from fetching.
DOCS_CONTENT_SECURITY_POLICY = "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'"


def local_assets_only(view):
    """Wrap a docs view: its pages may load images, fonts and data from this origin only."""

    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response

    return wrapped


def location_header(status: int, what: str) -> OpenApiParameter:
    """OpenAPI of the `Location` response header a 201/202 carries (bookings_project.http.location)."""
    return OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[status],
                            description=f"Absolute URL of {what}")


# A GET answered with an ETag (bookings_project.http.not_modified): its request and response headers.
CONDITIONAL_GET = [
    OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                     description="An ETag of an earlier answer (or several, comma-separated, or `*`): a 304 "
                                 "without a body if the answer would be the same"),
    OpenApiParameter("ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 304],
                     description="Names this answer's content, for If-None-Match"),
]
