"""CORS in a real browser (Playwright + Debian's Chromium, which enforces it): a script on an
allowed origin calls the API with a bearer token — preflight, JSON and the exposed headers —
and a script on any other origin cannot read a thing."""

import os
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bookings_project.testing import CHROMIUM

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # (Playwright's sync API runs an event loop here)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.django_db(transaction=True, databases=["default", "documents"]),
]

# The app's own page. (Served over loopback like the API: Chromium keeps a page on a public
# address from calling a loopback one at all — Private Network Access — whatever CORS allows.)
PAGE = b"<!doctype html><title>booking app</title>"
CALL = """async ([url, token]) => {
    try {
        const response = await fetch(url, {headers: {Authorization: "Bearer " + token, "Idempotency-Key": "k-1"}});
        return {status: response.status, requestId: response.headers.get("X-Request-ID"),
                total: response.headers.get("X-Total-Count"), body: await response.json()};
    } catch (error) {
        return {refused: String(error)};
    }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


@contextmanager
def origin():
    """An origin of its own (http://127.0.0.1:<port>) serving PAGE."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_app_on_an_allowed_origin_calls_the_api_and_no_other_origin_can(page, live_server, settings, make_user,
                                                                             token_for):
    token = token_for(make_user(username="spa_user"))
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    with origin() as app, origin() as other_origin:
        settings.CORS_ALLOWED_ORIGINS, settings.CORS_ALLOW_ALL_ORIGINS = [app], False
        page.goto(f"{app}/")
        me = page.evaluate(CALL, [f"{live_server.url}/api/v1/user/me", token])  # (Authorization: a preflight first)
        items = page.evaluate(CALL, [f"{live_server.url}/api/v1/items?page=1&pageSize=5", token])
        page.goto(f"{other_origin}/")
        other = page.evaluate(CALL, [f"{live_server.url}/api/v1/user/me", token])

    assert "status" in me, (me, messages)
    assert me["status"] == 200 and me["body"]["username"] == "spa_user" and me["requestId"]
    assert items["status"] == 200 and items["total"] == "0"
    assert "refused" in other, other  # the browser kept the response from the script
