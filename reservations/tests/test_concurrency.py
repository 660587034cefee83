"""Races on PostgreSQL with real threads, each on its own connection (SQLite cannot show a race)."""

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from bookings_project.testing import race
from catalog.exceptions import CapacityExceeded
from catalog.models import BookableItem, PriceTier
from catalog.tests.factories import make_item
from reservations.exceptions import BookingTimeConflict
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_forty_users_race_for_ten_seats_in_two_tiers(make_user, organizer):
    item = make_item(organizer, capacity=10, tiers=[("Early", "10.00", 4), ("Late", "25.50", 6)])
    users = [make_user() for _ in range(40)]

    results = race([lambda u=u: booking_create(user=u, item_id=item.pk) for u in users])

    made = [r for r in results if isinstance(r, Booking)]
    refused = [r for r in results if not isinstance(r, Booking)]
    assert len(made) == 10
    assert all(isinstance(r, CapacityExceeded) for r in refused), [r for r in refused if not isinstance(r, CapacityExceeded)]
    rows = Booking.objects.filter(item=item, status=BookingStatus.CONFIRMED)
    assert rows.count() == 10 and len({b.user_id for b in rows}) == 10
    assert Counter(b.tier.name for b in rows) == {"Early": 4, "Late": 6}
    assert Counter(b.price_paid for b in rows) == {Decimal("10.00"): 4, Decimal("25.50"): 6}
    item = BookableItem.objects.get(pk=item.pk)
    assert item.sold == 10 and [t.sold for t in item.tiers.order_by("position")] == [4, 6]


def test_thirty_users_race_across_four_small_tiers_each_tier_fills_in_order(make_user, organizer, caplog):
    """Every tier boundary refuses the claims of racers who read the filled tier as open; they
    start over from a fresh read (catalog.seats.item_seat_claim): none may end in 503."""
    tiers = [("T1", "10.00", 3), ("T2", "20.00", 3), ("T3", "30.00", 3), ("T4", "40.00", 3)]
    item = make_item(organizer, capacity=12, tiers=tiers)
    users = [make_user() for _ in range(30)]

    results = race([lambda u=u: booking_create(user=u, item_id=item.pk) for u in users])

    made = [r for r in results if isinstance(r, Booking)]
    assert len(made) == 12
    assert all(isinstance(r, CapacityExceeded) for r in results if not isinstance(r, Booking)), results
    rows = Booking.objects.filter(item=item).select_related("tier")
    assert Counter((b.tier.name, b.price_paid) for b in rows) == {
        (name, Decimal(price)): seats for name, price, seats in tiers}
    item = BookableItem.objects.get(pk=item.pk)
    assert item.sold == 12 and [t.sold for t in item.tiers.order_by("position")] == [3, 3, 3, 3]
    # Refusals are the normal course at a tier boundary: they leave no warnings behind.
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text


def test_many_one_seat_tiers_never_run_out_of_attempts(make_user, organizer):
    """An item with N tiers can need N + 1 attempts (each refusal moves past one full tier)."""
    tiers = [(f"T{n}", f"{n}0.00", 1) for n in range(1, 9)]
    item = make_item(organizer, capacity=8, tiers=tiers)

    for _ in range(3):
        users = [make_user() for _ in range(24)]
        results = race([lambda u=u: booking_create(user=u, item_id=item.pk) for u in users])
        assert all(isinstance(r, (Booking, CapacityExceeded)) for r in results), results
    assert Booking.objects.filter(item=item).count() == 8
    assert [t.sold for t in PriceTier.objects.filter(item=item).order_by("position")] == [1] * 8


def test_named_tier_race_never_oversells_the_tier(make_user, organizer):
    item = make_item(organizer, capacity=10, tiers=[("Early", "10.00", 3), ("Late", "20.00", 7)])
    users = [make_user() for _ in range(12)]

    results = race([lambda u=u: booking_create(user=u, item_id=item.pk, tier_name="Early") for u in users])

    assert sum(isinstance(r, Booking) for r in results) == 3
    assert Booking.objects.filter(item=item, tier__name="Early").count() == 3
    assert BookableItem.objects.get(pk=item.pk).sold == 3


def test_one_user_racing_for_six_overlapping_items_gets_exactly_one(customer, organizer):
    start = make_item(organizer).start_time
    items = [make_item(organizer, start=start + timedelta(minutes=10 * i), name=f"Slot {i}") for i in range(6)]

    results = race([lambda i=i: booking_create(user=customer, item_id=i.pk) for i in items])

    assert sum(isinstance(r, Booking) for r in results) == 1
    assert all(isinstance(r, (Booking, BookingTimeConflict)) for r in results), results
    assert Booking.objects.filter(user=customer, status=BookingStatus.CONFIRMED).count() == 1
    assert sum(BookableItem.objects.filter(pk__in=[i.pk for i in items]).values_list("sold", flat=True)) == 1


def test_exclusion_constraint_refuses_overlap_written_behind_the_service(customer, organizer):
    first, second = make_item(organizer, name="A"), make_item(organizer, name="B")
    booking_create(user=customer, item_id=first.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.create(user=customer, item=second, price_paid=0, status=BookingStatus.CONFIRMED,
                               start_time=second.start_time, end_time=second.end_time)
    # Cancelled rows and back-to-back ranges are outside the constraint.
    Booking.objects.create(user=customer, item=second, price_paid=0, status=BookingStatus.CANCELLED,
                           start_time=second.start_time, end_time=second.end_time)
    Booking.objects.create(user=customer, item=second, price_paid=0, status=BookingStatus.CONFIRMED,
                           start_time=first.end_time, end_time=first.end_time + timedelta(hours=1))


def test_lock_timeout_becomes_503_json_not_a_hang(client_for, customer, organizer):
    item = make_item(organizer)
    locked, release = threading.Event(), threading.Event()

    def hold_item_lock():
        try:
            with transaction.atomic():
                list(BookableItem.objects.select_for_update().filter(pk=item.pk))
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_item_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        response = client_for(customer).post(f"/api/v1/bookings/items/{item.pk}", {}, format="json")
    finally:
        release.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable" and response["Retry-After"]
    assert not Booking.objects.filter(item=item).exists()
    assert BookableItem.objects.get(pk=item.pk).sold == 0


def test_a_tier_removed_between_read_and_claim_is_retried_into_the_next_tier(make_user, organizer, monkeypatch):
    """The first attempt, made from a read older than the tier's removal, is refused and retried
    from a fresh read. (What refuses it on PostgreSQL is the item claim, whose `updated_at` no
    longer matches — the update saved the item — before the tier's deferred foreign key could
    fail at COMMIT; that FK retry is the backstop, unreachable while every tier change saves
    its item.)"""
    from catalog import selectors
    from catalog.services import item_update
    from reservations import services

    item = make_item(organizer, capacity=10, tiers=[("A", "10.00", 5), ("B", "20.00", 5)])
    snapshot = selectors.item_get_for_booking(actor=None, item_id=item.pk)
    reads = []

    def read(*, actor, item_id):
        reads.append(item_id)
        return snapshot if len(reads) == 1 else selectors.item_get_for_booking(actor=actor, item_id=item_id)

    monkeypatch.setattr(services, "item_get_for_booking", read)
    item_update(actor=organizer, item_id=item.pk,
                price_tiers=[{"name": "B", "price": Decimal("20.00"), "max_capacity": 10}])

    booking = booking_create(user=make_user(), item_id=item.pk)

    assert len(reads) == 2 and (booking.tier.name, booking.price_paid) == ("B", Decimal("20.00"))
    assert Booking.objects.filter(item=item).count() == 1
    item = BookableItem.objects.get(pk=item.pk)
    assert item.sold == 1 and [t.sold for t in item.tiers.all()] == [1]


def test_one_idempotency_key_sent_eight_times_at_once_makes_one_booking(make_user, organizer):
    """A client's retries racing its own first request: the user lock serializes them and each
    later one finds the booking the key made (the unique constraint backs that up)."""
    from reservations.services import booking_create_once

    item = make_item(organizer, capacity=10, tiers=[("A", "10.00", 10)])
    user = make_user()

    results = race([lambda: booking_create_once(user=user, item_id=item.pk, request_key="retry-1")] * 8)

    assert all(isinstance(r, tuple) for r in results), results
    assert len({booking.pk for booking, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert Booking.objects.filter(user=user).count() == 1
    assert BookableItem.objects.get(pk=item.pk).sold == 1


def _user_with_three_future_bookings(make_user, organizer, name):
    from django.utils import timezone

    user = make_user()
    items = [make_item(organizer, name=f"{name}{i}", capacity=5, start=timezone.now() + timedelta(days=30 + i))
             for i in range(3)]
    return user, items, [booking_create(user=user, item_id=item.pk) for item in items]


@pytest.mark.parametrize("other", ["own cancel", "item delete", "organizer cancels"])
def test_deactivation_racing_a_change_to_one_of_the_bookings_still_deactivates(make_user, organizer, admin, other):
    """The booking deactivation reaches last (lock order: item id) is cancelled (by its owner, or
    by the organizer through /status) or its item deleted at the same moment: deactivation skips
    it instead of failing as a whole, and it is cancelled once. (Completing cannot race it: deactivation cancels only
    bookings of items that have not started, and only those of started items can be completed.)"""
    from accounts.services import user_deactivate
    from catalog.services import item_delete
    from ops.models import OutboxEvent
    from reservations.exceptions import InvalidStatusTransition
    from reservations.models import ACTIVE_STATUSES
    from reservations.services import booking_cancel, booking_set_status

    for round_ in range(4):
        user, items, bookings = _user_with_three_future_bookings(make_user, organizer, f"{other}{round_}")
        last = bookings[-1]
        change = {"own cancel": lambda: booking_cancel(actor=user, booking_id=last.pk),
                  "item delete": lambda: item_delete(actor=organizer, item_id=items[-1].pk),
                  "organizer cancels": lambda: booking_set_status(actor=organizer, booking_id=last.pk,
                                                                  status=BookingStatus.CANCELLED)}[other]

        deactivated, changed = race([lambda: user_deactivate(actor=admin, user=user), change])

        assert not isinstance(deactivated, Exception), deactivated
        # The other cancellation comes first (200), or finds the booking cancelled by the
        # deactivation, which locks the items of all the user's bookings before it reads them
        # (409, as when two cancellations race); an item deletion always succeeds.
        assert not isinstance(changed, Exception) or (
            other != "item delete" and isinstance(changed, InvalidStatusTransition)), changed
        user.refresh_from_db()
        assert not user.is_active
        assert not Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).exists()
        for item in BookableItem.objects.filter(pk__in=[i.pk for i in items]):
            assert item.sold == Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).count()
        cancellations = Counter(e.payload["bookingId"] for e in OutboxEvent.objects.filter(
            event_type="BOOKING_CANCELLED", payload__userId=user.pk))
        assert set(cancellations.values()) == {1}


def test_a_capacity_cut_waits_for_a_cancellation_in_flight_and_counts_its_freed_seat(
        make_user, organizer, monkeypatch):
    """Deterministic interleaving: a cancellation has marked its booking CANCELLED but not yet
    given the seat back when the organizer cuts capacity to the seats that will remain. The
    cancellation holds the item lock from its start (lock order item → booking), so the cut
    waits for it, then counts the freed seat and succeeds: sold never exceeds capacity and
    equals the active bookings. (Without that lock the cut read the stale count and was refused.)"""
    import threading

    from bookings_project.testing import wait_for
    from catalog.services import item_update
    from reservations import services
    from reservations.models import ACTIVE_STATUSES
    from reservations.services import booking_cancel

    item = make_item(organizer, capacity=3)
    owners = [make_user() for _ in range(3)]
    bookings = [booking_create(user=u, item_id=item.pk) for u in owners]
    paused, cut_done = threading.Event(), threading.Event()
    real_release = services.item_seat_release

    def waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            return cursor.fetchone()[0] > 0

    def slow_release(**kwargs):
        paused.set()  # the booking row is CANCELLED (uncommitted); the seat not yet released
        assert wait_for(lambda: cut_done.is_set() or waiting_on_a_lock(), timeout=10, interval=0.02)
        return real_release(**kwargs)

    monkeypatch.setattr(services, "item_seat_release", slow_release)

    def cut():
        assert paused.wait(timeout=10)
        try:
            return item_update(actor=organizer, item_id=item.pk, capacity=2)
        finally:
            cut_done.set()

    cancelled, updated = race([lambda: booking_cancel(actor=owners[0], booking_id=bookings[0].pk), cut])

    assert isinstance(cancelled, Booking) and cancelled.status == BookingStatus.CANCELLED, cancelled
    assert isinstance(updated, BookableItem), updated
    item.refresh_from_db()
    active = Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).count()
    assert (item.capacity, item.sold, active) == (2, 2, 2)


# --- Audit: cancellations, completions and deactivations racing bookings ----------------------


def _active_on(item) -> int:
    from reservations.models import ACTIVE_STATUSES

    return Booking.objects.filter(item=item, status__in=ACTIVE_STATUSES).count()


def _counters_match_bookings(item) -> None:
    """The seat counters count exactly the active bookings, item and every tier."""
    from reservations.models import ACTIVE_STATUSES

    item = BookableItem.objects.get(pk=item.pk)
    assert item.sold == _active_on(item) <= item.capacity
    for tier in item.tiers.all():
        assert tier.sold == Booking.objects.filter(tier=tier, status__in=ACTIVE_STATUSES).count() <= tier.max_capacity


def _cancellation_emails(booking_ids) -> Counter:
    from ops.models import OutboxEvent

    return Counter(e.payload["bookingId"] for e in OutboxEvent.objects.filter(
        event_type="BOOKING_CANCELLED", payload__bookingId__in=list(booking_ids)))


def test_cancellations_and_bookings_racing_for_a_full_item_never_oversell(make_user, organizer):
    """A full item: three holders cancel while nine others try to book its seats. Every freed
    seat goes to at most one newcomer; the counters end equal to the active bookings."""
    from reservations.services import booking_cancel

    for round_ in range(3):
        item = make_item(organizer, name=f"Full {round_}", capacity=3, tiers=[("A", "10.00", 1), ("B", "20.00", 2)])
        holders = [make_user() for _ in range(3)]
        held = [booking_create(user=u, item_id=item.pk) for u in holders]
        newcomers = [make_user() for _ in range(9)]

        results = race([lambda u=u, b=b: booking_cancel(actor=u, booking_id=b.pk) for u, b in zip(holders, held)]
                       + [lambda u=u: booking_create(user=u, item_id=item.pk) for u in newcomers])

        cancels, bookings = results[:3], results[3:]
        assert all(isinstance(r, Booking) and r.status == BookingStatus.CANCELLED for r in cancels), cancels
        assert all(isinstance(r, (Booking, CapacityExceeded)) for r in bookings), bookings
        assert sum(isinstance(r, Booking) for r in bookings) <= 3
        _counters_match_bookings(item)
        assert _cancellation_emails(b.pk for b in held) == Counter({b.pk: 1 for b in held})


def test_two_cancels_of_one_booking_one_is_200_the_other_409_and_the_seat_is_freed_once(
        client_for, make_user, organizer, admin):
    """Its owner and an ADMIN cancel the same booking at the same moment (another booking keeps
    the item's counter above 0, so a double release would show)."""
    for round_ in range(4):
        item = make_item(organizer, name=f"Twice {round_}", capacity=5, tiers=[("A", "10.00", 5)])
        owner, other = make_user(), make_user()
        booking = booking_create(user=owner, item_id=item.pk)
        booking_create(user=other, item_id=item.pk)
        owner_client, admin_client = client_for(owner), client_for(admin)

        responses = race([lambda: owner_client.put(f"/api/v1/bookings/{booking.pk}/cancel"),
                          lambda: admin_client.put(f"/api/v1/bookings/{booking.pk}/cancel")])

        assert sorted(r.status_code for r in responses) == [200, 409], [r.content for r in responses]
        assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CANCELLED
        _counters_match_bookings(item)
        assert BookableItem.objects.get(pk=item.pk).sold == 1
        assert _cancellation_emails([booking.pk]) == Counter({booking.pk: 1})


def test_completion_racing_a_cancellation_one_wins_the_seat_is_freed_once(make_user, organizer, admin):
    """Once the item has started its organizer completes a booking while an ADMIN cancels it
    (a refund): one of them wins, the other is a 409, the seat is given back once."""
    from django.utils import timezone

    from reservations.exceptions import InvalidStatusTransition
    from reservations.services import booking_cancel, booking_set_status

    for round_ in range(4):
        item = make_item(organizer, name=f"Started {round_}", capacity=5, tiers=[("A", "10.00", 5)])
        booking = booking_create(user=make_user(), item_id=item.pk)
        booking_create(user=make_user(), item_id=item.pk)
        # The item started a minute ago (its bookings follow its times).
        start = timezone.now() - timedelta(minutes=1)
        BookableItem.objects.filter(pk=item.pk).update(start_time=start, end_time=start + timedelta(hours=2))
        Booking.objects.filter(item=item).update(start_time=start, end_time=start + timedelta(hours=2))

        completed, cancelled = race([
            lambda: booking_set_status(actor=organizer, booking_id=booking.pk, status=BookingStatus.COMPLETED),
            lambda: booking_cancel(actor=admin, booking_id=booking.pk)])

        winners = [r for r in (completed, cancelled) if isinstance(r, Booking)]
        assert len(winners) == 1, (completed, cancelled)
        assert all(isinstance(r, InvalidStatusTransition) for r in (completed, cancelled) if r not in winners)
        assert Booking.objects.get(pk=booking.pk).status == winners[0].status
        _counters_match_bookings(item)
        assert BookableItem.objects.get(pk=item.pk).sold == 1
        emails = _cancellation_emails([booking.pk])
        assert emails == (Counter({booking.pk: 1}) if winners[0] is cancelled else Counter())


def test_deactivation_racing_the_users_own_bookings_leaves_no_active_future_booking(
        client_for, make_user, organizer, admin):
    """DELETE /user/{id} while that user books three items: whatever got in before the
    deactivation is cancelled by it (with an email), whatever comes after is refused."""
    from django.utils import timezone

    from reservations.models import ACTIVE_STATUSES

    for round_ in range(4):
        user = make_user()
        items = [make_item(organizer, name=f"D{round_}-{i}", capacity=5, tiers=[("A", "10.00", 5)],
                           start=timezone.now() + timedelta(days=40 + i)) for i in range(3)]
        booking_create(user=user, item_id=items[0].pk)  # one booking already held
        user_client, admin_client = client_for(user), client_for(admin)

        results = race([lambda: admin_client.delete(f"/api/v1/user/{user.pk}")]
                       + [lambda i=i: user_client.post(f"/api/v1/bookings/items/{i.pk}", {}, format="json")
                          for i in items[1:]])

        assert results[0].status_code == 204, results[0].content
        assert all(r.status_code in (201, 401, 403) for r in results[1:]), [r.content for r in results[1:]]
        user.refresh_from_db()
        assert not user.is_active
        assert not Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).exists()
        for item in items:
            _counters_match_bookings(item)
        made = Booking.objects.filter(user=user).values_list("pk", flat=True)
        assert _cancellation_emails(made) == Counter({pk: 1 for pk in made})


def test_two_admins_deleting_one_user_at_once_cancel_each_booking_once(client_for, make_user, organizer):
    """Both DELETEs answer 204 (deactivation is idempotent) or the later one 404 (the user is
    gone by the time it looks); the user's bookings are cancelled once, with one email each,
    and one "User deleted" entry is logged."""
    from django.utils import timezone

    from ops.models import SystemLog
    from reservations.models import ACTIVE_STATUSES

    for round_ in range(4):
        user = make_user()
        items = [make_item(organizer, name=f"Twice-deleted {round_}-{i}", capacity=3,
                           start=timezone.now() + timedelta(days=50 + i)) for i in range(2)]
        held = [booking_create(user=user, item_id=item.pk) for item in items]
        admins = [client_for(make_user(roles=["ADMIN"])) for _ in range(2)]

        responses = race([lambda c=c: c.delete(f"/api/v1/user/{user.pk}") for c in admins])

        assert 204 in [r.status_code for r in responses], [r.content for r in responses]
        assert all(r.status_code in (204, 404) for r in responses), [r.content for r in responses]
        assert not Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).exists()
        assert _cancellation_emails(b.pk for b in held) == Counter({b.pk: 1 for b in held})
        assert SystemLog.objects.filter(message="User deleted", user_id=str(user.pk)).count() == 1
        for item in items:
            _counters_match_bookings(item)


def test_an_item_moved_onto_a_bookers_new_booking_at_once_never_leaves_two_overlapping(make_user, organizer):
    """The organizer moves item X onto the time of item Y while X's booker books Y: the moved
    booking and the new one would overlap. Whichever reaches the exclusion constraint second is
    a 409 (BookingTimeConflict), never a 500 and never two overlapping confirmed bookings."""
    from django.utils import timezone

    from catalog.services import item_update

    for round_ in range(6):
        start = timezone.now() + timedelta(days=60 + round_)
        x = make_item(organizer, name=f"X{round_}", start=start)
        y = make_item(organizer, name=f"Y{round_}", start=start + timedelta(days=3))
        booker = make_user()
        booking_create(user=booker, item_id=x.pk)

        moved, booked = race([
            lambda: item_update(actor=organizer, item_id=x.pk, start_time=y.start_time, end_time=y.end_time),
            lambda: booking_create(user=booker, item_id=y.pk)])

        assert [isinstance(moved, BookableItem), isinstance(booked, Booking)].count(True) == 1, (moved, booked)
        assert all(isinstance(r, (BookableItem, Booking, BookingTimeConflict)) for r in (moved, booked))
        confirmed = Booking.objects.filter(user=booker, status=BookingStatus.CONFIRMED).order_by("start_time")
        assert len(confirmed) == 1 or confirmed[0].end_time <= confirmed[1].start_time
        for item in (x, y):
            _counters_match_bookings(item)


def test_an_item_deleted_while_its_bookers_cancel_cancels_each_booking_once(make_user, organizer):
    """The bulk cancellation of a deleted item (booking_cancel_for_item) racing its bookers' own
    cancellations and newcomers' bookings: each booking is cancelled once, with one email, and
    no seat is held by the deleted item."""
    from catalog.exceptions import ItemNotFound
    from catalog.services import item_delete
    from reservations.exceptions import InvalidStatusTransition
    from reservations.services import booking_cancel

    for round_ in range(4):
        item = make_item(organizer, name=f"Deleted {round_}", capacity=6, tiers=[("A", "10.00", 2), ("B", "20.00", 4)])
        holders = [make_user() for _ in range(3)]
        held = [booking_create(user=u, item_id=item.pk) for u in holders]
        newcomers = [make_user() for _ in range(3)]

        results = race([lambda: item_delete(actor=organizer, item_id=item.pk)]
                       + [lambda u=u, b=b: booking_cancel(actor=u, booking_id=b.pk) for u, b in zip(holders, held)]
                       + [lambda u=u: booking_create(user=u, item_id=item.pk) for u in newcomers])

        assert isinstance(results[0], BookableItem), results[0]
        assert all(isinstance(r, (Booking, InvalidStatusTransition)) for r in results[1:4]), results
        assert all(isinstance(r, (Booking, ItemNotFound)) for r in results[4:]), results
        made = list(Booking.objects.filter(item=item).values_list("pk", flat=True))
        assert set(Booking.objects.filter(item=item).values_list("status", flat=True)) == {BookingStatus.CANCELLED}
        assert _cancellation_emails(made) == Counter({pk: 1 for pk in made})
        _counters_match_bookings(item)
        assert BookableItem.objects.get(pk=item.pk).sold == 0


def test_a_confirmation_racing_two_cancellations_one_wins(make_user, organizer, admin):
    """A PENDING booking: its organizer confirms it while its owner cancels it and an ADMIN
    cancels it through /status. Whichever order they run in, the booking ends CANCELLED by
    exactly one of the two cancellations (the confirmation wins only if it runs first), the
    seat is given back once and the booker is emailed once for each move that happened."""
    from ops.models import OutboxEvent
    from reservations.exceptions import InvalidStatusTransition
    from reservations.services import booking_cancel, booking_set_status

    for round_ in range(4):
        item = make_item(organizer, name=f"Pending {round_}", capacity=5, tiers=[("A", "10.00", 5)])
        owner = make_user()
        booking = booking_create(user=owner, item_id=item.pk)
        booking_create(user=make_user(), item_id=item.pk)  # keeps the counter above 0
        Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.PENDING)

        confirmed, *cancels = race([
            lambda: booking_set_status(actor=organizer, booking_id=booking.pk, status=BookingStatus.CONFIRMED),
            lambda: booking_cancel(actor=owner, booking_id=booking.pk),
            lambda: booking_set_status(actor=admin, booking_id=booking.pk, status=BookingStatus.CANCELLED)])

        assert isinstance(confirmed, (Booking, InvalidStatusTransition)), confirmed
        assert sorted(isinstance(r, Booking) for r in cancels) == [False, True], cancels
        assert all(isinstance(r, (Booking, InvalidStatusTransition)) for r in cancels), cancels
        assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CANCELLED
        _counters_match_bookings(item)
        assert BookableItem.objects.get(pk=item.pk).sold == 1
        assert _cancellation_emails([booking.pk]) == Counter({booking.pk: 1})
        confirmations = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED", payload__bookingId=booking.pk,
                                                   payload__status=BookingStatus.CONFIRMED)
        assert confirmations.count() == 1 + isinstance(confirmed, Booking)  # (the first at booking time)


def test_deactivation_racing_the_confirmation_of_its_pending_booking_leaves_nothing_active(
        make_user, organizer, admin):
    from django.utils import timezone

    from accounts.services import user_deactivate
    from reservations.models import ACTIVE_STATUSES
    from reservations.services import booking_set_status

    for round_ in range(4):
        user = make_user()
        item = make_item(organizer, name=f"Pend-D {round_}", capacity=3, start=timezone.now() + timedelta(days=70))
        booking = booking_create(user=user, item_id=item.pk)
        Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.PENDING)

        race([lambda: user_deactivate(actor=admin, user=user),
              lambda: booking_set_status(actor=organizer, booking_id=booking.pk, status=BookingStatus.CONFIRMED)])

        assert not Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).exists()
        _counters_match_bookings(item)
        assert _cancellation_emails([booking.pk]) == Counter({booking.pk: 1})


# --- Audit: deactivation racing the move of an item in or out of the future -------------------


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else one snapshot per transaction
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def _paused_after(monkeypatch, module, name, done):
    """Replace module.name by a call of it that, once it returns, waits (inside its caller's
    transaction) until `done` is set or another session waits for a lock; returns the event
    set when the pause begins."""
    from bookings_project.testing import wait_for

    real, paused = getattr(module, name), threading.Event()

    def pausing(*args, **kwargs):
        result = real(*args, **kwargs)
        paused.set()
        assert wait_for(lambda: done.is_set() or _waiting_on_a_lock(), timeout=10, interval=0.02)
        return result

    monkeypatch.setattr(module, name, pausing)
    return paused


@pytest.mark.parametrize("first", ["deactivation", "revival"])
def test_an_ended_item_moved_back_into_the_future_while_its_booker_is_deactivated_keeps_no_booking(
        make_user, organizer, admin, monkeypatch, first):
    """A deactivated account holds no future booking. Its deactivation cancels the bookings of
    items that have not started; an ended item moved back into the future cancels the bookings
    of accounts deactivated before. When both happen at once each looked at the other's state
    before it committed — the deactivation saw the item still in the past, the move saw the
    account still active — and the booking stayed CONFIRMED on a future item of a deactivated
    account. Deterministic interleaving: `first` has read what it acts on but not committed
    when the other runs."""
    import accounts.services
    import catalog.services
    from django.utils import timezone

    from accounts.services import user_deactivate
    from catalog.services import item_update
    from reservations.models import ACTIVE_STATUSES

    user = make_user()
    item = make_item(organizer, name="Reunion", capacity=3, start=timezone.now() + timedelta(days=5))
    booking = booking_create(user=user, item_id=item.pk)
    past = timezone.now() - timedelta(days=3)
    BookableItem.objects.filter(pk=item.pk).update(start_time=past, end_time=past + timedelta(hours=2))
    Booking.objects.filter(pk=booking.pk).update(start_time=past, end_time=past + timedelta(hours=2))
    future = timezone.now() + timedelta(days=20)
    second_done = threading.Event()
    module, name = ((accounts.services, "booking_cancel_future_for_user") if first == "deactivation"
                    else (catalog.services, "bookings_follow_item"))
    paused = _paused_after(monkeypatch, module, name, second_done)

    def deactivate():
        return user_deactivate(actor=admin, user=user)

    def revive():
        return item_update(actor=organizer, item_id=item.pk, start_time=future, end_time=future + timedelta(hours=2))

    def second(call):
        assert paused.wait(timeout=10)
        try:
            return call()
        finally:
            second_done.set()

    calls = [deactivate, lambda: second(revive)] if first == "deactivation" else [revive, lambda: second(deactivate)]
    results = race(calls)

    assert not [r for r in results if isinstance(r, Exception)], results
    user.refresh_from_db()
    assert not user.is_active
    assert not Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES, start_time__gt=timezone.now()).exists()
    assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CANCELLED
    _counters_match_bookings(item)
    assert _cancellation_emails([booking.pk]) == Counter({booking.pk: 1})


def test_one_users_parallel_bookings_never_pass_the_booking_cap(client_for, make_user, organizer, settings):
    """The user holds cap - 1 upcoming bookings and asks for six more (separate, non-overlapping
    items) at once through the API: the cap is counted under the user's lock, so exactly one is
    a 201 and the rest are 409, never a 500 or a booking beyond the cap."""
    from django.utils import timezone

    from reservations.models import ACTIVE_STATUSES

    settings.MAX_ACTIVE_BOOKINGS_PER_USER = 3
    start = timezone.now() + timedelta(days=90)
    for round_ in range(3):
        items = [make_item(organizer, name=f"Cap {round_}-{n}", capacity=5, hours=1,
                           start=start + timedelta(days=round_, hours=2 * n)) for n in range(8)]
        user = make_user()
        for item in items[:2]:
            booking_create(user=user, item_id=item.pk)
        client = client_for(user)

        responses = race([lambda i=i: client.post(f"/api/v1/bookings/items/{i.pk}", {}, format="json")
                          for i in items[2:]])

        assert sorted(r.status_code for r in responses) == [201] + [409] * 5, [r.content for r in responses]
        assert Booking.objects.filter(user=user, status__in=ACTIVE_STATUSES).count() == 3
        for item in items:
            _counters_match_bookings(item)


def test_a_tier_repriced_between_a_bookings_read_and_its_claim_is_booked_at_the_new_price(
        make_user, organizer, monkeypatch):
    """Deterministic interleaving: the booking has read the item and chosen its tier when the
    organizer reprices that tier (and commits). The booking's claim is refused (the item moved
    on) and it starts over: it pays the new price, never the old one after the change."""
    from catalog.services import item_update
    from reservations import services

    item = make_item(organizer, capacity=4, tiers=[("A", "10.00", 2), ("B", "20.00", 2)])
    offered, repriced = threading.Event(), threading.Event()
    real_offer, offers = services.item_tier_offer, []

    def slow_offer(**kwargs):
        tier = real_offer(**kwargs)
        offers.append(tier.price)
        if len(offers) == 1:
            offered.set()
            assert repriced.wait(timeout=10)
        return tier

    monkeypatch.setattr(services, "item_tier_offer", slow_offer)

    def reprice():
        assert offered.wait(timeout=10)
        try:
            return item_update(actor=organizer, item_id=item.pk, price_tiers=[
                {"name": "A", "price": Decimal("15.00"), "max_capacity": 2},
                {"name": "B", "price": Decimal("20.00"), "max_capacity": 2}])
        finally:
            repriced.set()

    booked, updated = race([lambda: booking_create(user=make_user(), item_id=item.pk), reprice])

    assert isinstance(updated, BookableItem), updated
    assert isinstance(booked, Booking), booked
    assert offers == [Decimal("10.00"), Decimal("15.00")]
    booked.refresh_from_db()
    assert (booked.tier_name, booked.price_paid) == ("A", Decimal("15.00"))
    _counters_match_bookings(item)


def test_a_booking_racing_its_owners_cancellation_of_the_overlapping_one_never_leaves_two(make_user, organizer):
    """The user cancels their booking of X while booking Y, which overlaps X: the cancellation
    always succeeds; the new booking is a 201 (it came after the cancellation committed) or a
    409 (it saw X still confirmed), never a 500 and never two overlapping confirmed bookings."""
    from reservations.services import booking_cancel

    for round_ in range(6):
        x = make_item(organizer, name=f"X{round_}", capacity=3)
        y = make_item(organizer, name=f"Y{round_}", capacity=3, start=x.start_time + timedelta(hours=1))
        user = make_user()
        held = booking_create(user=user, item_id=x.pk)

        cancelled, booked = race([lambda: booking_cancel(actor=user, booking_id=held.pk),
                                  lambda: booking_create(user=user, item_id=y.pk)])

        assert isinstance(cancelled, Booking) and cancelled.status == BookingStatus.CANCELLED, cancelled
        assert isinstance(booked, (Booking, BookingTimeConflict)), booked
        confirmed = Booking.objects.filter(user=user, status=BookingStatus.CONFIRMED)
        assert list(confirmed) == ([booked] if isinstance(booked, Booking) else [])
        for item in (x, y):
            _counters_match_bookings(item)
