"""The Django admin in a real browser (Playwright + Debian's Chromium) against a live server:
ADMINs and IT operators sign in through the login form, filter logs, execute a job, retry a
DEAD outbox event, cancel a booking (the email reaches a loopback SMTP server), and IT
operators are kept out of the user and item pages. One screenshot per scenario lands in
test-artifacts/."""

import os
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.services import user_grant_role
from bookings_project.testing import CHROMIUM, browser_screenshot
from accounts.tests.factories import DEFAULT_PASSWORD
from catalog.services import item_create
from ops.dispatch import outbox_dispatch_until_empty
from ops.jobs import job_create_notification
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus, Severity
from ops.outbox import EventType, outbox_enqueue
from ops.services import system_log_create
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create

# Playwright's sync API runs an event loop in this thread; the ORM calls between browser steps
# are plain synchronous code.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.django_db(transaction=True, databases=["default", "documents"]),
]


@pytest.fixture
def operator(make_user, admin_user):
    """An IT operator made the way production makes one: an ADMIN grants the role (service)."""
    user = make_user(username="ops1")
    return user_grant_role(actor=admin_user, user=user, role="IT_OPERATOR")


def sign_in(page, live_server, user, expect):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/admin/")
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def run_action(page, action, pks):
    for pk in pks:
        page.check(f'input[name="_selected_action"][value="{pk}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')


def screenshot(page, name):
    browser_screenshot(page, f"browser-admin-{name}")


@pytest.mark.parametrize("role", ["ADMIN", "IT_OPERATOR"])
def test_list_filter_and_search_system_logs(page, live_server, expect, admin_user, operator, role):
    system_log_create(event_type="AUTH", severity=Severity.ERROR, message="Failed login attempt", user_id="42",
                      ip_address="10.9.8.7", additional_data={"reason": "Invalid password"})
    system_log_create(event_type="PAYMENT", severity=Severity.INFO, message="Invoice exported", user_id="7")
    system_log_create(event_type="AUTH", severity=Severity.ERROR, message="Failed login attempt", user_id="43",
                      ip_address="10.1.1.1")
    sign_in(page, live_server, admin_user if role == "ADMIN" else operator, expect)

    page.click('a[href="/admin/ops/systemlog/"]')
    results = page.locator("#result_list tbody")
    expect(results).to_contain_text("Invoice exported")
    expect(results).to_contain_text("Failed login attempt")

    page.locator('#changelist-filter details[data-filter-title="severity"] a', has_text="error").click()
    expect(page).to_have_url(re.compile(r"severity__exact=error"))
    expect(results.locator("tr")).to_have_count(2)
    expect(results).not_to_contain_text("Invoice exported")

    page.fill("#searchbar", "10.9.8.7")
    page.press("#searchbar", "Enter")
    expect(page).to_have_url(re.compile(r"q=10\.9\.8\.7"))
    expect(results.locator("tr")).to_have_count(1)
    expect(results).to_contain_text("10.9.8.7")
    screenshot(page, f"logs-filtered-{role.lower()}")


def test_operator_executes_a_queued_job_and_sees_it_completed(page, live_server, expect, operator, smtp_server):
    job = job_create_notification(recipient_email="ops-ping@example.com", subject="Ping", message="Hello")
    sign_in(page, live_server, operator, expect)

    page.goto(f"{live_server.url}/admin/ops/job/?status__exact=queued")
    expect(page.locator("#result_list")).to_contain_text("ops-ping@example.com")
    run_action(page, "execute_jobs", [job.pk])

    expect(page.locator("ul.messagelist")).to_contain_text("1 of 1 job(s) completed.")
    page.goto(f"{live_server.url}/admin/ops/job/?status__exact=completed")
    row = page.locator("#result_list tbody tr", has_text="ops-ping@example.com")
    expect(row.locator("td.field-status")).to_have_text("Completed")
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert [m["to"] for m in smtp_server.messages] == [["ops-ping@example.com"]]
    screenshot(page, "job-executed-operator")


def test_operator_retries_a_dead_outbox_event_and_it_is_sent(page, live_server, expect, operator, smtp_server):
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="dead-letter@example.com",
                           payload={"subject": "Second chance", "message": "Delivered after a retry"})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD, retry_count=5,
                                                   error_message="SMTPServerDisconnected: gone")
    sign_in(page, live_server, operator, expect)

    # The index says what needs an operator and links to it (ops.status).
    status = page.locator("#system-status")
    expect(status).to_contain_text("database ok · documents ok · broker ok")
    screenshot(page, "index-system-status-operator")
    status.get_by_role("link", name="1 DEAD outbox event(s)", exact=False).click()
    expect(page).to_have_url(f"{live_server.url}/admin/ops/outboxevent/?status__exact=DEAD")
    expect(page.locator("#result_list")).to_contain_text("SMTPServerDisconnected")
    run_action(page, "retry_events", [event.pk])
    expect(page.locator("ul.messagelist")).to_contain_text("1 event(s) queued for delivery.")

    assert outbox_dispatch_until_empty(max_seconds=20)["sent"] >= 1
    page.goto(f"{live_server.url}/admin/ops/outboxevent/?status__exact=SENT")
    expect(page.locator("#result_list tbody tr", has_text="dead-letter@example.com").locator("td.field-status")).to_have_text("Sent")
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.SENT
    assert [m["to"] for m in smtp_server.messages] == [["dead-letter@example.com"]]
    screenshot(page, "outbox-retried-operator")


def test_admin_cancels_a_booking_and_the_customer_is_emailed(page, live_server, expect, admin_user, make_user,
                                                              smtp_server):
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    customer = make_user(username="carla", email="carla@example.com")
    start = timezone.now() + timedelta(days=5)
    item = item_create(organizer=organizer, name="Harbour Jazz Night", start_time=start,
                       end_time=start + timedelta(hours=3), capacity=10,
                       price_tiers=[{"name": "Regular", "price": Decimal("25.00"), "max_capacity": 10}])
    booking = booking_create(user=customer, item_id=item.pk)
    outbox_dispatch_until_empty(max_seconds=20)  # the confirmation goes out first
    smtp_server.messages.clear()
    sign_in(page, live_server, admin_user, expect)

    page.goto(f"{live_server.url}/admin/reservations/booking/?status__exact=CONFIRMED")
    expect(page.locator("#result_list")).to_contain_text("Harbour Jazz Night")
    run_action(page, "cancel_bookings", [booking.pk])
    expect(page.locator("ul.messagelist")).to_contain_text("1 booking(s) cancelled.")

    booking.refresh_from_db()
    item.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED and item.sold == 0
    outbox_dispatch_until_empty(max_seconds=20)
    mails = [m for m in smtp_server.messages if m["to"] == ["carla@example.com"]]
    assert [m["message"]["Subject"] for m in mails] == ["Booking cancelled: Harbour Jazz Night"]
    page.goto(f"{live_server.url}/admin/reservations/booking/?status__exact=CANCELLED")
    expect(page.locator("#result_list tbody tr", has_text="Harbour Jazz Night").locator("td.field-status")).to_have_text("Cancelled")
    assert Booking.objects.filter(status=BookingStatus.CANCELLED).count() == 1
    screenshot(page, "booking-cancelled-admin")


def test_operator_cannot_open_user_or_item_pages(page, live_server, expect, operator):
    sign_in(page, live_server, operator, expect)

    index = page.locator("#content-main")
    for url in ("/admin/ops/systemlog/", "/admin/ops/job/", "/admin/ops/outboxevent/",
                "/admin/ops/reconciliationchange/"):
        expect(index.locator(f'th[scope="row"] a[href="{url}"]')).to_have_count(1)
    for url in ("/admin/accounts/user/", "/admin/catalog/bookableitem/", "/admin/reservations/booking/"):
        expect(page.locator(f'a[href="{url}"]')).to_have_count(0)
    screenshot(page, "index-operator")

    for url in ("/admin/accounts/user/", "/admin/catalog/bookableitem/"):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 403, url
