"""Request input validation shared by every view."""

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from itertools import islice

from django.http import QueryDict
from rest_framework import serializers

from .errors import flatten_fields, validation_failed


def valid_data(serializer_class, data, **kwargs) -> dict:
    """Validate a request body or query string with a serializer; errors become the contract's
    400 envelope. A declared query parameter sent empty (`?limit=`) is an error, not "omitted"
    (DRF's form-style default), so a malformed value is never silently replaced by a default."""
    serializer = serializer_class(data=data, **kwargs)
    if not isinstance(data, QueryDict):
        unknown = dict(islice(_unknown_fields(serializer, data), MAX_UNKNOWN_FIELDS_REPORTED))
        if serializer.is_valid() and not unknown:
            return serializer.validated_data
        raise validation_failed({**flatten_fields(serializer.errors), **unknown})
    problems = {name: [problem] for name, field in serializer.fields.items()
                if name in data and (problem := _query_value_problem(field, data.getlist(name)))}
    if serializer.is_valid() and not problems:
        return serializer.validated_data
    # One message for any bad query parameter, whichever check caught it (`?page=0` and
    # `?page=abc` said "Validation failed" and "Invalid query parameters"); a problem with the
    # raw value replaces the serializer's reading of it.
    fields: dict[str, list[str]] = {}
    for name, messages in flatten_fields(serializer.errors).items():
        # (a repeated parameter's value is named by the parameter: `status`, not `status.1`)
        fields.setdefault(name.split(".", 1)[0], []).extend(messages)
    fields.update(problems)
    raise validation_failed(fields, "Invalid query parameters")


# A body of nothing but unknown keys must not be answered with a message per key (a 1 MB body
# made an 8-11 MB answer): the first few tell the client what is wrong.
MAX_UNKNOWN_FIELDS_REPORTED = 20


def _unknown_fields(serializer, data, path=""):
    """(dotted name, [problem]) for each body field the serializer does not take, at any depth of
    its nested objects (a free-form JSON value, like a notification's `data`, is not looked
    into). A misspelt field is refused rather than ignored: `"private": true` for `isPrivate`
    would otherwise publish the item, `"tier"` for `priceTier` book the default tier."""
    if isinstance(serializer, serializers.ListSerializer):
        if isinstance(data, list):  # (elements past max_length are refused by the list's own check)
            for index, element in enumerate(data[:serializer.max_length]):
                yield from _unknown_fields(serializer.child, element, f"{path}{index}.")
        return
    if not isinstance(serializer, serializers.Serializer) or not isinstance(data, Mapping):
        return
    fields = serializer.fields
    for name, value in data.items():
        field = fields.get(name)
        if field is None or field.read_only:
            writable = ", ".join(n for n, f in fields.items() if not f.read_only)
            yield f"{path}{name}", [f"Unknown field; this object takes: {writable}"]
        else:
            yield from _unknown_fields(field, value, f"{path}{name}.")


_WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII digits: \d also matches ١ and ２, which int() reads


def _query_value_problem(field, values: list[str]) -> str | None:
    """What is wrong with a declared query parameter's raw values, before the serializer reads
    them: sent empty (`?limit=`: not "omitted", DRF's form-style default), sent twice (`?page=abc&
    page=1`: DRF would read the last one silently), or an integer DRF would forgive (`2.0`, `+1`,
    ` 1`: the schema says integer)."""
    if isinstance(field, (serializers.ListField, serializers.MultipleChoiceField)):
        return None
    if len(values) > 1:
        return "Give one value"
    if values[0] == "" and not getattr(field, "allow_blank", False):
        return "Must not be empty"
    if isinstance(field, serializers.IntegerField) and not _WHOLE_NUMBER.fullmatch(values[0]):
        return "A valid integer is required."
    return None


def no_body_expected(request) -> None:
    """An endpoint that takes no body ignores one, but a malformed one is still a 400 (contract
    §8): the client meant something else, and the action must not go ahead. DRF parses lazily,
    so without this a cancel or a delete sent with broken JSON would simply run."""
    request.data  # noqa: B018 - parsing is the check (SafeJSONParser raises ParseError)


class _StringOnly:
    """A text field that takes JSON strings only. DRF's CharField turns a number into its text
    (`"message": 123` → "123"), accepting a body the schema calls invalid."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


# Request bodies only (a query string's values are all text): numbers and booleans are JSON
# numbers and booleans, as texts are JSON strings. DRF reads "50" as 50 and "yes" or 1 as
# true, accepting a body the schema calls invalid (a client's bug passed silently).

class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float, Decimal)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(_StringOnly, serializers.RegexField):
    pass


class BoundedObjectField(serializers.DictField):
    """A free-form JSON object of at most `max_bytes` as JSON: the request body's own limit
    (MAX_REQUEST_BODY_BYTES, 1 MiB) is no bound for what is stored in a row and rendered again on every read or email."""

    def __init__(self, *, max_bytes: int, **kwargs):
        self.max_bytes = max_bytes
        kwargs.setdefault("help_text", f"At most {max_bytes} bytes as JSON")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(json.dumps(value, default=str)) > self.max_bytes:
            raise serializers.ValidationError(f"Must be at most {self.max_bytes} bytes as JSON", code="max_length")
        return value


class ChoiceField(serializers.ChoiceField):
    """DRF's ChoiceField, whose refusal names the values it takes (`"ERROR" is not a valid
    choice; use one of: debug, info, …`): the client learns the fix, not only the fault."""

    default_error_messages = {"invalid_choice": '"{input}" is not a valid choice; use one of: {choices}.'}

    def fail(self, key, **kwargs):
        if key == "invalid_choice":
            kwargs.setdefault("choices", ", ".join(str(choice) for choice in self.choices))
        super().fail(key, **kwargs)
