"""The password reset link in a real browser (Playwright + Debian's Chromium, CSRF enforced as in
production): the emailed link opens Django's page, the new password is set through our service,
the old password stops working and the new one logs in through the API."""

import os
import re
from pathlib import Path

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.tests.factories import DEFAULT_PASSWORD
from bookings_project.testing import CHROMIUM, browser_screenshot
from ops.dispatch import outbox_dispatch_until_empty

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # (Playwright's sync API runs an event loop here)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.django_db(transaction=True, databases=["default", "documents"]),
]

NEW_PASSWORD = "Browser-set-pass-77"


def test_the_emailed_link_sets_a_new_password_in_a_browser(page, live_server, expect, make_user, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    user = make_user(username="forgetful", email="forgetful@example.com")
    api = APIClient()
    assert api.post("/api/v1/auth/password-reset", {"email": "forgetful@example.com"}, format="json").status_code == 202
    outbox_dispatch_until_empty()
    [message] = mail.outbox
    link = re.search(r"(http://\S+/accounts/reset/\S+/)", message.body).group(1)
    assert link.startswith(live_server.url)

    page.goto(link)
    expect(page.locator("#id_new_password1")).to_be_visible()
    assert "set-password" in page.url  # the token left the address bar (and the Referer) at once
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#content")).to_contain_text("Your password has been set")
    expect(page.locator("#site-name")).to_have_text("Booking platform")  # (not "Django administration")
    browser_screenshot(page, "browser-password-reset-done")

    def login(password):
        return api.post("/api/v1/auth/login", {"username": "forgetful", "password": password}, format="json")

    assert (login(DEFAULT_PASSWORD).status_code, login(NEW_PASSWORD).status_code) == (401, 200)
    page.goto(link)  # used: the page says the link is no longer valid
    expect(page.locator("#id_new_password1")).to_have_count(0)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
