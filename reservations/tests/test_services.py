"""reservations.services called directly: the events a booking writes, status transitions,
deactivation, and the seat claim that trusts nothing read before it. Through HTTP: test_api.py."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from freezegun import freeze_time

from accounts.services import user_deactivate
from bookings_project.errors import Forbidden
from catalog.exceptions import CapacityExceeded, ItemBusy, ItemNotFound
from catalog.models import BookableItem, PriceTier
from catalog.tests.factories import make_item
from ops.models import OutboxEvent
from reservations.exceptions import BookingTimeConflict, InvalidStatusTransition, ItemAlreadyStarted
from reservations.models import Booking, BookingStatus
from reservations.services import booking_cancel_future_for_user, booking_create, booking_set_status
from reservations.tests.factories import counters, once_started

pytestmark = pytest.mark.django_db


class TestOutbox:
    def test_free_item_booking_pays_zero(self, customer, organizer):
        booking = booking_create(user=customer, item_id=make_item(organizer).pk)
        assert booking.price_paid == Decimal("0.00") and booking.tier is None
        assert OutboxEvent.objects.get(event_type="BOOKING_CONFIRMED").payload["pricePaid"] == "0.00"

    def test_confirming_a_pending_booking_emails_the_booker(self, customer, organizer):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        booking = booking_create(user=customer, item_id=item.pk)
        Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.PENDING)
        OutboxEvent.objects.all().delete()

        booking_set_status(actor=organizer, booking_id=booking.pk, status="CONFIRMED")

        [email] = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED")
        assert email.recipient_email == customer.email
        assert (email.payload["bookingId"], email.payload["status"]) == (booking.pk, "CONFIRMED")


class TestStatusMachine:
    @pytest.mark.parametrize(("start", "target", "allowed"), [
        ("PENDING", "CONFIRMED", True), ("PENDING", "CANCELLED", True), ("PENDING", "COMPLETED", False),
        ("CONFIRMED", "COMPLETED", True), ("CONFIRMED", "CANCELLED", True), ("CONFIRMED", "PENDING", False),
        ("CONFIRMED", "CONFIRMED", False), ("CANCELLED", "CONFIRMED", False), ("CANCELLED", "CANCELLED", False),
        ("COMPLETED", "CANCELLED", False), ("COMPLETED", "CONFIRMED", False),
    ])
    def test_transitions(self, customer, organizer, start, target, allowed):
        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        booking = booking_create(user=customer, item_id=item.pk)
        Booking.objects.filter(pk=booking.pk).update(status=start)
        if start not in ("PENDING", "CONFIRMED"):
            BookableItem.objects.filter(pk=item.pk).update(sold=0)
            PriceTier.objects.filter(item=item).update(sold=0)
        with once_started(item):
            if allowed:
                assert booking_set_status(actor=organizer, booking_id=booking.pk, status=target).status == target
            else:
                with pytest.raises(InvalidStatusTransition):
                    booking_set_status(actor=organizer, booking_id=booking.pk, status=target)
        assert Booking.objects.get(pk=booking.pk).status == (target if allowed else start)
        active = Booking.objects.get(pk=booking.pk).status in ("PENDING", "CONFIRMED")
        assert counters(item) == ((1, [1]) if active else (0, [0]))

    def test_from_the_instant_its_item_starts_a_booking_can_be_completed_and_no_seat_sold(
            self, customer, make_user, organizer):
        """"Started" is one instant for both rules: the seat completion frees can never be booked."""
        item = make_item(organizer, capacity=2, tiers=[("A", "10.00", 2)])
        booking = booking_create(user=customer, item_id=item.pk)
        with freeze_time(item.start_time):
            with pytest.raises(ItemAlreadyStarted):
                booking_create(user=make_user(), item_id=item.pk)
            assert booking_set_status(actor=organizer, booking_id=booking.pk, status="COMPLETED").status == "COMPLETED"
        assert counters(item) == (0, [0])

    def test_confirming_a_pending_booking_checks_overlap(self, customer, organizer):
        first, second = make_item(organizer, name="A"), make_item(organizer, name="B")
        booking_create(user=customer, item_id=first.pk)
        pending = Booking.objects.create(user=customer, item=second, price_paid=0, status=BookingStatus.PENDING,
                                         start_time=second.start_time, end_time=second.end_time)
        with pytest.raises(BookingTimeConflict):
            booking_set_status(actor=organizer, booking_id=pending.pk, status="CONFIRMED")


class TestItemDeletion:
    @staticmethod
    def _item_with_bookings(make_user, organizer, name, n):
        item = make_item(organizer, name=name, capacity=60, tiers=[("A", "5.00", 20), ("B", "9.00", 40)])
        return item, [booking_create(user=make_user(), item_id=item.pk) for _ in range(n)]

    def test_every_active_booking_is_cancelled_and_told_in_a_fixed_number_of_statements(
            self, make_user, organizer, admin):
        """An item with thousands of bookings must be deletable: cancelling them one transition
        at a time ran nine statements per booking (3,000 took 41 s on PostgreSQL, the item
        locked all along). Each booking is still cancelled (a new revision) and emailed once,
        and the item and its tiers hold no seat afterwards."""
        from bookings_project.tests.helpers import queries_during
        from catalog.services import item_delete

        small, _ = self._item_with_bookings(make_user, organizer, "Small", 2)
        large, bookings = self._item_with_bookings(make_user, organizer, "Large", 30)
        completed = bookings[0]
        with once_started(large):
            booking_set_status(actor=admin, booking_id=completed.pk, status=BookingStatus.COMPLETED)
        Booking.objects.filter(pk=bookings[1].pk).update(status=BookingStatus.PENDING)
        OutboxEvent.objects.all().delete()

        cost_small = queries_during(lambda: item_delete(actor=organizer, item_id=small.pk))
        cost_large = queries_during(lambda: item_delete(actor=organizer, item_id=large.pk))

        assert cost_large == cost_small
        cancelled = Booking.objects.filter(item=large, status=BookingStatus.CANCELLED)
        assert sorted(cancelled.values_list("pk", flat=True)) == sorted(b.pk for b in bookings[1:])
        assert set(cancelled.values_list("revision", flat=True)) == {1}
        assert Booking.objects.get(pk=completed.pk).status == BookingStatus.COMPLETED  # history stays
        assert counters(large) == (0, [0, 0]) and counters(small) == (0, [0, 0])
        emails = OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED", payload__itemId=large.pk)
        assert sorted(e.payload["bookingId"] for e in emails) == sorted(b.pk for b in bookings[1:])
        first = emails.get(payload__bookingId=bookings[2].pk)
        assert (first.recipient_email, first.payload["status"], first.payload["revision"]) == (
            bookings[2].user.email, "CANCELLED", 1)


    @pytest.mark.django_db(databases=["default", "documents"])
    def test_the_cancelled_bookings_documents_follow(self, make_user, organizer):
        from catalog.services import item_delete
        from ops.dispatch import outbox_dispatch_until_empty
        from ops.models import Document

        item, bookings = self._item_with_bookings(make_user, organizer, "Gone", 3)
        outbox_dispatch_until_empty()
        item_delete(actor=organizer, item_id=item.pk)
        outbox_dispatch_until_empty()

        documents = Document.objects.using("documents").filter(entity_type="booking",
                                                                entity_id__in=[str(b.pk) for b in bookings])
        assert [d.body["status"] for d in documents] == ["CANCELLED"] * 3

class TestDeactivation:
    def test_deactivating_a_user_cancels_future_bookings_only(self, make_user, admin, organizer):
        user = make_user()
        future = make_item(organizer, tiers=[("A", "5.00", 10)])
        booking = booking_create(user=user, item_id=future.pk)
        past = make_item(organizer, start=timezone.now() - timedelta(days=3), name="Past")
        old = Booking.objects.create(user=user, item=past, price_paid=0, status=BookingStatus.CONFIRMED,
                                     start_time=past.start_time, end_time=past.end_time)
        user_deactivate(actor=admin, user=user)
        assert Booking.objects.get(pk=booking.pk).status == "CANCELLED"
        assert Booking.objects.get(pk=old.pk).status == "CONFIRMED"
        assert counters(future) == (0, [0])
        assert OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").count() == 1
        assert booking_cancel_future_for_user(user=user) == 0

    def test_a_past_item_moved_into_the_future_cancels_its_deactivated_bookers_bookings(
            self, make_user, admin, organizer):
        """A deactivation leaves bookings of started items as history; if their item is moved
        back into the future they would be future bookings of a deactivated account, holding
        seats (contract §4): they are cancelled, with an email, instead of moved."""
        from catalog.services import item_update

        gone, staying = make_user(), make_user()
        item = make_item(organizer, capacity=3, tiers=[("A", "5.00", 3)])
        gone_booking, staying_booking = (booking_create(user=u, item_id=item.pk) for u in (gone, staying))
        past = timezone.now() - timedelta(days=2)
        BookableItem.objects.filter(pk=item.pk).update(start_time=past, end_time=past + timedelta(hours=2))
        Booking.objects.filter(item=item).update(start_time=past, end_time=past + timedelta(hours=2))
        user_deactivate(actor=admin, user=gone)
        assert Booking.objects.get(pk=gone_booking.pk).status == BookingStatus.CONFIRMED  # history

        future = timezone.now() + timedelta(days=5)
        item_update(actor=organizer, item_id=item.pk, start_time=future, end_time=future + timedelta(hours=2))

        assert Booking.objects.get(pk=gone_booking.pk).status == BookingStatus.CANCELLED
        moved = Booking.objects.get(pk=staying_booking.pk)
        assert (moved.status, moved.start_time) == (BookingStatus.CONFIRMED, future)
        assert counters(item) == (1, [1])
        [cancelled] = OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED")
        assert cancelled.payload["bookingId"] == gone_booking.pk
        rescheduled = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED", payload__rescheduled=True)
        assert [e.payload["bookingId"] for e in rescheduled] == [staying_booking.pk]

    def test_deactivation_leaves_the_bookings_of_an_item_in_progress(self, make_user, admin, organizer):
        """Started (not yet ended) is not upcoming: that booking is history and revenue already."""
        user = make_user()
        item = make_item(organizer, tiers=[("A", "5.00", 10)])
        booking = booking_create(user=user, item_id=item.pk)
        with once_started(item):  # a minute in, two hours to go
            user_deactivate(actor=admin, user=user)
        assert Booking.objects.get(pk=booking.pk).status == BookingStatus.CONFIRMED
        assert counters(item) == (1, [1])
        assert not OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").exists()

    def test_a_past_item_whose_times_are_corrected_in_the_past_keeps_its_deactivated_bookers_history(
            self, make_user, admin, organizer):
        """Only a move back into the future cancels a deactivated account's bookings; a correction
        that leaves the item in the past keeps them as the history (and revenue) they are."""
        from catalog.services import item_update

        gone = make_user()
        item = make_item(organizer, capacity=3, tiers=[("A", "5.00", 3)])
        booking = booking_create(user=gone, item_id=item.pk)
        past = timezone.now() - timedelta(days=2)
        BookableItem.objects.filter(pk=item.pk).update(start_time=past, end_time=past + timedelta(hours=2))
        Booking.objects.filter(item=item).update(start_time=past, end_time=past + timedelta(hours=2))
        user_deactivate(actor=admin, user=gone)

        earlier = past - timedelta(hours=1)
        item_update(actor=organizer, item_id=item.pk, start_time=earlier, end_time=earlier + timedelta(hours=2))

        kept = Booking.objects.get(pk=booking.pk)
        assert (kept.status, kept.start_time) == (BookingStatus.CONFIRMED, earlier)
        assert counters(item) == (1, [1])
        assert not OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").exists()

    def test_deactivated_user_cannot_book(self, make_user, organizer):
        user = make_user(is_active=False)
        with pytest.raises(Forbidden, match="This account is not active"):
            booking_create(user=user, item_id=make_item(organizer).pk)


class TestSeatClaim:
    """The claim is the booking's last write: it trusts nothing read before it."""

    @staticmethod
    def stale(monkeypatch, item_id, *, times=1):
        """The next `times` reads of item_get_for_booking answer with the item as it is now."""
        from catalog import selectors
        from reservations import services

        reads = {"left": times}
        real = selectors.item_get_for_booking
        snapshot = real(actor=None, item_id=item_id)

        def read(*, actor, item_id):
            if reads["left"]:
                reads["left"] -= 1
                return snapshot
            return real(actor=actor, item_id=item_id)

        monkeypatch.setattr(services, "item_get_for_booking", read)

    def test_a_tier_filled_since_the_read_is_retried_into_the_next_tier(self, make_user, organizer, monkeypatch):
        item = make_item(organizer, capacity=3, tiers=[("Early", "10.00", 1), ("Late", "20.00", 2)])
        self.stale(monkeypatch, item.pk)  # the next booker will still see Early open…
        booking_create(user=make_user(), item_id=item.pk)  # …after this one took its last seat

        booking = booking_create(user=make_user(), item_id=item.pk)

        assert (booking.tier.name, booking.price_paid) == ("Late", Decimal("20.00"))
        assert counters(item) == (2, [1, 1])
        email = OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED").order_by("created_at").last()
        assert (email.payload["tier"], email.payload["pricePaid"]) == ("Late", "20.00")
        assert Booking.objects.filter(item=item).count() == 2  # the refused attempt left nothing

    def test_a_full_item_after_the_read_is_capacity_exceeded(self, make_user, organizer, monkeypatch):
        item = make_item(organizer, capacity=1, tiers=[("Only", "10.00", 1)])
        self.stale(monkeypatch, item.pk)
        booking_create(user=make_user(), item_id=item.pk)

        with pytest.raises(CapacityExceeded, match="^Capacity exceeded$"):
            booking_create(user=make_user(), item_id=item.pk)

        assert counters(item) == (1, [1]) and Booking.objects.filter(item=item).count() == 1

    def test_an_item_deleted_after_the_read_refuses_the_seat(self, make_user, organizer, monkeypatch):
        from catalog.services import item_delete

        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        self.stale(monkeypatch, item.pk)
        item_delete(actor=organizer, item_id=item.pk)

        with pytest.raises(ItemNotFound):
            booking_create(user=make_user(), item_id=item.pk)

        assert not Booking.objects.filter(item=item).exists() and counters(item) == (0, [0])

    def test_an_item_moved_after_the_read_is_booked_at_its_new_times(self, make_user, organizer, monkeypatch):
        from catalog.services import item_update

        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        self.stale(monkeypatch, item.pk)
        moved = item_update(actor=organizer, item_id=item.pk, start_time=item.start_time + timedelta(days=1),
                            end_time=item.end_time + timedelta(days=1))

        booking = booking_create(user=make_user(), item_id=item.pk)

        assert (booking.start_time, booking.end_time) == (moved.start_time, moved.end_time)
        stored = Booking.objects.get(pk=booking.pk)
        assert (stored.start_time, stored.end_time) == (moved.start_time, moved.end_time)
        assert counters(item) == (1, [1])

    def test_a_tier_repriced_after_the_read_is_sold_at_its_new_price(self, make_user, organizer, monkeypatch):
        from catalog.services import item_update

        item = make_item(organizer, tiers=[("A", "10.00", 10)])
        self.stale(monkeypatch, item.pk)
        item_update(actor=organizer, item_id=item.pk,
                    price_tiers=[{"name": "A", "price": Decimal("99.00"), "max_capacity": 10}])

        booking = booking_create(user=make_user(), item_id=item.pk)

        assert Booking.objects.get(pk=booking.pk).price_paid == Decimal("99.00")
        email = OutboxEvent.objects.get(event_type="BOOKING_CONFIRMED")
        assert email.payload["pricePaid"] == "99.00"

    def test_a_free_item_that_became_paid_after_the_read_sells_a_priced_seat(self, make_user, organizer,
                                                                              monkeypatch):
        """Found racing real threads on PostgreSQL: bookings read the item as free, the organizer
        added tiers, and the claims went through at 0.00 with no tier."""
        from catalog.services import item_update

        item = make_item(organizer, capacity=4, tiers=[])
        self.stale(monkeypatch, item.pk)
        item_update(actor=organizer, item_id=item.pk,
                    price_tiers=[{"name": "Paid", "price": Decimal("50.00"), "max_capacity": 4}])

        booking = booking_create(user=make_user(), item_id=item.pk)

        assert (booking.tier.name, Booking.objects.get(pk=booking.pk).price_paid) == ("Paid", Decimal("50.00"))
        assert counters(item) == (1, [1])

    def test_endless_refusals_end_in_503_not_a_loop(self, make_user, organizer, monkeypatch):
        item = make_item(organizer, capacity=2, tiers=[("Early", "10.00", 1), ("Late", "20.00", 1)])
        self.stale(monkeypatch, item.pk, times=100)  # every attempt will read Early as open
        booking_create(user=make_user(), item_id=item.pk)

        with pytest.raises(ItemBusy):
            booking_create(user=make_user(), item_id=item.pk)

        assert counters(item) == (1, [1, 0])
