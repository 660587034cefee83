"""Assertions shared by the API test suites (error envelope, secrets never leaked, query counts)."""

import json
import re
from datetime import datetime

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

ENVELOPE_KEYS = {"status", "error", "code", "message", "path", "timestamp"}
SNAKE_CASE = re.compile(r"[a-z]+(_[a-z]+)*")


def assert_error(response, status: int, *, path: str | None = None, fields=(), code: str | None = None) -> dict:
    """The response is the contract's JSON error envelope with `status` (and these `fields`, this
    `code`)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert ENVELOPE_KEYS <= set(body), body
    assert set(body) - ENVELOPE_KEYS <= {"fields"}, body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert SNAKE_CASE.fullmatch(body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert body["timestamp"].endswith("Z")
    datetime.fromisoformat(body["timestamp"])
    if path is not None:
        assert body["path"] == path
    for name in fields:
        assert body.get("fields", {}).get(name), body
    return body


def assert_no_secrets(response, *passwords: str) -> None:
    """No password, password field or password hash anywhere in the body."""
    text = response.content.decode()
    lowered = text.lower()
    assert '"password"' not in lowered
    for marker in ("md5$", "pbkdf2_", "argon2", "bcrypt"):
        assert marker not in lowered
    assert '"!' not in text  # an unusable password's hash starts with "!"
    for password in passwords:
        assert password not in text


def queries_during(call) -> int:
    """Database queries run by `call()`. The query log is cleared first: it is a bounded deque,
    and once full its length no longer moves, so a count taken after heavy setup would read 0."""
    reset_queries()
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)


def list_cost(client, path: str) -> tuple[int, int]:
    """(queries, rows) of a successful GET of a list: a plain array, or the first array in an
    object body ({"logs": [...], "total": …})."""
    responses = []
    queries = queries_during(lambda: responses.append(client.get(path)))
    [response] = responses
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    rows = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    return queries, len(rows)
