"""Request input validation shared by every view."""

from django.http import QueryDict
from rest_framework import serializers

from .errors import ValidationFailed


def valid_data(serializer_class, data, **kwargs) -> dict:
    """Validate a request body or query string with a serializer; errors become the contract's
    400 envelope. A declared query parameter sent empty (`?limit=`) is an error, not "omitted"
    (DRF's form-style default), so a malformed value is never silently replaced by a default."""
    serializer = serializer_class(data=data, **kwargs)
    if isinstance(data, QueryDict):
        blank = {name: ["Must not be empty"] for name, field in serializer.fields.items()
                 if data.get(name) == "" and not getattr(field, "allow_blank", False)}
        if blank:
            raise ValidationFailed("Invalid query parameters", fields=blank)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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


class StrictRegexField(_StringOnly, serializers.RegexField):
    pass

