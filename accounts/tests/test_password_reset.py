"""Password reset: the request (same answer for every email), the email (made when sent, to the
account's address, no token stored), the link (once, until PASSWORD_RESET_TTL), through the API
and through the page a browser opens."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import mail
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from freezegun import freeze_time

from accounts.models import User
from bookings_project.tests.helpers import assert_error
from ops.dispatch import outbox_dispatch_until_empty
from ops.models import OutboxEvent, OutboxStatus, SystemLog

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Brand-new-pass-42"
LINK = re.compile(r"(https?://\S+/accounts/reset/(?P<uid>[^/\s]+)/(?P<token>[^/\s]+)/)")


def ask(client, email):
    return client.post("/api/v1/auth/password-reset", {"email": email}, format="json")


def reset_email() -> re.Match:
    outbox_dispatch_until_empty()
    [message] = mail.outbox
    return LINK.search(message.body)


def confirm(client, uid, token, password=NEW_PASSWORD):
    return client.post("/api/v1/auth/password-reset/confirm", {"uid": uid, "token": token, "password": password},
                       format="json")


def test_the_emailed_link_sets_a_new_password_once_and_ends_every_session(api_client, make_user, token_for,
                                                                          client_for, settings):
    settings.PUBLIC_BASE_URL = "https://bookings.example.com"
    user = make_user(email="forgetful@example.com")
    old_session = client_for(user)
    assert old_session.get("/api/v1/user/me").status_code == 200

    response = ask(api_client, "Forgetful@EXAMPLE.com")
    assert (response.status_code, response.json()) == (202, {"status": "queued"})
    link = reset_email()
    [message] = mail.outbox
    assert message.to == ["forgetful@example.com"] and message.subject == "Reset your password"
    assert link.group(1).startswith("https://bookings.example.com/accounts/reset/")
    assert link.group(1) in message.alternatives[0][0]  # the HTML part links it too

    assert confirm(api_client, link["uid"], link["token"]).status_code == 204
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert old_session.get("/api/v1/user/me").status_code == 401  # tokens from before the reset
    login = api_client.post("/api/v1/auth/login", {"username": user.username, "password": NEW_PASSWORD},
                            format="json")
    assert login.status_code == 200

    again = confirm(api_client, link["uid"], link["token"], password="Another-new-pass-7")
    assert_error(again, 400, code="invalid_reset_link", fields=["token"])
    assert list(SystemLog.objects.filter(user_id=user.pk, event_type="AUTH").values_list("message", flat=True)
                .order_by("id")) == ["Password reset requested", "Password reset"]


def test_an_unknown_or_inactive_email_gets_the_same_answer_and_no_email(api_client, make_user):
    make_user(email="gone@example.com", is_active=False)
    answers = [ask(api_client, email) for email in ("nobody@example.com", "gone@example.com")]
    assert [(a.status_code, a.json()) for a in answers] == [(202, {"status": "queued"})] * 2
    outbox_dispatch_until_empty()
    assert mail.outbox == [] and not OutboxEvent.objects.filter(event_type="PASSWORD_RESET").exists()
    assert SystemLog.objects.filter(message="Password reset for an unknown email").count() == 2


def test_no_token_is_stored_and_the_email_goes_to_the_account_whatever_the_event_says(api_client, make_user):
    """The outbox (which operators read in the admin) holds the account id only; the email is made
    when sent, for the account's address then."""
    user = make_user(email="owner@example.com")
    ask(api_client, "owner@example.com")
    event = OutboxEvent.objects.get(event_type="PASSWORD_RESET")
    assert event.payload == {"userId": user.pk}
    OutboxEvent.objects.filter(pk=event.pk).update(recipient_email="attacker@example.com")

    link = reset_email()
    assert mail.outbox[0].to == ["owner@example.com"] and link is not None
    assert link["token"] not in str(OutboxEvent.objects.get(pk=event.pk).__dict__)


def test_the_reset_email_is_not_a_template_anyone_may_request(make_user, client_for):
    user = make_user(email="victim@example.com")
    response = client_for(make_user(roles=["ADMIN"])).post("/notifications", {
        "type": "PASSWORD_RESET", "recipient": "attacker@example.com", "data": {"userId": user.pk}}, format="json")
    assert_error(response, 400, fields=["type"])


def test_one_email_per_account_per_minute_whatever_the_client(api_client, make_user):
    make_user(email="flooded@example.com")
    for _ in range(3):
        assert ask(api_client, "flooded@example.com").status_code == 202
    assert OutboxEvent.objects.filter(event_type="PASSWORD_RESET").count() == 1
    with freeze_time(timezone.now() + timedelta(seconds=61)):
        ask(api_client, "flooded@example.com")
    assert OutboxEvent.objects.filter(event_type="PASSWORD_RESET").count() == 2


def test_a_link_expires_after_the_ttl_and_dies_with_any_other_password_change(api_client, make_user, settings):
    settings.PASSWORD_RESET_TIMEOUT = 3600
    user = make_user(email="slow@example.com")
    ask(api_client, "slow@example.com")
    link = reset_email()
    with freeze_time(timezone.now() + timedelta(seconds=3601)):
        assert_error(confirm(api_client, link["uid"], link["token"]), 400, code="invalid_reset_link")

    user.set_password("Changed-meanwhile-9")
    user.save(update_fields=["password"])
    assert_error(confirm(api_client, link["uid"], link["token"]), 400, code="invalid_reset_link")


@pytest.mark.parametrize("uid, token", [("", "x"), ("not-base64!", "x"), ("MTIzNDU2Nzg5", "1-abc"), ("Tg", "")])
def test_a_forged_link_is_a_400_not_a_500(api_client, make_user, uid, token):
    make_user()
    response = confirm(api_client, uid, token)
    assert response.status_code == 400 and response.json()["code"] in {"invalid_reset_link", "validation_failed"}


def test_a_weak_password_is_refused_and_the_link_still_works(api_client, make_user):
    user = make_user(email="weak@example.com")
    ask(api_client, "weak@example.com")
    link = reset_email()
    assert_error(confirm(api_client, link["uid"], link["token"], password="123"), 400, fields=["password"])
    assert confirm(api_client, link["uid"], link["token"]).status_code == 204
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_deactivated_accounts_pending_email_is_not_sent(api_client, make_user):
    user = make_user(email="leaving@example.com")
    ask(api_client, "leaving@example.com")
    User.objects.filter(pk=user.pk).update(is_active=False)
    outbox_dispatch_until_empty()
    assert mail.outbox == []
    assert OutboxEvent.objects.get(event_type="PASSWORD_RESET").status == OutboxStatus.SENT


def test_the_request_is_rate_limited_per_client(api_client, settings):
    settings.RATE_LIMIT_REGISTER = "2/m"
    statuses = [ask(api_client, f"n{i}@example.com").status_code for i in range(3)]
    assert statuses == [202, 202, 429]


class TestThePage:
    """What a browser does with the link: Django's page, the password set by our service."""

    def test_the_link_opens_a_form_that_sets_the_password(self, api_client, client, make_user):
        user = make_user(email="browser@example.com")
        ask(api_client, "browser@example.com")
        link = reset_email()
        opened = client.get(urlsplit(link.group(1)).path, follow=True)
        assert opened.status_code == 200 and b'name="new_password1"' in opened.content
        form_url = opened.redirect_chain[-1][0]
        done = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True)
        assert done.status_code == 200 and b"Your password has been set" in done.content
        user.refresh_from_db()
        assert user.check_password(NEW_PASSWORD)
        assert SystemLog.objects.filter(user_id=user.pk, message="Password reset").count() == 1
        # used: the link now says so
        assert b'name="new_password1"' not in client.get(form_url.replace("set-password", link["token"])).content

    def test_a_bad_link_shows_the_invalid_page(self, client, make_user):
        response = client.get("/accounts/reset/MQ/not-a-token/", follow=True)
        assert response.status_code == 200 and b'name="new_password1"' not in response.content


def test_an_admin_sends_a_reset_email_from_the_users_page(client, make_user):
    """Support for a locked-out customer, without anyone setting or learning their password."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.messages import get_messages

    boss = make_user(roles=["ADMIN"], is_superuser=True, is_staff=True)
    client.force_login(boss)
    locked_out, gone = make_user(email="locked@example.com"), make_user(is_active=False)

    def action(users):
        response = client.post("/admin/accounts/user/", {"action": "send_password_reset",
                                                         "_selected_action": [u.pk for u in users]}, follow=True)
        return [str(m) for m in get_messages(response.wsgi_request)]

    said = action([locked_out, gone])
    assert "1 user(s) sent a password reset email." in said
    assert any("deactivated" in m for m in said)
    assert any("one was sent less than a minute ago" in m for m in action([locked_out]))

    link = reset_email()
    assert mail.outbox[0].to == ["locked@example.com"] and link is not None
    entry = SystemLog.objects.get(user_id=locked_out.pk, message="Password reset requested")
    assert entry.additional_data == {"by": boss.pk}
    assert LogEntry.objects.filter(object_id=str(locked_out.pk), change_message__contains="password reset").exists()


@pytest.mark.parametrize("ttl, said", [(3600, "within 1 hour"), (7200, "within 2 hours"), (1800, "within 30 minutes"),
                                       (60, "within 1 minute"), (5400, "within 1 hour")])
def test_the_email_never_promises_longer_than_the_link_lasts(api_client, make_user, settings, ttl, said):
    """PASSWORD_RESET_TTL may be anything from a minute to a week: a link that dies after 30
    minutes said "within 1 hour". (Rounded down, never up.)"""
    settings.PASSWORD_RESET_TIMEOUT = ttl
    make_user(email="timely@example.com")
    ask(api_client, "timely@example.com")
    reset_email()
    [message] = mail.outbox
    assert said in " ".join(message.body.split()) and said in " ".join(message.alternatives[0][0].split())


def test_an_application_traceback_naming_a_reset_link_is_logged_without_its_token():
    """An exception whose message holds the link (a traceback's last line repeats it) goes
    through the same filter as the message."""
    import logging
    import sys

    from ops.middleware import RequestIDLogFilter

    try:
        raise ValueError("bad path /accounts/reset/MQ/cyn3ux-0123456789abcdef0123456789abcdef/")
    except ValueError:
        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert RequestIDLogFilter().filter(record)
    written = logging.Formatter().format(record)
    assert "cyn3ux" not in written and "ValueError: bad path /accounts/reset/MQ/<token>/" in written


def test_a_failed_request_for_a_reset_link_is_logged_without_its_token():
    """django.request names the path of a 5xx (e.g. a database outage on the link's first GET):
    the log filter every handler of ours carries writes the token as <token>."""
    import logging

    from django.conf import settings as django_settings

    from ops.middleware import RequestIDLogFilter

    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "%s: %s",
                               ("Internal Server Error", "/accounts/reset/MQ/cyn3ux-0123456789abcdef0123456789abcdef/"),
                               None)
    assert RequestIDLogFilter().filter(record)
    assert record.getMessage() == "Internal Server Error: /accounts/reset/MQ/<token>/"
    assert "request_id" in django_settings.LOGGING["handlers"]["console"]["filters"]
    kept = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", ("/accounts/reset/MQ/set-password/",), None)
    RequestIDLogFilter().filter(kept)
    assert kept.getMessage() == "GET /accounts/reset/MQ/set-password/"


@pytest.mark.parametrize("logger_name, msg, args", [
    ("django.request", "%s: %s", ("Internal Server Error", "/accounts/reset/MQ/cyn3ux-0123456789abcdef/")),
    # runserver's access lines: `make run`'s web server while DEBUG is on (the default)
    ("django.server", '"%s" %s %s', ("GET /accounts/reset/MQ/cyn3ux-0123456789abcdef/ HTTP/1.1", "302", "0")),
])
def test_no_handler_the_process_configures_writes_a_reset_token(settings, logger_name, msg, args):
    """Every handler a record of these loggers reaches (Django's own defaults included: its
    console handler writes django.* records while DEBUG is on, runserver's logger has its own
    handler and does not propagate) writes the link's token as <token>."""
    import io
    import logging

    settings.DEBUG = True
    logger, handlers = logging.getLogger(logger_name), []
    node = logger
    while node is not None:
        handlers += node.handlers
        node = node.parent if node.propagate else None
    streams = {h: h.setStream(io.StringIO()) for h in handlers  # (not pytest's capturing handlers)
               if isinstance(h, logging.StreamHandler) and not type(h).__module__.startswith("_pytest")}
    try:
        logger.error(msg, *args)
        written = [h.stream.getvalue() for h in streams]
    finally:
        for handler, stream in streams.items():
            handler.setStream(stream)
    assert any("/accounts/reset/MQ/<token>/" in out for out in written), written
    assert not any("cyn3ux" in out for out in written), written


# Percent-escapes Django decodes before routing: each of these still opens the reset page.
ENCODED_LINKS = ["/accounts/re%73et/{uid}/{token}/", "/%61ccounts/reset/{uid}/{token}/",
                 "/accounts%2Freset%2F{uid}%2F{token}%2F", "/accounts/reset/{uid}%2F{token}/"]


def gunicorn_logs(tmp_path, raw_request: bytes, app_error: Exception | None = None) -> str:
    """What this project's gunicorn logger writes (error log, then access line) when its worker
    handles `raw_request` and fails: with `app_error` raised while serving it, else with the error
    parsing it raised."""
    import socket

    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser
    from gunicorn.workers.base import Worker

    from bookings_project import gunicorn as conf

    cfg = Config()
    for name, value in [("errorlog", tmp_path / "error.log"), ("accesslog", tmp_path / "access.log"),
                        ("access_log_format", conf.access_log_format), ("logger_class", conf.logger_class)]:
        cfg.set(name, str(value) if name.endswith("log") else value)
    worker = object.__new__(Worker)  # (only its handle_error: no process, no sockets to listen on)
    worker.cfg, worker.log = cfg, cfg.logger_class(cfg)
    try:
        req, error = next(iter(RequestParser(cfg, iter([raw_request]), ("203.0.113.9", 4242)))), app_error
    except Exception as exc:
        req, error = None, exc
    ours, theirs = socket.socketpair()
    with ours, theirs:
        try:
            raise error
        except Exception as exc:
            worker.handle_error(req, ours, ("203.0.113.9", 4242), exc)
    return "".join((tmp_path / log).read_text() for log in ("error.log", "access.log"))


@pytest.mark.parametrize("template", ENCODED_LINKS)
def test_a_percent_encoded_link_opens_the_page_and_no_log_keeps_its_token(api_client, client, make_user, tmp_path,
                                                                          template):
    """A link written with escapes (a mail scanner's rewrite, a hand-edited URL) works as well: the
    log filter and gunicorn's access and error logs must not keep its token either."""
    import logging

    from ops.middleware import RequestIDLogFilter

    make_user(email="encoded@example.com")
    ask(api_client, "encoded@example.com")
    link = reset_email()
    path = template.format(uid=link["uid"], token=link["token"])
    opened = client.get(path)
    assert opened.status_code == 302 and opened["Location"] == f"/accounts/reset/{link['uid']}/set-password/"

    served = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s',
                               (f"GET {path} HTTP/1.1", "302", "0"), None)
    RequestIDLogFilter().filter(served)
    crashed = gunicorn_logs(tmp_path, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), RuntimeError("boom"))
    for logged in (served.getMessage(), crashed):
        assert link["token"] not in logged and f"/accounts/reset/{link['uid']}/<token>" in logged, logged


@pytest.mark.parametrize("request_line, app_error", [
    (b"GET /accounts/reset/MQ/cyn3ux-0123456789abcdef/ HTTP/1.1", RuntimeError("boom")),
    (b"GET /accounts/reset/MQ/cyn3ux-0123456789abcdef/ HTTP/1.1", RuntimeError(
        "bad response for /accounts/reset/MQ/cyn3ux-0123456789abcdef/")),
    # a link pasted with the no-break space after it: gunicorn's own 400, "Invalid request from ip=…"
    (b"GET /accounts/reset/MQ/cyn3ux-0123456789abcdef/\xc2\xa0 HTTP/1.1", None),
])
def test_gunicorns_error_log_never_writes_a_reset_token(tmp_path, request_line, app_error):
    """gunicorn's error log (not Django's handlers) names the request's URI when serving it fails,
    repeats a request line it cannot parse, and prints the exception's message under its traceback."""
    logged = gunicorn_logs(tmp_path, request_line + b"\r\nHost: x\r\n\r\n", app_error)
    assert "/accounts/reset/MQ/<token>" in logged.split("\n")[0] and "cyn3ux" not in logged, logged


@pytest.mark.parametrize("url, warned", [("http://127.0.0.1:8000", True), ("http://0.0.0.0:8000", True),
                                         ("http://localhost:8000", True), ("http://[::]:8000", True),
                                         ("http://127.1", True), ("http://[::ffff:127.0.0.1]", True),
                                         ("http://localhost.:8000", True), ("http://app.localhost", True),
                                         ("http://localhost.example.com", False),
                                         ("https://bookings.example.com", False), ("http://10.0.0.5", False)])
def test_check_deploy_warns_when_emails_would_link_to_this_machine(settings, url, warned):
    from accounts.checks import public_base_url_reachable

    settings.DEBUG, settings.PUBLIC_BASE_URL = False, url
    assert [w.id for w in public_base_url_reachable(None)] == (["accounts.W001"] if warned else [])
    settings.DEBUG = True
    assert public_base_url_reachable(None) == []


class TestSecurityNotices:
    """What could lock an owner out is told to them: an email change at the old address, a
    password change (or reset) at the current one."""

    def test_an_email_change_is_told_to_the_old_address(self, make_user, client_for):
        user = make_user(email="owner@example.com", username="owner")
        response = client_for(user).put(f"/api/v1/user/{user.pk}", {"email": "new@example.com"}, format="json")
        assert response.status_code == 200
        outbox_dispatch_until_empty()
        [notice] = mail.outbox
        assert notice.to == ["owner@example.com"] and notice.subject == "The email of your account was changed"
        body = " ".join(notice.body.split())
        assert "from owner@example.com to n•••@example.com" in body and "new@example.com" not in body
        assert "new@example.com" not in notice.alternatives[0][0]

    def test_a_password_change_and_a_reset_are_told_to_the_account(self, make_user, client_for, api_client):
        from accounts.tests.factories import DEFAULT_PASSWORD

        user = make_user(email="careful@example.com")
        assert client_for(user).put(f"/api/v1/user/{user.pk}", {"password": NEW_PASSWORD, "currentPassword": DEFAULT_PASSWORD},
                                    format="json").status_code == 200
        outbox_dispatch_until_empty()
        assert [(m.to, m.subject) for m in mail.outbox] == [(["careful@example.com"], "Your password was changed")]

        mail.outbox.clear()
        ask(api_client, "careful@example.com")
        link = reset_email()
        mail.outbox.clear()
        assert confirm(api_client, link["uid"], link["token"], password="Third-pass-word-3").status_code == 204
        outbox_dispatch_until_empty()
        assert [m.subject for m in mail.outbox] == ["Your password was changed"]

    def test_a_profile_change_without_email_or_password_tells_nobody(self, make_user, client_for):
        user = make_user()
        client_for(user).put(f"/api/v1/user/{user.pk}", {"username": "renamed-quietly"}, format="json")
        outbox_dispatch_until_empty()
        assert mail.outbox == []

    @pytest.mark.parametrize("kind", ["EMAIL_CHANGED", "PASSWORD_CHANGED"])
    def test_notices_are_not_templates_anyone_may_request(self, make_user, client_for, kind):
        response = client_for(make_user(roles=["ADMIN"])).post("/notifications", {
            "type": kind, "recipient": "someone@example.com", "data": {}}, format="json")
        assert_error(response, 400, fields=["type"])


@pytest.mark.parametrize("backend, redacted", [("django.core.mail.backends.console.EmailBackend", False),
                                               ("django.core.mail.backends.smtp.EmailBackend", True)])
def test_the_console_email_backends_output_is_the_delivery_and_stays_whole(settings, backend, redacted):
    """In development (no EMAIL_HOST) the worker prints each email (Celery's celery.redirected
    logger): the reset link there is what the developer follows. Anything else is redacted."""
    import logging

    from ops.middleware import RequestIDLogFilter

    settings.EMAIL_BACKEND = backend
    line = "http://127.0.0.1:8000/accounts/reset/MQ/cyn3ux-0123456789abcdef/"
    printed = logging.LogRecord("celery.redirected", logging.WARNING, __file__, 1, line, None, None)
    RequestIDLogFilter().filter(printed)
    assert ("<token>" in printed.getMessage()) is redacted


@pytest.mark.parametrize("debug, backend, warned", [
    (False, "django.core.mail.backends.console.EmailBackend", True),
    (False, "django.core.mail.backends.smtp.EmailBackend", False),
    (True, "django.core.mail.backends.console.EmailBackend", False)])
def test_check_deploy_warns_when_emails_would_only_be_printed(settings, debug, backend, warned):
    from ops.checks import emails_are_sent

    settings.DEBUG, settings.EMAIL_BACKEND = debug, backend
    assert [w.id for w in emails_are_sent(None)] == (["ops.W001"] if warned else [])


class WallClock(datetime):
    """`datetime` as a process in TIME_ZONE sees it: `now()` without a zone is the local wall
    clock (Django sets the process's TZ to TIME_ZONE), here the frozen instant's (freezegun
    would read it as UTC)."""

    @classmethod
    def now(cls, tz=None):
        moment = timezone.now()
        return moment.astimezone(tz) if tz else timezone.localtime(moment).replace(tzinfo=None)


@pytest.fixture
def wall_clock(monkeypatch):
    for module in ("django.contrib.auth.tokens", "accounts.password_reset"):
        monkeypatch.setattr(f"{module}.datetime", WallClock, raising=False)


# New York: 2031-11-02 the clocks go back 02:00 EDT → 01:00 EST; 2031-03-09 forward 02:00 EST → 03:00 EDT.
@pytest.mark.parametrize(("asked", "used", "status"), [
    (datetime(2031, 11, 2, 5, 50, tzinfo=UTC), datetime(2031, 11, 2, 6, 55, tzinfo=UTC), 400),  # 01:50 EDT → 01:55 EST: 65 min
    (datetime(2031, 3, 9, 6, 45, tzinfo=UTC), datetime(2031, 3, 9, 7, 5, tzinfo=UTC), 204),     # 01:45 EST → 03:05 EDT: 20 min
])
def test_a_links_lifetime_is_real_seconds_across_a_dst_change(api_client, make_user, settings, wall_clock,
                                                              asked, used, status):
    """PASSWORD_RESET_TTL is elapsed time: Django's generator dates a token by the local wall
    clock, so a link lived two hours through the hour the clocks go back, and twenty minutes
    through the hour they skip."""
    settings.TIME_ZONE, settings.PASSWORD_RESET_TIMEOUT = "America/New_York", 3600
    make_user(email="dst@example.com")
    with freeze_time(asked):
        ask(api_client, "dst@example.com")
        link = reset_email()
    with freeze_time(used):
        response = confirm(api_client, link["uid"], link["token"])
    assert response.status_code == status, response.content


def test_a_link_dated_in_the_future_is_refused(api_client, make_user, settings):
    """A link whose date lies ahead (made on a clock later than ours: one dated by a server's
    wall clock east of UTC, before reset links were dated in UTC) is not valid for longer."""

    class LocalClockGenerator(PasswordResetTokenGenerator):
        def _now(self):
            return timezone.localtime().replace(tzinfo=None)

    settings.TIME_ZONE = "Asia/Kathmandu"
    user = make_user(email="east@example.com")
    moment = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    with freeze_time(moment):
        token = LocalClockGenerator().make_token(user)  # dated 17:45, 5 h 45 min ahead
    with freeze_time(moment + timedelta(minutes=1)):
        response = confirm(api_client, urlsafe_base64_encode(force_bytes(user.pk)), token)
    assert_error(response, 400, code="invalid_reset_link")


def test_an_email_stored_before_nfkc_normalization_is_found_as_typed(api_client, make_user):
    """Emails are stored NFKC-normalized since accounts.selectors.normalized_email; an account
    stored before keeps "x@ｅｘａｍｐｌｅ.com". Its login is found as typed (user_find_for_login):
    a reset request typed the same way must find it too, not answer "queued" and send nothing."""
    user = make_user(username="legacy", email="legacy@example.com")
    User.objects.filter(pk=user.pk).update(email="legacy@ｅｘａｍｐｌｅ.com")
    assert api_client.post("/api/v1/auth/login", {"username": "legacy@ｅｘａｍｐｌｅ.com", "password": "x"},
                           format="json").status_code == 401  # found (a wrong password), as typed
    assert ask(api_client, "legacy@ｅｘａｍｐｌｅ.com").status_code == 202
    assert OutboxEvent.objects.filter(event_type="PASSWORD_RESET", payload__userId=user.pk).count() == 1
