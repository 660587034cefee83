"""How request bodies are read and responses chosen: JSON in, JSON out, whatever the client sends.

`SafeJSONParser` is DRF's JSONParser with the inputs it lets through to a 500 turned into 400s:
nesting deeper than MAX_DEPTH (the parser accepts ~900 levels, but storing such a value in a
JSONField, or printing it, exhausts the recursion limit), numbers that overflow to infinity
(`1e999`), and strings holding NUL or unpaired surrogates — PostgreSQL's json/text types refuse
all three, so they would fail at the INSERT instead of at the door.

`length_required` answers a chunked request body (no Content-Length) with a JSON 411: Django
reads a body only up to Content-Length, so the view would otherwise see no body at all and
answer a misleading "field required".

`ExactJSONRenderer` writes money (Decimal) as the exact JSON number: DRF's encoder goes
through float, which is exact up to 15 significant digits — every price — but would round a
sum beyond that (a revenue total of 99999899990000.01 came out as …0.02).

`JSONFallbackNegotiation` answers an `Accept` header no renderer matches (a browser's
`text/html`) with JSON instead of a 406 before authentication has even run, and an explicit
`?format=` in the format it names whatever the Accept header says; a `?format=` the view does
not offer is a 400 naming the formats it does.
"""

import json
import math
import re
import uuid
from decimal import Decimal

from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 64  # levels of objects/arrays in a request body; no field of the API needs more than a few


def _check_storable(data) -> None:
    pending = [(data, 1)]
    while pending:  # iterative: the document may be nested as deep as the parser allowed
        value, depth = pending.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            pending.extend((key, depth + 1) for key in value.keys())
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ParseError("JSON parse error - number out of range")
        elif isinstance(value, str) and _UNSTORABLE.search(value):
            raise ParseError("JSON parse error - strings may not contain NUL characters or unpaired surrogates")


def storable_json(value, *, max_depth: int = MAX_DEPTH, _depth: int = 1):
    """JSON read from outside the API (a document the customer side wrote) made what a request
    body must be (above), so it can be stored in PostgreSQL and rendered by the API: NUL and
    unpaired surrogates in strings and keys become U+FFFD, a number that is infinite or not a
    number becomes its name as a string ("Infinity"), and an object or array nested deeper than
    `max_depth` becomes the string "…"."""
    if isinstance(value, dict):
        if _depth > max_depth:
            return "…"
        return {storable_json(key): storable_json(item, max_depth=max_depth, _depth=_depth + 1)
                for key, item in value.items()}
    if isinstance(value, list):
        if _depth > max_depth:
            return "…"
        return [storable_json(item, max_depth=max_depth, _depth=_depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)  # Infinity, -Infinity, NaN
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    return value


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        _check_storable(data)
        return data


class _InexactDecimal(Exception):
    """A Decimal that float() would change: render the slow, exact way."""


def _float_if_exact(value: Decimal) -> float | None:
    if not value.is_finite():  # as json refuses float("nan"): no JSON number can say it
        raise ValueError(f"Out of range Decimal values are not JSON compliant: {value}")
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else None


class _FloatIfExact(JSONEncoder):
    def default(self, obj):
        if isinstance(obj, Decimal):
            as_float = _float_if_exact(obj)
            if as_float is None:
                raise _InexactDecimal()
            return as_float
        return super().default(obj)


class ExactJSONRenderer(JSONRenderer):
    encoder_class = _FloatIfExact

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except _InexactDecimal:
            return self._render_decimals_exactly(data)

    def _render_decimals_exactly(self, data) -> bytes:
        """Each Decimal goes through the encoder as a string holding a one-off marker and its
        digits; then the quoted marker is replaced by the bare digits. The marker is random per
        call, so no string of the data can be taken for one. (Compact, as DRF writes it.)"""
        marker = uuid.uuid4().hex

        class Marked(JSONEncoder):
            def default(self, obj):
                if isinstance(obj, Decimal):  # written as the fast path would, where it can
                    as_float = _float_if_exact(obj)
                    return f"{marker}{obj:f}" if as_float is None else as_float
                return super().default(obj)

        text = json.dumps(data, cls=Marked, ensure_ascii=self.ensure_ascii, allow_nan=not self.strict,
                          separators=(",", ":"))
        text = re.sub(f'"{marker}(-?[0-9.]+)"', r"\1", text)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class TextRenderer(BaseRenderer):
    """A text body made by `text(data)`, sent with `headers` (a view's CSV or metrics format)."""

    charset = "utf-8"
    headers: dict[str, str] = {}

    def text(self, data) -> str:
        raise NotImplementedError

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            for name, value in self.headers.items():
                response[name] = value
        return self.text(data).encode(self.charset)


class MetadataInJSON:
    """A view mixin: OPTIONS answers DRF's metadata (a dict) in JSON, as errors are, whatever
    format was negotiated — a TextRenderer writes only its own format."""

    def options(self, request, *args, **kwargs):
        request.accepted_renderer, request.accepted_media_type = ExactJSONRenderer(), ExactJSONRenderer.media_type
        return super().options(request, *args, **kwargs)


class JSONFallbackNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):
        """`?format=` naming nothing this view renders is a 400 naming the choices (DRF: a bare 404)."""
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            from .errors import ValidationFailed

            choices = ", ".join(renderer.format for renderer in renderers)
            raise ValidationFailed("Unknown format", fields={"format": [f"Must be one of: {choices}"]})
        return matching

    def select_renderer(self, request, renderers, format_suffix=None):
        override = self.settings.URL_FORMAT_OVERRIDE
        if override and override in request.query_params and not request.query_params.get(override):
            self.filter_renderers(renderers, "")  # `?format=` sent empty: a 400 too, not "no format"
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            # The format the URL names wins over the Accept header (`?format=csv` from a client
            # whose library always sends `Accept: application/json`, as Swagger UI does), as the
            # route's only format wins over a browser's `text/html`: both are answered, not a 406.
            format = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            renderer = self.filter_renderers(renderers, format)[0] if format else renderers[0]
            return renderer, renderer.media_type


def length_required(get_response):
    """Middleware (see the module docstring)."""
    from .errors import json_error_response

    def middleware(request):
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get("CONTENT_LENGTH"):
            return json_error_response(request, 411, "Send the request body with a Content-Length header "
                                                     "(chunked transfer encoding is not accepted)")
        return get_response(request)

    return middleware
