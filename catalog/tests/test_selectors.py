"""catalog.selectors: the two forms of the visibility rule agree; the computed price."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from catalog.models import BookableItem
from catalog.selectors import item_queryset, item_visible, visible_to
from catalog.tests.factories import make_item
from reservations.services import booking_create

pytestmark = pytest.mark.django_db


def test_item_visible_and_visible_to_agree_for_every_role_and_item(make_user):
    """item_visible (one item already read, the booking path) and visible_to (a Q, lists and
    detail) must grant exactly the same: a drift would let a booking reach an item its
    booker cannot see, or refuse one they can."""
    owner = make_user(roles=["EVENT_ORGANIZER"])
    actors = {
        "anonymous": AnonymousUser(),
        "user": make_user(),
        "owner": owner,
        "other organizer": make_user(roles=["EVENT_ORGANIZER"]),
        "admin": make_user(roles=["ADMIN"]),
    }
    items = {"public": make_item(owner), "private": make_item(owner, is_private=True)}

    seen = {}
    for actor_name, actor in actors.items():
        for item_name, item in items.items():
            by_query = BookableItem.objects.filter(visible_to(actor), pk=item.pk).exists()
            assert item_visible(actor=actor, item=item) == by_query, (actor_name, item_name)
            seen[actor_name, item_name] = by_query

    assert seen == {
        ("anonymous", "public"): True, ("anonymous", "private"): False,
        ("user", "public"): True, ("user", "private"): False,
        ("owner", "public"): True, ("owner", "private"): True,
        ("other organizer", "public"): True, ("other organizer", "private"): False,
        ("admin", "public"): True, ("admin", "private"): True,
    }


def test_a_sold_out_item_shows_its_last_tiers_price(make_user):
    """currentPrice: the first tier with a free seat; once every tier is sold out, the price of
    the last tier (the one the item sold at last), not the first."""
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]), capacity=3,
                     tiers=[("Early", "10.00", 1), ("Regular", "20.00", 1), ("Late", "30.00", 1)])
    prices = []
    for _ in range(3):
        prices.append(item_queryset().get(pk=item.pk).current_price)
        booking_create(user=make_user(), item_id=item.pk)
    sold_out = item_queryset().get(pk=item.pk)
    assert prices == [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")]
    assert (sold_out.available_capacity, sold_out.current_price) == (0, Decimal("30.00"))
