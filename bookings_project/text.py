"""Plain-text rules shared by request validation, the emails and error messages.

Names, locations, categories and tags are one line of printable text: a control character
(ESC, DEL, a C1 code, a line or paragraph separator) has no meaning in them and would travel
into email subjects and calendar files, which forbid it (RFC 5322 §3.2.5, RFC 5545 §3.3.11).
Long texts (descriptions) may also hold tabs and line breaks. Neither may hold the Unicode
controls that reorder the text around them (bidirectional embeddings, overrides and isolates,
U+202A–E and U+2066–9): in a subject or a calendar they make a name display as something other
than it is (U+202E before "gnp.exe" shows "exe.png"; CVE-2021-42574, "Trojan Source"). The plain
marks U+200E/U+200F that right-to-left text needs stay allowed.
"""

import re

from django.core.exceptions import ValidationError

_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NOT_PLAIN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def validate_single_line(value: str) -> None:
    if _NOT_ONE_LINE.search(value):
        raise ValidationError("Must be one line of text without control characters", code="control_characters")


def validate_plain_text(value: str) -> None:
    if _NOT_PLAIN.search(value):
        raise ValidationError("Must not contain control characters other than tabs and line breaks",
                              code="control_characters")


def one_line(text: str) -> str:
    """`text` as one line of printable text: control characters and runs of whitespace become
    one space."""
    return " ".join(_NOT_ONE_LINE.sub(" ", text).split())


def error_line(exc: BaseException) -> str:
    """The error's message on one line (a driver's message often spans several)."""
    return one_line(str(exc)) or exc.__class__.__name__


def loggable(value, limit: int = 500) -> str:
    """`value` for one line of the process log: control characters (a line break would start a
    forged log line) escaped as `\\xNN`, and at most `limit` characters."""
    text = str(value)
    text = _NOT_ONE_LINE.sub(lambda found: f"\\x{ord(found.group()):02x}" if ord(found.group()) < 0x100
                             else f"\\u{ord(found.group()):04x}", text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
