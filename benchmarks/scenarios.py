"""The measured phases. Each returns plain dicts / LoadResults that report.py turns into a table."""

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

from . import data
from .load import LoadResult, run_wrk
from .stack import ROOT, redis_llen

CONNECTIONS = 64


class World:
    """Everything the HTTP phases need: users, tokens, the hot item."""

    def __init__(self):
        self.floor_tokens: list[str] = []
        self.booking_tokens: dict[str, list[str]] = {}
        self.hot_item_id: int | None = None
        self.spare_booker = None
        self.timings: dict[str, float] = {}


def load_http_data(size: dict) -> World:
    from django.utils import timezone

    world = World()
    started = time.perf_counter()
    organizers = data.users_create(20, prefix="org", roles=("EVENT_ORGANIZER",))
    customers = data.users_create(size["list_users"], prefix="cust")
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    per_item = size["list_bookings"] // size["list_items"]
    active = data.active_per_item(per_item)
    items = data.items_create(size["list_items"], organizers=organizers, start=now + timedelta(days=30),
                              step=timedelta(hours=2), capacities=[15, 35], active_per_item=active)
    world.list_bookings = data.bookings_create(items, customers, per_item=per_item)
    pool = size["booking_pool"]
    bookers = data.users_create(sum(pool.values()) + 1, prefix="booker")
    world.spare_booker = bookers.pop()
    capacity = len(bookers) + 100
    quarter = capacity // 4
    hot = data.items_create(1, organizers=organizers, start=now + timedelta(days=400), step=timedelta(hours=2),
                            capacities=[quarter, quarter, quarter, capacity - 3 * quarter], name="Hot show")[0]
    world.hot_item_id = hot.pk
    world.timings["load_http_data_s"] = time.perf_counter() - started
    started = time.perf_counter()
    tokens = data.access_tokens(bookers)
    for name, count in pool.items():
        world.booking_tokens[name], tokens = tokens[:count], tokens[count:]
    world.floor_tokens = data.access_tokens(customers[:CONNECTIONS])
    world.timings["tokens_s"] = time.perf_counter() - started
    return world


def query_counts(world: World) -> dict[str, int]:
    """SQL statements per request, through the same URL conf in this process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {world.floor_tokens[0]}")
    booker = Client(HTTP_AUTHORIZATION=f"Bearer {data.access_tokens([world.spare_booker])[0]}")
    counts = {}
    for name, call in (
        ("floor", lambda: client.get("/bench/noop")),
        ("user_me", lambda: client.get("/api/v1/user/me")),
        ("items_all", lambda: client.get("/api/v1/items")),
        ("items_page", lambda: client.get("/api/v1/items?page=1&pageSize=20")),
        ("booking", lambda: booker.post(f"/api/v1/bookings/items/{world.hot_item_id}", data="{}",
                                        content_type="application/json")),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = call()
        if response.status_code >= 300:
            raise RuntimeError(f"{name}: unexpected {response.status_code} {response.content[:300]!r}")
        counts[name] = len(captured.captured_queries)
    return counts


def cpu_accounted(stack, run) -> LoadResult:
    """`run()` (a measured wrk run) with the CPU each process group spent per successful
    response: where a request's cost goes (web / worker / PostgreSQL / Redis / wrk itself)."""
    import resource

    before, children = stack.cpu_by_role(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run()
    after, children_after = stack.cpu_by_role(), resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    spent["wrk"] = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    result.extra["cpu_ms"] = {role: round(seconds * 1000 / max(1, result.ok), 3) for role, seconds in spent.items()}
    return result


def http(stack, *, name: str, path: str, tokens: list[str], size: dict, method="GET", body=None,
         expected=("200",), warm_tokens=None, connections: int = CONNECTIONS, seconds=None) -> LoadResult:
    stack.check_alive()
    stack.wait_idle()
    run_wrk(name=f"{name} warm-up", url=stack.base_url, path=path, tokens=warm_tokens or tokens,
            seconds=size["warmup"], connections=connections, method=method, body=body, expected=expected)
    stack.wait_idle()
    result = cpu_accounted(stack, lambda: run_wrk(
        name=name, url=stack.base_url, path=path, tokens=tokens, seconds=seconds or size["duration"],
        connections=connections, method=method, body=body, expected=expected))
    result.extra["connections"] = connections
    print(f"  {name:<28} {result.ok_per_second:8.1f} ok/s  p50 {result.p50_ms:7.1f} ms  "
          f"p99 {result.p99_ms:7.1f} ms  other {result.unexpected or '-'}", flush=True)
    print(f"    CPU ms per response: {result.extra['cpu_ms']}", flush=True)
    return result


class LockSampler(threading.Thread):
    """pg_stat_activity of the bench DB every 100 ms: how many backends wait on a lock."""

    def __init__(self, dsn: str, database: str):
        super().__init__(daemon=True)
        self.dsn, self.database = dsn, database
        self.samples = 0
        self.states = Counter()
        self.stopping = threading.Event()

    def run(self):
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stopping.wait(0.1):
                rows = conn.execute(
                    "SELECT coalesce(state, 'starting'), coalesce(wait_event_type, ''), coalesce(wait_event, '') "
                    "FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,)).fetchall()
                self.samples += 1
                for state, wait_type, wait_event in rows:
                    key = "lock wait" if wait_type == "Lock" else (
                        "idle in transaction" if state == "idle in transaction" else state)
                    self.states[key] += 1
                    if wait_type == "Lock":
                        self.states[f"lock wait: {wait_event}"] += 1

    def average(self) -> dict[str, float]:
        return {k: round(v / max(1, self.samples), 2) for k, v in sorted(self.states.items())}


def booking_load(stack, world: World, size: dict) -> LoadResult:
    dsn = stack.env["DATABASE_URL"].replace("postgres://", "postgresql://")
    stack.check_alive()
    path = f"/api/v1/bookings/items/{world.hot_item_id}"
    stack.wait_idle()
    run_wrk(name="booking warm-up", url=stack.base_url, path=path, tokens=world.booking_tokens["warm"],
            seconds=size["warmup"], connections=CONNECTIONS, method="POST", body="{}", expected=("201",))
    stack.wait_idle()
    sampler = LockSampler(dsn, "bench_bookings")
    sampler.start()
    result = cpu_accounted(stack, lambda: run_wrk(
        name="booking (hot item)", url=stack.base_url, path=path, tokens=world.booking_tokens["measure"],
        seconds=size["duration"], connections=CONNECTIONS, method="POST", body="{}", expected=("201",)))
    sampler.stopping.set()
    sampler.join()
    result.extra["connections"] = CONNECTIONS
    result.extra["pg_backends_avg"] = sampler.average()
    result.extra["celery_queue_after"] = redis_llen()
    print(f"  {'booking (hot item)':<28} {result.ok_per_second:8.1f} ok/s  p50 {result.p50_ms:7.1f} ms  "
          f"p99 {result.p99_ms:7.1f} ms  other {result.unexpected or '-'}", flush=True)
    print(f"    CPU ms per response: {result.extra['cpu_ms']}", flush=True)
    print(f"    backends (avg per sample): {result.extra['pg_backends_avg']}", flush=True)
    return result


def outbox_drain(stack, timeout: float) -> dict:
    """Wait until no event is PENDING (the booking phase's backlog): seconds and events/s."""
    from ops.models import OutboxEvent, OutboxStatus

    pending = OutboxEvent.objects.filter(status=OutboxStatus.PENDING)
    start_count, started = pending.count(), time.perf_counter()
    while pending.exists() and time.perf_counter() - started < timeout:
        stack.check_alive()
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    left = pending.count()
    return {"events": start_count - left, "left": left, "seconds": seconds,
            "per_second": (start_count - left) / seconds if seconds else 0.0}


def outbox_delivery(stack, count: int, timeout: float) -> dict:
    """`count` GENERIC emails enqueued at once, one nudge; time until all are SENT."""
    from ops.models import OutboxEvent, OutboxStatus
    from ops.outbox import outbox_nudge

    smtp_before = stack.smtp.count
    OutboxEvent.objects.bulk_create(
        (OutboxEvent(event_type="GENERIC", recipient_email=f"reader{i}@bench.local",
                     payload={"subject": f"Bench notice {i}", "message": "Your seat is waiting.",
                              "data": {"n": i}}) for i in range(count)), batch_size=5000)
    ours = OutboxEvent.objects.filter(event_type="GENERIC")
    started = time.perf_counter()
    outbox_nudge()
    while ours.filter(status=OutboxStatus.SENT).count() < count and time.perf_counter() - started < timeout:
        stack.check_alive()
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    sent = ours.filter(status=OutboxStatus.SENT).count()
    time.sleep(0.5)  # the SMTP thread may still be counting the last message
    return {"events": count, "sent": sent, "dead": ours.filter(status=OutboxStatus.DEAD).count(),
            "seconds": seconds, "per_second": sent / seconds if seconds else 0.0,
            "smtp_received": stack.smtp.count - smtp_before, "smtp_duplicates": stack.smtp.duplicates()}


def reconcile_probe(env: dict, *, tracemalloc: bool = False) -> dict:
    command = [sys.executable, "-m", "benchmarks.recon_probe"] + (["--tracemalloc"] if tracemalloc else [])
    done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])


def reconciliation(env: dict, sizes: tuple[int, ...], *, drift: float = 0.01) -> list[dict]:
    """Grow the live items to each size, (re)build documents, drift 1%, reconcile in a fresh process."""
    from catalog.models import BookableItem
    from django.utils import timezone
    from ops.models import Document
    from ops.routers import DOCUMENTS_DB

    from accounts.models import User

    Document.objects.using(DOCUMENTS_DB).filter(entity_type="item").delete()
    organizers = list(User.objects.filter(username__startswith="org"))
    built_to, results = 0, []
    for target in sizes:
        started = time.perf_counter()
        live = BookableItem.objects.filter(deleted_at__isnull=True).count()
        if target > live:
            data.items_create(target - live, organizers=organizers, start=timezone.now() + timedelta(days=800),
                              step=timedelta(minutes=1), capacities=[60, 40], name=f"Recon {target}")
        data.documents_build(after_pk=built_to)
        built_to = BookableItem.objects.order_by("-pk").values_list("pk", flat=True).first()
        tampered = data.documents_tamper(drift, seed=target % 997)
        load_seconds = time.perf_counter() - started
        result = reconcile_probe(env)
        result.update(items=target, tampered=tampered, load_seconds=load_seconds)
        expected = {k: tampered[k] for k in ("created", "updated", "deleted")}
        got = {k: result["summary"][k] for k in ("created", "updated", "deleted")}
        result["repairs_match"] = expected == got
        results.append(result)
        print(f"  reconcile {target:>7} items  {result['per_second']:8.0f} entities/s  "
              f"peak RSS +{result['rss_peak_delta_mb']:.1f} MB  repairs {got} expected {expected}", flush=True)
    return results
