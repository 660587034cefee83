"""Support for the test suite and `make bench` (never imported by the app itself).

LoopbackSMTP: a real SMTP server (aiosmtpd) on 127.0.0.1 for runs that send real mail.
`keep_messages=False` only counts and records Message-IDs, which keeps a 10,000-email benchmark
from parsing every message in the measuring process.
"""

import asyncio
import re
import socket
import threading
import time
from pathlib import Path

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

# Callers of the role matrices whose token was valid when issued and has been revoked since
# (the root conftest's `revoked_client_for`).
REVOKED_CALLERS = ("deactivated", "stale_password")


def wait_for(predicate, timeout: float, *, interval: float = 0.1, ignore: tuple = ()) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; exceptions of the
    types in `ignore` (e.g. OSError while a server starts) count as false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except ignore:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def race(calls) -> list:
    """Run the zero-argument `calls` at the same moment in threads; their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each racer got
            results[index] = exc
        finally:
            from django.db import connections

            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(alias: str) -> str:
    """A URL for the (test) database behind `alias`, for subprocesses of a test."""
    from django.db import connections

    s = connections[alias].settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class LoopbackSMTP:
    """A real SMTP server on 127.0.0.1 that records what it receives and can be stopped and
    restarted on the same port to simulate an outage."""

    def __init__(self, *, keep_messages: bool = True, port: int | None = None):
        self.port = port or free_port()
        self.keep_messages = keep_messages
        self.messages = []
        self.ids = []
        self.count = 0
        self.delay = 0.0  # seconds to wait before accepting each message (a slow server)
        self.reply = None  # e.g. "421 Try again later" / "550 No such user": refuse every message
        self._controller = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reply:
            return self.reply
        raw = envelope.original_content or envelope.content
        head = raw.split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(head)
        with self._lock:
            self.count += 1
            self.ids.append(found.group(1).decode() if found else None)
            if self.keep_messages:
                from email import message_from_bytes, policy

                message = message_from_bytes(raw, policy=policy.default)
                self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                                      "message": message})
        return "250 Message accepted for delivery"

    def start(self):
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # one INFO line per SMTP command

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self):
        return list(self.ids)

    def duplicates(self) -> int:
        ids = [i for i in self.ids if i]
        return len(ids) - len(set(ids))


# Browser tests (pytest -m browser): Debian's Chromium driven by Playwright (conftest's
# `browser`, `page` and `expect` fixtures); screenshots land in test-artifacts/.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_screenshot(page, name: str) -> None:
    from django.conf import settings

    artifacts = Path(settings.BASE_DIR) / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


class HangingProxy:
    """A TCP proxy on 127.0.0.1 to `target` (host, port) that can be frozen: while `hung`, it
    keeps every connection open and takes every byte but forwards nothing, in either direction —
    a server that hangs with its connections open (a frozen process, storage that stopped
    answering), which the kernel's acknowledgements and keepalives never reveal."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.hung = False
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._sockets = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                return
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while data := source.recv(65536):
                if not self.hung:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        # shutdown() first: a bare close() leaves a socket another thread is blocked reading
        # open, so the upstream database session outlived the test and the test database could
        # not be dropped at the end of the run ("being accessed by other users").
        for sock in self._sockets:
            for end in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
                try:
                    end()
                except OSError:
                    pass
