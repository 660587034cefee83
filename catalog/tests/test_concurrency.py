"""Catalog races on PostgreSQL with real threads, each on its own connection (SQLite cannot show
a race): the per-organizer item limit is counted under the organizer's row lock."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from bookings_project.testing import race, wait_for
from catalog.exceptions import ItemLimitReached
from catalog.models import BookableItem
from catalog.tests.factories import make_item

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


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


def _one_place_short(make_user, username):
    """An organizer holding two upcoming items (one short of a limit of 3), and a time after them."""
    organizer = make_user(roles=["EVENT_ORGANIZER"], username=username)
    start = timezone.now() + timedelta(days=30)
    for n in range(2):
        make_item(organizer, name=f"Held {n}", start=start + timedelta(days=n))
    return organizer, start


def test_parallel_creates_at_the_last_place_make_exactly_one_item(make_user, settings):
    """The organizer holds MAX_UPCOMING_ITEMS_PER_ORGANIZER - 1 items; eight creates at once:
    exactly one gets the last place, the others are 409 ItemLimitReached."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 3
    for round_ in range(3):
        organizer, start = _one_place_short(make_user, f"racer{round_}")

        results = race([lambda n=n: make_item(organizer, name=f"Racer {n}", start=start + timedelta(days=10 + n))
                        for n in range(8)])

        made = [r for r in results if isinstance(r, BookableItem)]
        refused = [r for r in results if not isinstance(r, BookableItem)]
        assert len(made) == 1, results
        assert all(isinstance(r, ItemLimitReached) for r in refused), refused
        assert _upcoming(organizer) == 3


# --- Audit: item edits and deletions racing bookings -------------------------------------------


def _counters_match_bookings(item) -> None:
    """The seat counters count exactly the active bookings, item and every tier."""
    from reservations.models import ACTIVE_STATUSES, Booking

    item = BookableItem.objects.get(pk=item.pk)
    assert item.sold == Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).count() <= item.capacity
    for tier in item.tiers.all():
        assert tier.sold == Booking.objects.filter(tier=tier, status__in=ACTIVE_STATUSES).count() <= tier.max_capacity


def test_capacity_and_tier_cuts_racing_bookings_never_leave_more_booked_than_allowed(make_user, organizer):
    """While twelve users book, the organizer cuts capacity 10 → 6 and the second tier 6 → 2.
    Either the cut comes first (the bookings fill what is left) or enough bookings come first
    and the cut is a 400; never more active bookings than the item or a tier allows."""
    from bookings_project.errors import ValidationFailed
    from catalog.exceptions import CapacityExceeded
    from catalog.services import item_update
    from reservations.models import Booking
    from reservations.services import booking_create

    for round_ in range(4):
        item = make_item(organizer, name=f"Cut {round_}", capacity=10,
                         tiers=[("Early", "10.00", 4), ("Late", "20.00", 6)])
        users = [make_user() for _ in range(12)]
        cut = [{"name": "Early", "price": Decimal("10.00"), "max_capacity": 4},
               {"name": "Late", "price": Decimal("20.00"), "max_capacity": 2}]

        results = race([lambda: item_update(actor=organizer, item_id=item.pk, capacity=6, price_tiers=cut)]
                       + [lambda u=u: booking_create(user=u, item_id=item.pk) for u in users])

        updated, bookings = results[0], results[1:]
        assert isinstance(updated, (BookableItem, ValidationFailed)), updated
        assert all(isinstance(r, (Booking, CapacityExceeded)) for r in bookings), bookings
        _counters_match_bookings(item)
        item.refresh_from_db()
        assert item.capacity == (6 if isinstance(updated, BookableItem) else 10)
    # (which way each round went is up to the scheduler)


def test_item_delete_racing_bookings_leaves_no_active_booking_and_every_cancelled_one_is_told(make_user, organizer):
    """The organizer deletes an item while ten users book it: no booking stays active on the
    deleted item, and every booking it holds is cancelled with exactly one email."""
    from collections import Counter

    from catalog.exceptions import CapacityExceeded, ItemNotFound
    from catalog.services import item_delete
    from ops.models import OutboxEvent
    from reservations.models import ACTIVE_STATUSES, Booking, BookingStatus
    from reservations.services import booking_create

    for round_ in range(4):
        item = make_item(organizer, name=f"Gone {round_}", capacity=8, tiers=[("A", "10.00", 8)])
        early = [booking_create(user=make_user(), item_id=item.pk) for _ in range(2)]
        users = [make_user() for _ in range(10)]

        results = race([lambda: item_delete(actor=organizer, item_id=item.pk)]
                       + [lambda u=u: booking_create(user=u, item_id=item.pk) for u in users])

        deleted, bookings = results[0], results[1:]
        assert isinstance(deleted, BookableItem), deleted
        assert all(isinstance(r, (Booking, ItemNotFound, CapacityExceeded)) for r in bookings), bookings
        assert not Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).exists()
        made = list(Booking.objects.filter(item=item).values_list("pk", flat=True))
        assert {b.pk for b in early} | {r.pk for r in bookings if isinstance(r, Booking)} == set(made)
        assert set(Booking.objects.filter(item=item).values_list("status", flat=True)) == {BookingStatus.CANCELLED}
        emails = Counter(e.payload["bookingId"] for e in OutboxEvent.objects.filter(
            event_type="BOOKING_CANCELLED", payload__itemId=item.pk))
        assert emails == Counter({pk: 1 for pk in made})
        _counters_match_bookings(item)


def test_ended_items_moved_back_into_the_future_at_once_never_pass_the_organizers_limit(make_user, settings):
    """The organizer holds one place short of the limit and two ended items (historical records,
    which hold no place); both are moved back into the future, and a new item created, at the
    same moment: only one of the three may take the last place."""
    settings.MAX_UPCOMING_ITEMS_PER_ORGANIZER = 3
    from catalog.services import item_update

    for round_ in range(4):
        organizer, start = _one_place_short(make_user, f"reviver{round_}")
        ended = [make_item(organizer, name=f"Ended {n}", start=timezone.now() - timedelta(days=10 + n))
                 for n in range(2)]

        results = race([lambda i=i, n=n: item_update(actor=organizer, item_id=i.pk,
                                                     start_time=start + timedelta(days=5 + n),
                                                     end_time=start + timedelta(days=5 + n, hours=2))
                        for n, i in enumerate(ended)]
                       + [lambda: make_item(organizer, name="New", start=start + timedelta(days=9))])

        assert sum(isinstance(r, BookableItem) for r in results) == 1, results
        assert all(isinstance(r, (BookableItem, ItemLimitReached)) for r in results), results
        assert _upcoming(organizer) == 3


def test_two_items_moved_onto_one_time_that_their_two_common_bookers_hold_deadlock_into_a_503(make_user, organizer):
    """U and V both booked X and Y; X and Y are moved at once to the same new time. Neither
    move's clash check sees the other (uncommitted), so both UPDATE their bookings and the
    exclusion constraint makes each wait for the other's uncommitted booking — X holds U's and
    waits on V's, Y the reverse (a third session holds the second booking of each until both are under
    way, each having moved its first booking): PostgreSQL breaks the deadlock, and the aborted move is a 503 (ItemBusy, retry) —
    never a 500 — while the other one takes effect. The bookers never hold two overlapping
    confirmed bookings."""
    from catalog.services import item_update
    from reservations.models import Booking, BookingStatus
    from reservations.services import booking_create

    start = timezone.now() + timedelta(days=40)
    x = make_item(organizer, name="X", start=start)
    y = make_item(organizer, name="Y", start=start + timedelta(days=1))
    u, v = make_user(), make_user()
    booking_create(user=u, item_id=x.pk)
    v_on_x = booking_create(user=v, item_id=x.pk)  # X's UPDATE reaches U's booking first, then V's
    booking_create(user=v, item_id=y.pk)
    u_on_y = booking_create(user=u, item_id=y.pk)  # Y's UPDATE: V's first, then U's
    new_start = start + timedelta(days=5)
    started, pids = threading.Barrier(3), []

    def move(item):
        from django.db import connections

        with connections["default"].cursor() as cursor:
            cursor.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")  # (rows in the order written)
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
        started.wait(timeout=30)
        return item_update(actor=organizer, item_id=item.pk, start_time=new_start,
                           end_time=new_start + timedelta(hours=2))

    def hold_the_second_bookings():
        with transaction.atomic():
            list(Booking.objects.select_for_update().filter(pk__in=[v_on_x.pk, u_on_y.pk]))
            started.wait(timeout=30)
            assert wait_for(lambda: _all_blocked(pids), timeout=30, interval=0.02), "a move never waited"

    moved_x, moved_y, held = race([lambda: move(x), lambda: move(y), hold_the_second_bookings])

    assert not isinstance(held, Exception), held
    assert sorted(type(r).__name__ for r in (moved_x, moved_y)) == ["BookableItem", "ItemBusy"], (moved_x, moved_y)
    for booker in (u, v):
        confirmed = list(Booking.objects.filter(user=booker, status=BookingStatus.CONFIRMED).order_by("start_time"))
        assert all(a.end_time <= b.start_time for a, b in zip(confirmed, confirmed[1:]))


def _all_blocked(pids) -> bool:
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM unnest(%s::int[]) AS pid WHERE cardinality(pg_blocking_pids(pid)) > 0",
                       [pids])
        return cursor.fetchone()[0] == len(pids)
