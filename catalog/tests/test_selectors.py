"""catalog.selectors: the two forms of the visibility rule agree."""

import pytest
from django.contrib.auth.models import AnonymousUser

from catalog.models import BookableItem
from catalog.selectors import item_visible, visible_to
from catalog.tests.factories import make_item

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
