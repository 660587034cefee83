"""ADMIN pages for items: list filters, and no "add" (items are created through the API)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.tests.factories import make_item

pytestmark = pytest.mark.django_db

def days_ahead(days: int):
    return timezone.now() + timedelta(days=days)


def listed(response):
    assert response.status_code == 200
    return {str(obj.name) for obj in response.context["cl"].queryset}


def test_items_filter_by_organizer_private_and_date(admin_client, make_user):
    anna, ben = make_user(roles=["EVENT_ORGANIZER"]), make_user(roles=["EVENT_ORGANIZER"])
    make_item(anna, name="Anna public", start=days_ahead(3))
    make_item(anna, name="Anna private", start=days_ahead(3), is_private=True)
    make_item(ben, name="Ben later", start=days_ahead(40))

    url = "/admin/catalog/bookableitem/"
    assert listed(admin_client.get(url, {"organizer__id__exact": anna.pk})) == {"Anna public", "Anna private"}
    assert listed(admin_client.get(url, {"is_private__exact": "1"})) == {"Anna private"}
    soon = str(timezone.now() + timedelta(days=10))
    assert listed(admin_client.get(url, {"start_time__lt": soon})) == {"Anna public", "Anna private"}
    page = admin_client.get(url).content.decode()
    assert "Add bookable item" not in page
