"""No admin URL answers a 500 to a crafted query string or action selection (every registered
ModelAdmin, ours and third-party, goes through bookings_project.admin.BookingsAdminSite)."""

import pytest
from django.contrib import admin

from bookings_project.admin import HardenedAdminMixin
from catalog.tests.factories import make_item
from ops.jobs import job_create_notification
from reservations.services import booking_create

pytestmark = pytest.mark.django_db

CRAFTED_LISTS = [
    "/admin/ops/systemlog/?timestamp__year=9999&timestamp__month=12",
    "/admin/ops/systemlog/?message__regex=(",
    "/admin/ops/job/?started_at__year=0",
    "/admin/ops/job/?params__contains=x",
    "/admin/reservations/booking/?booking_date__year=9999&booking_date__month=12&booking_date__day=31",
    "/admin/accounts/user/?date_joined__year=9999&date_joined__month=12&date_joined__day=31",
    "/admin/accounts/user/?roles__contains=x",
    "/admin/catalog/bookableitem/?created_at__year=99999",
    "/admin/ops/outboxevent/?created_at__year=0",
    "/admin/ops/reconciliationchange/?id__gt=99999999999999999999999",
]


def test_every_registered_admin_is_hardened():
    assert admin.site._registry
    assert all(isinstance(model_admin, HardenedAdminMixin) for model_admin in admin.site._registry.values())


@pytest.mark.parametrize("url", CRAFTED_LISTS)
def test_crafted_changelist_parameters_are_never_a_500(admin_client, url):
    """(The test client raises on a 500.) Mostly Django's invalid-filter redirect; a lookup the
    database happens to accept (SQLite's Python regex) just lists nothing."""
    response = admin_client.get(url)
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize("selected", ["abc", "-1", "99999999999999999999999"])
@pytest.mark.parametrize("url, action", [("/admin/reservations/booking/", "cancel_bookings"),
                                         ("/admin/ops/job/", "execute_jobs"),
                                         ("/admin/ops/outboxevent/", "retry_events")])
def test_tampered_action_selection_is_a_message_not_a_500(admin_client, make_user, url, action, selected):
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]))
    booking = booking_create(user=make_user(), item_id=item.pk)
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    response = admin_client.post(url, {"action": action, "_selected_action": [selected]}, follow=True)
    assert response.status_code == 200
    booking.refresh_from_db(), job.refresh_from_db()
    assert (booking.status, job.status) == ("CONFIRMED", "queued")


@pytest.mark.parametrize("object_id", ["x", "1", "00000000-0000-0000-0000-000000000000"])
def test_there_is_no_view_on_site_shortcut_to_look_up_any_row(admin_client, object_id):
    """Django's /admin/r/<content type>/<id>/ loads a row of any model for any staff member (an IT
    operator too) to redirect to its get_absolute_url, which no model here has; for a model with
    UUID keys a malformed id was a 500 (a ValidationError the shortcut does not catch)."""
    from django.contrib.contenttypes.models import ContentType

    for content_type in ContentType.objects.all():
        response = admin_client.get(f"/admin/r/{content_type.pk}/{object_id}/")
        assert response.status_code == 404, content_type


def test_a_model_with_a_public_page_would_get_no_view_on_site_link():
    class WithPage:
        pk = 1

        def get_absolute_url(self):
            return "/somewhere/"

    for model_admin in admin.site._registry.values():
        assert model_admin.get_view_on_site_url(WithPage()) is None


def test_inlines_link_no_view_on_site_either(admin_client, organizer, monkeypatch):
    """An inline's rows get the link too (InlineModelAdmin.view_on_site): with a public page on
    a tier, the item's change page reversed the unserved route (a 500)."""
    from catalog.models import PriceTier
    from catalog.tests.factories import make_item

    monkeypatch.setattr(PriceTier, "get_absolute_url", lambda tier: "/somewhere/", raising=False)
    item = make_item(organizer, capacity=5, tiers=[("A", "1.00", 5)])

    response = admin_client.get(f"/admin/catalog/bookableitem/{item.pk}/change/")

    assert response.status_code == 200 and b"/admin/r/" not in response.content


def _every_relation(model) -> list[str]:
    return [field.name for field in model._meta.get_fields() if field.is_relation]


def test_autocomplete_answers_no_relation_no_form_here_declares(admin_client, make_user):
    """Django's /admin/autocomplete/ searches the target of any relation of any model for any
    staff member who may view that target — a reverse one (`?…model_name=job&field_name=changes`)
    was a 500 — though only an `autocomplete_fields` widget calls it, and no ModelAdmin here
    declares one: every relation of every model is refused (403), for an ADMIN and an IT
    operator alike."""
    from django.apps import apps

    from accounts.services import user_grant_role

    operator = user_grant_role(actor=make_user(roles=["ADMIN"]), user=make_user(), role="IT_OPERATOR")
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    operator_client = admin_client.__class__()
    operator_client.force_login(operator)
    queries = [(model._meta.app_label, model._meta.model_name, name)
               for model in apps.get_models() for name in _every_relation(model)]
    assert ("ops", "job", "changes") in queries and ("ops", "reconciliationchange", "job") in queries
    for client in (admin_client, operator_client):
        client.raise_request_exception = False
        answers = {query: client.get("/admin/autocomplete/", {"app_label": query[0], "model_name": query[1],
                                                              "field_name": query[2], "term": str(job.pk)[:8]})
                   for query in queries}
        assert {query: response.status_code for query, response in answers.items()} == dict.fromkeys(queries, 403)


def test_a_declared_autocomplete_field_is_served_to_who_may_view_its_target(admin_client, make_user, monkeypatch):
    from django.contrib.admin.sites import site

    from accounts.services import user_grant_role
    from reservations.models import Booking

    monkeypatch.setattr(site._registry[Booking], "autocomplete_fields", ("user",))
    operator = user_grant_role(actor=make_user(roles=["ADMIN"]), user=make_user(), role="IT_OPERATOR")
    make_user(username="findme")
    query = {"app_label": "reservations", "model_name": "booking", "field_name": "user", "term": "findme"}

    found = admin_client.get("/admin/autocomplete/", query)
    admin_client.force_login(operator)

    assert found.status_code == 200 and [row["text"] for row in found.json()["results"]] == ["findme"]
    assert admin_client.get("/admin/autocomplete/", query).status_code == 403  # (may not view users)


@pytest.mark.parametrize("page", ["change", "delete"])
def test_an_empty_to_field_names_the_primary_key_not_a_500(admin_client, make_user, page):
    """`?_to_field=` sent empty passed Django's to_field check (it checks a non-empty one) and
    then named no field when the row was looked up: a 500 on every change and delete page, for
    any staff member, before the page's permission check."""
    item = make_item(make_user(roles=["EVENT_ORGANIZER"]))
    booking = booking_create(user=make_user(), item_id=item.pk)
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    rows = {"accounts.user": booking.user, "catalog.bookableitem": item, "reservations.booking": booking,
            "ops.job": job}
    for model, model_admin in admin.site._registry.items():
        obj = rows.get(model._meta.label_lower) or model._default_manager.first()
        if obj is None:
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/{obj.pk}/{page}/"
        plain = admin_client.get(url).status_code
        for query in ("?_to_field=", "?_popup=1&_to_field="):
            assert admin_client.get(url + query).status_code == plain, url + query
