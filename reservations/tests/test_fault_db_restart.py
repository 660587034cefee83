"""Issue 8 fault test: the database restarts while bookings are being made over HTTP.

A private PostgreSQL cluster (never the shared one) backs a real gunicorn (2 workers × 4
threads, Django's connection pool on). Eight client threads book seats; meanwhile the cluster
is stopped (`-m fast`, then `-m immediate`) and started again ~2 s later. Every response must
be a 201 or a JSON error in the contract's envelope (503 + Retry-After for the outage, 400 for
a full item) — no 500, no HTML, no hang; bookings succeed again shortly after each restart;
and afterwards the database holds no partial booking: seat counters match the active
bookings, every booking has exactly its BOOKING_CONFIRMED and DOCUMENT_SYNC outbox events,
and exactly the requests answered 201 left a booking behind.
"""

import glob
import http.client
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from conftest import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENT_TIMEOUT = 15.0   # a response slower than this is a hang
RECOVERY_BOUND = 10.0   # seconds after the database is back by which bookings succeed again
USERS = 40
ITEMS = 60              # one day apart, so a user's bookings never overlap
CAPACITY, TIERS = 30, (("Early", "10.00", 10), ("Late", "25.50", 20))  # 40 users > 30 seats
PASSWORD = "Fault-test-passw0rd!"
ENVELOPE = {"status", "error", "message", "path", "timestamp"}


# --- the private cluster --------------------------------------------------------------------

def _pg_bindir() -> str | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        bindir = os.path.dirname(initdb)
        if os.path.exists(os.path.join(bindir, "pg_ctl")) and os.path.exists(os.path.join(bindir, "postgres")):
            return bindir
    return None


class PrivateCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>, run as the `postgres` OS user."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="fault-db-restart-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root without runuser: cannot start a private PostgreSQL")
            self.as_owner = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.root, user="postgres", group="postgres")
        os.chmod(self.root, 0o700)

    def run(self, *args, timeout=60, check=True):
        command = [*self.as_owner, os.path.join(self.bindir, args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
                               f"\n{self.log_tail()}")
        return result

    def init(self):
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self):
        # fsync=off is safe here: a stop, even `-m immediate`, is a server crash, not an OS
        # crash, so everything written reaches the page cache. synchronous_commit stays on: a
        # 201 must mean the booking survives the restart.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c max_connections=60")
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str, check=True):
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=check)

    def createdb(self, name: str):
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def destroy(self):
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster():
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not installed")
    pg = PrivateCluster(bindir)
    try:
        pg.init()
        pg.start()
        pg.createdb("fault_bookings")
        pg.createdb("fault_documents")
        yield pg
    finally:
        pg.destroy()


# --- the web app ----------------------------------------------------------------------------

def app_env(pg: PrivateCluster, var_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "DOCUMENTS_DATABASE_URL"}
           and not k.startswith(("DB_", "PYTEST_"))}
    env.update(
        DATABASE_URL=pg.url("fault_bookings"), DOCUMENTS_DATABASE_URL=pg.url("fault_documents"),
        VAR_DIR=str(var_dir), DEBUG="0", RATE_LIMIT_ENABLED="0", LOG_LEVEL="WARNING",
        SECRET_KEY="fault-test-secret-key-0123456789-abcdefghijklmnop",
        JWT_SIGNING_KEY="fault-test-jwt-signing-key-0123456789-abcdefghijkl",
        PASSWORD_HASHERS="django.contrib.auth.hashers.MD5PasswordHasher",  # fast logins (test only)
        MAX_ACTIVE_BOOKINGS_PER_USER="1000",
        DB_POOL="1", DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="4", DB_POOL_TIMEOUT="10", DB_CONNECT_TIMEOUT="5",
    )
    env.update(extra)
    return env


def manage(env, *args, timeout=120) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


SEED = f"""
import json
from datetime import datetime, timedelta
from decimal import Decimal
from django.utils import timezone
from accounts.models import User
from catalog.services import item_create
organizer = User.objects.create_user(username="fault-organizer", email="fault-organizer@example.com",
                                     password={PASSWORD!r}, roles=["EVENT_ORGANIZER"])
users = [User.objects.create_user(username=f"fault-user{{n}}", email=f"fault-user{{n}}@example.com",
                                  password={PASSWORD!r}, roles=["USER"]) for n in range({USERS})]
first = timezone.make_aware(datetime(2031, 9, 15, 10, 0))
items = [item_create(organizer=organizer, name=f"Fault item {{n}}", start_time=first + timedelta(days=n),
                     end_time=first + timedelta(days=n, hours=2), capacity={CAPACITY}, is_private=False,
                     price_tiers=[{{"name": t, "price": Decimal(p), "max_capacity": m}} for t, p, m in {TIERS!r}])
         for n in range({ITEMS})]
print("SEED" + json.dumps({{"users": [u.username for u in users], "items": [i.pk for i in items]}}))
"""


class Http:
    def __init__(self, port: int):
        self.port = port

    def request(self, method, path, body=None, token=None, timeout=CLIENT_TIMEOUT):
        """(status, headers, raw body); raises OSError / http.client errors on transport faults."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def ready(self) -> bool:
        try:
            return self.request("GET", "/readyz", timeout=2)[0] == 200
        except (OSError, http.client.HTTPException):
            return False


def wait_for(predicate, timeout, interval=0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def web(cluster, tmp_path):
    var_dir = tmp_path / "var"
    env = app_env(cluster, var_dir)
    manage({**env, "DB_POOL": "0"}, "migrate", "--noinput")
    manage({**env, "DB_POOL": "0"}, "migrate", "--database", "documents", "--noinput")
    seed = manage({**env, "DB_POOL": "0"}, "shell", "-c", SEED)
    seeded = json.loads(next(line[4:] for line in seed.splitlines() if line.startswith("SEED")))

    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bookings_project.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--timeout", "60", "--graceful-timeout", "5"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Http(port)
    try:
        assert wait_for(client.ready, timeout=30), (tmp_path / "gunicorn.log").read_text()[-3000:]
        yield {"client": client, "cluster": cluster, "log": tmp_path / "gunicorn.log", **seeded}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
        log.close()


def login_all(client: Http, usernames: list[str]) -> dict[str, str]:
    tokens: dict[str, str] = {}

    def login(username):
        status, _, body = client.request("POST", "/api/v1/auth/login", {"username": username, "password": PASSWORD})
        assert status == 200, body
        tokens[username] = json.loads(body)["token"]

    threads = [threading.Thread(target=login, args=(u,)) for u in usernames]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(tokens) == len(usernames)
    return tokens


# --- load, faults, checks -------------------------------------------------------------------

class Outcome:
    __slots__ = ("user", "item", "started", "ended", "status", "headers", "body", "fault")

    def __init__(self, user, item, started):
        self.user, self.item, self.started = user, item, started
        self.ended = self.status = self.headers = self.body = self.fault = None


def drive(client: Http, tokens: dict[str, str], pairs: "queue.Queue", stop: threading.Event,
          outcomes: list, threads=8) -> list[threading.Thread]:
    def worker():
        while not stop.is_set():
            try:
                user, item = pairs.get_nowait()
            except queue.Empty:
                return
            outcome = Outcome(user, item, time.monotonic())
            try:
                outcome.status, outcome.headers, outcome.body = client.request(
                    "POST", f"/api/v1/bookings/items/{item}", {}, token=tokens[user])
            except (OSError, http.client.HTTPException) as exc:  # timeout, reset, refused
                outcome.fault = repr(exc)
            outcome.ended = time.monotonic()
            outcomes.append(outcome)
            if outcome.status != 201:
                time.sleep(0.05)  # do not burn through the work list while the database is down

    started = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in started:
        t.start()
    return started


def problems_with(outcome: Outcome) -> str | None:
    """Why this response breaks the contract, or None."""
    if outcome.fault is not None:
        return f"transport fault {outcome.fault}"
    try:
        body = json.loads(outcome.body)
    except ValueError:
        return f"{outcome.status} with a non-JSON body {outcome.body[:200]!r}"
    if outcome.status == 201:
        return None if isinstance(body, dict) and isinstance(body.get("id"), int) else f"201 without an id: {body}"
    if outcome.status not in {400, 503}:
        return f"unexpected status {outcome.status}: {body}"
    if not isinstance(body, dict) or not ENVELOPE <= set(body) or body["status"] != outcome.status:
        return f"{outcome.status} outside the error envelope: {body}"
    if outcome.status == 503 and "Retry-After" not in outcome.headers:
        return f"503 without Retry-After: {body}"
    if outcome.status == 400 and "Capacity exceeded" not in body["message"]:
        return f"400 that is not a full item: {body}"
    if "Traceback" in outcome.body.decode(errors="replace"):
        return "stack trace in the body"
    return None


def restart(pg: PrivateCluster, mode: str, down_for: float) -> tuple[float, float]:
    stopping = time.monotonic()
    pg.stop(mode)
    time.sleep(down_for)
    pg.start()
    return stopping, time.monotonic()


def db_state(pg: PrivateCluster) -> dict:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=fault_bookings",
                         connect_timeout=5) as conn:
        q = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
        return {
            "bookings": {row[0]: (row[1], row[2]) for row in q(
                "SELECT b.id, u.username, b.item_id FROM reservations_booking b"
                " JOIN accounts_user u ON u.id = b.user_id")},
            "item_sold": q("SELECT i.id, i.sold, i.capacity, (SELECT count(*) FROM reservations_booking b"
                           " WHERE b.item_id = i.id AND b.status IN ('PENDING', 'CONFIRMED'))"
                           " FROM catalog_bookableitem i"),
            "tier_sold": q("SELECT t.id, t.sold, t.max_capacity, (SELECT count(*) FROM reservations_booking b"
                           " WHERE b.tier_id = t.id AND b.status IN ('PENDING', 'CONFIRMED'))"
                           " FROM catalog_pricetier t"),
            "confirmed_events": [int(row[0]) for row in q(
                "SELECT payload->>'bookingId' FROM ops_outboxevent WHERE event_type = 'BOOKING_CONFIRMED'")],
            "sync_events": [int(row[0]) for row in q(
                "SELECT e->>1 FROM ops_outboxevent, jsonb_array_elements(payload->'entities') e"
                " WHERE event_type = 'DOCUMENT_SYNC' AND e->>0 = 'booking'")],
        }


def test_database_restart_under_load_fails_cleanly_recovers_and_leaves_no_partial_booking(web):
    client, pg = web["client"], web["cluster"]
    tokens = login_all(client, web["users"])
    work = [(u, i) for i in web["items"] for u in web["users"]]  # each (user, item) asked for once
    random.Random(8).shuffle(work)
    work.sort(key=lambda pair: pair[1])  # item by item, so items fill up (400 Capacity exceeded)
    pairs: queue.Queue = queue.Queue()
    for pair in work:
        pairs.put(pair)
    outcomes: list[Outcome] = []
    stop = threading.Event()
    threads = drive(client, tokens, pairs, stop, outcomes)
    restarts = []
    try:
        for mode in ("fast", "immediate"):
            time.sleep(1.5)  # load against a healthy database first
            stopping, up = restart(pg, mode, down_for=2.0)
            recovered = wait_for(lambda: any(o.status == 201 and o.started >= up for o in list(outcomes)),
                                 timeout=RECOVERY_BOUND + 5, interval=0.05)
            restarts.append({"mode": mode, "stopping": stopping, "up": up, "recovered": recovered})
        time.sleep(1.5)  # and healthy again afterwards
    finally:
        stop.set()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
    assert not any(t.is_alive() for t in threads), "a client thread hung"

    counts = Counter(o.status if o.fault is None else "fault" for o in outcomes)
    report = [f"{len(outcomes)} requests: {dict(counts)}"]
    for r in restarts:
        first = min((o.ended for o in outcomes if o.status == 201 and o.started >= r["up"]), default=None)
        r["recovery"] = None if first is None else first - r["up"]
        r["503s"] = sum(o.status == 503 for o in outcomes if o.started >= r["stopping"] - 0.5
                        and o.started <= r["up"] + RECOVERY_BOUND)
        report.append(f"restart -m {r['mode']}: down {r['up'] - r['stopping']:.1f}s, "
                      f"503s {r['503s']}, first 201 {r['recovery'] if r['recovery'] is None else round(r['recovery'], 2)}s after up")
    print("\n".join(report))
    if os.environ.get("FAULT_TEST_TIMELINE"):
        for r in restarts:
            for o in sorted(outcomes, key=lambda o: o.started):
                if o.status != 201 and r["stopping"] - 1 <= o.started <= r["up"] + 5:
                    print(f"{r['mode']} {o.started - r['up']:+.2f}..{o.ended - r['up']:+.2f} {o.status} {o.body[:120]!r}")

    # 1. Every response is a 201 or a clean JSON error; nothing hung, nothing crashed.
    bad = [(o.user, o.item, p) for o in outcomes if (p := problems_with(o))]
    log = web["log"].read_text(errors="replace")
    assert not bad, f"{len(bad)} unclean responses, e.g. {bad[:5]}\n{report}\n{log[-3000:]}"
    assert "Traceback" not in log or "Internal Server Error" not in log, log[-3000:]
    # The faults were real: the outage was seen, and ordinary traffic around it too.
    assert counts[201] > 100 and counts[503] > 0, report

    # 2. Bookings succeed again within a bounded time after each restart.
    for r in restarts:
        assert r["recovered"] and r["recovery"] is not None and r["recovery"] < RECOVERY_BOUND, report
    last_up = restarts[-1]["up"]
    late = [o for o in outcomes if o.started >= last_up + RECOVERY_BOUND / 2]
    assert not any(o.status == 503 for o in late), f"503s long after the restart: {report}"

    # 3. The database is consistent: counters, outbox events, and exactly the 201s booked.
    state = db_state(pg)
    for item_id, sold, capacity, active in state["item_sold"]:
        assert sold == active <= capacity, f"item {item_id}: sold {sold}, active {active}, capacity {capacity}"
    for tier_id, sold, maximum, active in state["tier_sold"]:
        assert sold == active <= maximum, f"tier {tier_id}: sold {sold}, active {active}, max {maximum}"
    booking_ids = set(state["bookings"])
    assert Counter(state["confirmed_events"]) == Counter(booking_ids), "booking without its event, or vice versa"
    assert Counter(state["sync_events"]) == Counter(booking_ids), "booking without its document sync"

    created = {json.loads(o.body)["id"]: (o.user, o.item) for o in outcomes if o.status == 201}
    assert len(created) == counts[201]
    assert {b: pair for b, pair in state["bookings"].items()} == created, (
        "the bookings in the database are not exactly those answered 201 "
        f"({len(state['bookings'])} rows, {len(created)} 201s)")
