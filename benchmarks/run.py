"""`make bench` entry point: `python -m benchmarks.run [--quick] [--profile] [--output PATH]`.

Starts the production shape on this machine, loads data through the ORM, measures, checks that
nothing was oversold or lost, writes the report, and tears everything down (also on Ctrl-C).
"""

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path

from .stack import ROOT, Stack

SIZES = {
    "full": {"list_items": 1000, "list_bookings": 20_000, "list_users": 2000,
             "booking_pool": {"warm": 2500, "measure": 10_000, "profile": 5000},
             "warmup": 3, "duration": 15, "outbox": 10_000, "recon": (20_000, 100_000),
             "drain_timeout": 240, "outbox_timeout": 600},
    "quick": {"list_items": 200, "list_bookings": 4000, "list_users": 400,
              "booking_pool": {"warm": 600, "measure": 2000, "profile": 1500},
              "warmup": 2, "duration": 5, "outbox": 1000, "recon": (2000, 10_000),
              "drain_timeout": 60, "outbox_timeout": 120},
}
GOAL_BOOKING, GOAL_ITEMS = 0.5, 0.4


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (~2 minutes)")
    parser.add_argument("--profile", action="store_true", help="profile every scenario, not only missed goals")
    parser.add_argument("--no-profile", action="store_true", help="never run the profilers")
    parser.add_argument("--output", type=Path, help="report path (default docs/BENCHMARKS.md; "
                                                    "--quick: var/bench/BENCHMARKS-quick.md)")
    parser.add_argument("--web-workers", help="WEB_CONCURRENCY for gunicorn (default: runstack's, 4)")
    return parser.parse_args(argv)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    var_dir = ROOT / "var" / "bench"
    var_dir.mkdir(parents=True, exist_ok=True)
    output = args.output or (var_dir / "BENCHMARKS-quick.md" if args.quick else ROOT / "docs" / "BENCHMARKS.md")
    from .load import wrk_available

    if not wrk_available():
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    lock = open(var_dir / "bench.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another `make bench` is running (var/bench/bench.lock)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    stack = Stack(web_workers=args.web_workers, var_dir=var_dir)
    stack.load_at_start = " ".join(open("/proc/loadavg").read().split()[:3])
    started = time.perf_counter()
    try:
        report = run(stack, size=size, mode=mode, args=args)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report)
        print(f"\nReport written to {output} ({time.perf_counter() - started:.0f} s).")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; tearing down", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run(stack: Stack, *, size: dict, mode: str, args) -> str:
    from . import scenarios
    from .profile import profile_in_process, sample_server
    from .report import machine_facts, render

    timings = {}

    def phase(name):
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        return time.perf_counter()

    t = phase("prepare: fresh databases, Redis DB 9, migrations, SMTP")
    stack.prepare()
    timings["prepare_s"] = time.perf_counter() - t
    t = phase("load: users, items, tiers, bookings, tokens (bulk_create)")
    world = scenarios.load_http_data(size)
    timings.update(world.timings, list_bookings=world.list_bookings)
    t = phase("start: gunicorn, celery worker, beat")
    stack.start()
    stack.web_workers_effective = len(stack.web_pids()) - 1
    timings["start_s"] = time.perf_counter() - t
    queries = scenarios.query_counts(world)
    print(f"  SQL statements per request: {queries}", flush=True)

    t = phase("HTTP phases (wrk, 64 connections)")
    floor_tokens = world.floor_tokens
    floors = [scenarios.http(stack, name="floor (noop)", path="/bench/noop", tokens=floor_tokens, size=size)]
    me = scenarios.http(stack, name="GET /user/me", path="/api/v1/user/me", tokens=floor_tokens, size=size)
    # 1,000 items take ~1 s of CPU per request here: 64 queued requests would wait past wrk's
    # timeout, so this list runs with 8 connections (still 4× the cores: the server stays saturated).
    items_all = scenarios.http(stack, name="GET /items (all)", path="/api/v1/items", tokens=floor_tokens, size=size,
                               connections=8, seconds=max(size["duration"], 20))
    items_page = scenarios.http(stack, name="GET /items page 20", path="/api/v1/items?page=1&pageSize=20",
                                tokens=floor_tokens, size=size)
    floors.append(scenarios.http(stack, name="floor (noop) again", path="/bench/noop", tokens=floor_tokens, size=size))
    booking = scenarios.booking_load(stack, world, size)
    timings["http_s"] = time.perf_counter() - t
    floor = sum(f.ok_per_second for f in floors) / len(floors)

    t = phase("audit: oversell and seat counters")
    audit = scenarios.data.seat_audit()
    print(f"  {audit}", flush=True)
    t = phase("outbox: backlog of the booking phase")
    drain = scenarios.outbox_drain(stack, size["drain_timeout"])
    print(f"  {drain}", flush=True)
    t = phase(f"outbox: {size['outbox']:,} emails through Celery + Redis to SMTP")
    outbox = scenarios.outbox_delivery(stack, size["outbox"], size["outbox_timeout"])
    timings["outbox_s"] = time.perf_counter() - t
    print(f"  {outbox}", flush=True)

    booking_ratio, items_ratio = booking.ok_per_second / floor, items_all.ok_per_second / floor
    goals = [(f"booking throughput on one hot item ≥ {GOAL_BOOKING} × floor: {booking_ratio:.3f}", booking_ratio >= GOAL_BOOKING),
             (f"GET /api/v1/items (all {size['list_items']:,} items) ≥ {GOAL_ITEMS} × floor: {items_ratio:.4f}",
              items_ratio >= GOAL_ITEMS),
             (f"no oversell, counters exact: {audit['ok']}", audit["ok"]),
             (f"outbox: all {outbox['events']:,} events SENT, none twice: "
              f"{outbox['sent'] == outbox['events'] and not outbox['smtp_duplicates']}",
              outbox["sent"] == outbox["events"] and not outbox["smtp_duplicates"])]

    profiles = {}
    if not args.no_profile:
        want_booking = args.profile or booking_ratio < GOAL_BOOKING
        want_items = args.profile or items_ratio < GOAL_ITEMS
        t = phase("profiles")
        from .load import run_wrk

        seconds = max(6, size["duration"])
        if want_items:
            stack.wait_idle()
            profiles["GET /api/v1/items (all) — gunicorn workers under load"] = sample_server(
                stack.web_pids()[1:], seconds - 2, lambda: run_wrk(
                    name="items profile", url=stack.base_url, path="/api/v1/items", tokens=floor_tokens,
                    seconds=seconds, connections=8), keep=stack.var_dir / "profile-items.txt")
            from django.test import Client

            client = Client(HTTP_AUTHORIZATION=f"Bearer {floor_tokens[0]}")
            profiles["GET /api/v1/items (all) — cProfile in process, 3 requests"] = profile_in_process(
                lambda: client.get("/api/v1/items"))
        if want_booking:
            stack.wait_idle()
            profiles["POST /api/v1/bookings/items/{hot} — gunicorn workers under load"] = sample_server(
                stack.web_pids()[1:], seconds - 2, lambda: run_wrk(
                    name="booking profile", url=stack.base_url, path=f"/api/v1/bookings/items/{world.hot_item_id}",
                    tokens=world.booking_tokens["profile"], seconds=seconds, connections=scenarios.CONNECTIONS,
                    method="POST", body="{}", expected=("201",)), keep=stack.var_dir / "profile-booking.txt")
        profiles = {k: v for k, v in profiles.items() if v is not None}
        timings["profiles_s"] = time.perf_counter() - t

    facts = machine_facts(stack)
    t = phase("stop web and workers; reconciliation in fresh processes")
    stack.stop_processes()
    env = {**os.environ, **stack.env}
    recon = scenarios.reconciliation(env, size["recon"])
    timings["reconciliation_s"] = time.perf_counter() - t
    flat = len(recon) < 2 or recon[0]["rss_peak_delta_mb"] <= 0 or \
        recon[-1]["rss_peak_delta_mb"] / recon[0]["rss_peak_delta_mb"] < 1.5
    goals.append((f"reconciliation memory flat from {recon[0]['items']:,} to {recon[-1]['items']:,} items "
                  f"(+{recon[0]['rss_peak_delta_mb']:.1f} → +{recon[-1]['rss_peak_delta_mb']:.1f} MB peak RSS)", flat))
    goals.append(("reconciliation repaired exactly the planted drift", all(r["repairs_match"] for r in recon)))

    http_rows = [
        ("floor: GET /bench/noop (JWT + user query)", floors[0], "floor", None),
        ("GET /api/v1/user/me (JWT + user query + serializer)", me, "user_me", None),
        (f"GET /api/v1/items, all {size['list_items']:,} items ({items_all.mbytes / max(1, items_all.requests) * 1000:.0f} kB each)",
         items_all, "items_all", GOAL_ITEMS),
        ("GET /api/v1/items?page=1&pageSize=20", items_page, "items_page", None),
        ("POST /api/v1/bookings/items/{hot}: 201s, 64 users at a time", booking, "booking", GOAL_BOOKING),
    ]
    print("\nGoals:")
    for text, met in goals:
        print(f"  {'MET ' if met else 'MISS'} {text}")
    return render(mode=mode, args=" ".join(sys.argv[1:]), facts=facts, floor=floor, floors=floors, http=http_rows,
                  queries=queries, audit=audit, booking=booking, drain=drain, outbox=outbox, recon=recon,
                  profiles=profiles, goals=goals, timings=timings, size=size)


if __name__ == "__main__":
    sys.exit(main())
