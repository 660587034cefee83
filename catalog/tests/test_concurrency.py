"""Catalog races on PostgreSQL with real threads, each on its own connection (SQLite cannot show
a race): the per-organizer item limit is counted under the organizer's row lock."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bookings_project.testing import race, wait_for
from catalog.exceptions import ItemLimitReached
from catalog.models import BookableItem
from catalog.tests.factories import make_item

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")


def _upcoming(organizer) -> int:
    return BookableItem.objects.filter(organizer=organizer, deleted_at__isnull=True,
                                       end_time__gt=timezone.now()).count()


def _waiting_on_a_lock() -> bool:
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else one snapshot per transaction
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def test_a_create_waits_for_the_organizers_uncommitted_create_and_then_counts_it(make_user, settings):
    """Deterministic interleaving: A has created the organizer's last allowed item but not yet
    committed; B's create must wait on the organizer's row lock and then see A's item (refused),
    not count without it and take a place beyond the limit."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 2
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    start = timezone.now() + timedelta(days=30)
    make_item(organizer, name="Held 0", start=start)
    a_created, b_done = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            item = make_item(organizer, name="A", start=start + timedelta(days=1))
            a_created.set()
            # Commit once B has finished (no lock: it did not wait) or is blocked on a lock.
            assert wait_for(lambda: b_done.is_set() or _waiting_on_a_lock(), timeout=10, interval=0.02)
        return item

    def second():
        assert a_created.wait(timeout=10)
        try:
            return make_item(organizer, name="B", start=start + timedelta(days=2))
        finally:
            b_done.set()

    a, b = race([first, second])

    assert isinstance(a, BookableItem), a
    assert isinstance(b, ItemLimitReached), b
    assert _upcoming(organizer) == 2


def test_parallel_creates_at_the_last_place_make_exactly_one_item(make_user, settings):
    """The organizer holds MAX_UPCOMING_ITEMS_PER_ORGANIZER - 1 items; eight creates at once:
    exactly one gets the last place, the others are 409 ItemLimitReached."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 3
    for round_ in range(3):
        organizer = make_user(roles=["EVENT_ORGANIZER"], username=f"racer{round_}")
        start = timezone.now() + timedelta(days=30)
        for n in range(2):
            make_item(organizer, name=f"Held {n}", start=start + timedelta(days=n))

        results = race([lambda n=n: make_item(organizer, name=f"Racer {n}", start=start + timedelta(days=10 + n))
                        for n in range(8)])

        made = [r for r in results if isinstance(r, BookableItem)]
        refused = [r for r in results if not isinstance(r, BookableItem)]
        assert len(made) == 1, results
        assert all(isinstance(r, ItemLimitReached) for r in refused), refused
        assert _upcoming(organizer) == 3
