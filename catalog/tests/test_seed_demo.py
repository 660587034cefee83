"""`manage.py seed_demo` (the demo data `make run` loads into an empty DB, e.g. to try the
admin): built through the services so counters and outbox agree; `--if-empty` is idempotent."""

import pytest
from django.core.management import call_command
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from catalog.models import BookableItem
from ops.models import OutboxEvent
from reservations.models import ACTIVE_STATUSES, Booking

pytestmark = pytest.mark.django_db


def snapshot():
    return (User.objects.count(), BookableItem.objects.count(), Booking.objects.count(),
            OutboxEvent.objects.count())


def test_seed_demo_builds_consistent_upcoming_data_and_if_empty_is_idempotent():
    call_command("seed_demo", if_empty=True)
    first = snapshot()
    call_command("seed_demo", if_empty=True)

    assert snapshot() == first
    users, items, bookings, _ = first
    assert users == 13 and items == 20 and bookings >= 20
    assert User.objects.filter(roles__icontains='"EVENT_ORGANIZER"').values("pk").count() == 3
    assert BookableItem.objects.filter(is_private=True).count() == 2
    assert not BookableItem.objects.filter(start_time__lte=timezone.now()).exists()
    assert BookableItem.objects.exclude(category=None).values("category").distinct().count() >= 5
    assert all(item.tags for item in BookableItem.objects.all())
    assert not Booking.objects.filter(item__is_private=True).exists()
    # Seat counters equal the active bookings, per item and per tier.
    for item in BookableItem.objects.annotate(active=Count("bookings", filter=Q(bookings__status__in=ACTIVE_STATUSES))):
        assert item.sold == item.active, item.name
        for tier in item.tiers.annotate(active=Count("bookings", filter=Q(bookings__status__in=ACTIVE_STATUSES))):
            assert tier.sold == tier.active, (item.name, tier.name)
    # Every booking, cancellation and registration left its notification in the outbox.
    assert OutboxEvent.objects.filter(event_type="BOOKING_CONFIRMED").count() == bookings
    assert OutboxEvent.objects.filter(event_type="BOOKING_CANCELLED").count() == \
        Booking.objects.filter(status="CANCELLED").count()
    assert OutboxEvent.objects.filter(event_type="USER_REGISTERED").count() == users


def test_if_empty_leaves_an_existing_catalog_alone(make_user, capsys):
    from datetime import timedelta

    from catalog.services import item_create

    start = timezone.now() + timedelta(days=1)
    item_create(organizer=make_user(roles=["EVENT_ORGANIZER"]), name="Mine", start_time=start,
                end_time=start + timedelta(hours=1), capacity=3)

    call_command("seed_demo", if_empty=True)

    assert BookableItem.objects.count() == 1 and User.objects.count() == 1
    assert "skipped" in capsys.readouterr().out


def test_a_second_full_run_refuses_instead_of_duplicating():
    from django.core.management.base import CommandError

    call_command("seed_demo")
    first = snapshot()
    with pytest.raises(CommandError, match="already loaded"):
        call_command("seed_demo")
    assert snapshot() == first


def test_demo_names_taken_by_real_accounts_are_skipped_never_used(make_user):
    """A real 'Alice' (or someone with bob@example.com) registered before any item existed:
    `make run` must still start, and demo data must never book or publish as that account."""
    alice = make_user(username="Alice", email="alice.real@example.org")
    bob = make_user(username="robert", email="BOB@example.com")
    organizer = make_user(username="LearnHub", email="owner@learnhub.example")

    call_command("seed_demo", if_empty=True)

    assert BookableItem.objects.count() == 20
    for real in (alice, bob, organizer):
        assert not Booking.objects.filter(user=real).exists()
        assert not BookableItem.objects.filter(organizer=real).exists()
    assert User.objects.filter(username__iexact="alice").count() == 1


@pytest.mark.parametrize("debug", [True, False])
def test_demo_accounts_get_the_known_password_only_in_development(settings, capsys, debug):
    from catalog.management.commands.seed_demo import DEMO_PASSWORD

    settings.DEBUG = debug
    call_command("seed_demo")
    printed = capsys.readouterr().out
    password = printed.rsplit("password for new demo accounts: ", 1)[1].rstrip(").\n")
    organizer = User.objects.get(username="harbor_events")
    assert organizer.check_password(password)
    assert (password == DEMO_PASSWORD) is debug
