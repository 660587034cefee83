"""What a hung Redis costs a request: `python -m benchmarks.redis_hang_probe`.

Starts a private redis-server on a free port, points a fresh SQLite install at it (REDIS_URL),
then stops the Redis process with SIGSTOP — it keeps its socket open and answers nothing, as a
wedged server or a partition that drops packets would — and times, in-process, a booking, an
item list, a login and /readyz. Prints one line per request. Numbers on the 2-core machine of
docs/OPERATIONS.md ("Rate limits when Redis is down"): a booking took 11.5 s before Redis was
put to rest after a failure (bookings_project.cache); now 1.0 s for the first one, then 0.5 s
(the catalog version bump, which tries Redis every time), and an item list or a login waits for
nothing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def main() -> None:
    from bookings_project.testing import free_port

    port = free_port()
    var_dir = tempfile.mkdtemp(prefix="redis-hang-")
    os.environ.update(DJANGO_SETTINGS_MODULE="bookings_project.settings", REDIS_URL=f"redis://127.0.0.1:{port}/0",
                      VAR_DIR=var_dir, ALLOWED_HOSTS="*", DEMO_DATA="0")
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        run(redis)
    finally:
        os.kill(redis.pid, signal.SIGCONT)
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(var_dir, ignore_errors=True)


def run(redis: subprocess.Popen) -> None:
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from accounts.models import User
    from accounts.tokens import token_pair_for_user
    from catalog.services import item_create

    call_command("migrate", verbosity=0)
    call_command("migrate", database="documents", verbosity=0)
    organizer = User.objects.create_user(username="organizer", email="o@example.com", password="x",
                                         roles=["EVENT_ORGANIZER"])
    start = timezone.now() + timedelta(days=30)
    item = item_create(organizer=organizer, name="Hot", start_time=start, end_time=start + timedelta(hours=2),
                       capacity=50)
    client = Client()

    tokens = [token_pair_for_user(User.objects.create_user(username=f"u{n}", email=f"u{n}@example.com",
                                                           password="Sup3r-secret-pw"))[0] for n in range(4)]

    def book(n: int):  # (users made beforehand: hashing their passwords is not what is measured)
        return client.post(f"/api/v1/bookings/items/{item.pk}", "{}", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {tokens[n]}")

    def timed(label: str, request) -> None:
        began = time.monotonic()
        status = request().status_code
        print(f"{label}: {status} in {time.monotonic() - began:.2f} s", flush=True)

    timed("booking, Redis answering", lambda: book(0))
    os.kill(redis.pid, signal.SIGSTOP)
    for n in (1, 2, 3):
        timed(f"booking {n}, Redis hung", lambda: book(n))
    timed("GET /api/v1/items, Redis hung", lambda: client.get("/api/v1/items"))
    timed("login, Redis hung (password hashing included)", lambda: client.post(
        "/api/v1/auth/login", json.dumps({"username": "u0", "password": "Sup3r-secret-pw"}),
        content_type="application/json"))
    timed("GET /readyz, Redis hung", lambda: client.get("/readyz"))


if __name__ == "__main__":
    sys.exit(main())
