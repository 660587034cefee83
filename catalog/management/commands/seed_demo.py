"""Demo data through the real services (seat counters, outbox rows and documents stay
consistent): organizers, customers, upcoming items with tiers and tags, some private, and
bookings. `--if-empty` does nothing once any item exists (`make run` uses it)."""

import random
import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import user_register
from bookings_project.commands import database_errors_as_command_error
from bookings_project.errors import ApplicationError
from catalog.models import BookableItem
from catalog.services import item_create
from reservations.services import booking_cancel, booking_create

DEMO_PASSWORD = "Demo-pass-2025!"
ORGANIZERS = ("harbor_events", "city_sports", "learnhub")
CUSTOMERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")

# (name, category, tags, location, hours, tiers as (name, price, seats)), one per day ahead.
ITEMS = (
    ("Jazz on the Pier", "concert", ["jazz", "live", "outdoor"], "Harbor Stage", 3,
     [("Early bird", "19.00", 20), ("Regular", "29.00", 30)]),
    ("Chamber Music Evening", "concert", ["classical", "strings"], "Old Town Hall", 2,
     [("Standard", "35.00", 40)]),
    ("Indie Rock Night", "concert", ["rock", "live"], "Warehouse 9", 4,
     [("Early bird", "15.00", 50), ("Regular", "22.00", 100), ("Door", "28.00", 50)]),
    ("Harbor Food Market Tour", "food", ["tasting", "walking"], "Harbor Gate", 2,
     [("Adult", "25.00", 15)]),
    ("Wine Tasting: Northern Reds", "food", ["wine", "tasting"], "Cellar Bar", 2,
     [("Standard", "45.00", 12), ("Premium", "65.00", 8)]),
    ("Private Yacht Dinner", "food", ["dinner", "exclusive"], "Marina Berth 4", 3,
     [("Seat", "120.00", 10)]),
    ("City 10k Run", "sports", ["running", "outdoor"], "Riverside Park", 3,
     [("Early bird", "12.00", 100), ("Regular", "18.00", 200)]),
    ("Beginner Climbing Session", "sports", ["climbing", "indoor", "beginner"], "Boulder Hall", 2,
     [("Session", "20.00", 12)]),
    ("Sunrise Yoga", "sports", ["yoga", "outdoor", "wellness"], "Lighthouse Lawn", 1, []),
    ("Five-a-side Football League", "sports", ["football", "team"], "Arena Court 2", 2,
     [("Player", "8.00", 20)]),
    ("Club Tennis Open Day", "sports", ["tennis", "members"], "Green Courts", 4, []),
    ("Python for Data Analysis", "workshop", ["python", "data", "programming"], "Learnhub Room A", 6,
     [("Standard", "149.00", 16), ("Late", "179.00", 4)]),
    ("Intro to Watercolour", "workshop", ["art", "painting", "beginner"], "Studio 3", 3,
     [("Materials included", "55.00", 10)]),
    ("Public Speaking Bootcamp", "workshop", ["communication", "career"], "Learnhub Room B", 4,
     [("Standard", "89.00", 20)]),
    ("Team Offsite Planning (internal)", "workshop", ["internal"], "Learnhub Boardroom", 3, []),
    ("Photography Walk", "workshop", ["photography", "walking", "outdoor"], "Old Town Square", 2,
     [("Standard", "30.00", 15)]),
    ("Startup Pitch Night", "conference", ["startups", "networking"], "Innovation Hub", 3,
     [("Visitor", "10.00", 80), ("Investor", "50.00", 20)]),
    ("Cloud Ops Meetup", "conference", ["devops", "cloud", "networking"], "Innovation Hub", 2, []),
    ("Product Design Conference", "conference", ["design", "ux"], "Congress Centre", 8,
     [("Early bird", "199.00", 100), ("Regular", "259.00", 150)]),
    ("Board Games Evening", "social", ["games", "indoor"], "Cafe Meeple", 3, []),
)
PRIVATE = {"Private Yacht Dinner", "Team Offsite Planning (internal)"}


def demo_password() -> str:
    """The well-known password in development; with DEBUG off (a production-shaped install) a
    random one per run, printed once, so demo accounts never open a real deployment to anyone
    who has read this file."""
    return DEMO_PASSWORD if settings.DEBUG else f"Demo-{secrets.token_urlsafe(12)}"


def _user(username: str, role: str, password: str) -> User | None:
    """The demo account (made by an earlier run, or now); None when a real account already holds
    its username or email (in any case): demo data never books or publishes as a real user."""
    email = f"{username}@example.com"
    taken = User.objects.filter(Q(username__iexact=username) | Q(email__iexact=email))
    if taken.exists():
        return taken.filter(username=username, email=email).first()
    return user_register(username=username, email=email, password=password, roles=[role])


class Command(BaseCommand):
    help = "Load realistic demo data (organizers, customers, upcoming items, bookings) via the services."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", dest="if_empty",
                            help="Do nothing when any item already exists.")

    def handle(self, *args, **options):
        with database_errors_as_command_error():
            self._load(**options)

    def _load(self, *, if_empty=False, **options):
        if if_empty and BookableItem.objects.exists():
            self.stdout.write("Demo data skipped: items already exist.")
            return
        rng = random.Random(2025)
        password = demo_password()
        with transaction.atomic():
            organizers = [u for u in (_user(name, Role.EVENT_ORGANIZER, password) for name in ORGANIZERS) if u]
            customers = [u for u in (_user(name, Role.USER, password) for name in CUSTOMERS) if u]
            if not organizers:
                raise CommandError("Every demo organizer's username or email belongs to another account")
            if BookableItem.objects.filter(organizer__in=organizers, name__in=[i[0] for i in ITEMS]).exists():
                raise CommandError("Demo data is already loaded (demo organizers have demo items)")
            items = self._items(organizers)
        bookings = self._bookings(items, customers, rng)
        self.stdout.write(self.style.SUCCESS(
            f"Demo data: {len(organizers)} organizers, {len(customers)} customers, {len(items)} items, "
            f"{bookings} bookings (password for new demo accounts: {password})."))

    def _items(self, organizers) -> list[BookableItem]:
        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        items = []
        for day, (name, category, tags, location, hours, tiers) in enumerate(ITEMS, start=3):
            start = today + timedelta(days=day, hours=10 + day % 9)
            items.append(item_create(
                organizer=organizers[day % len(organizers)], name=name, category=category, tags=tags,
                description=f"{name} — a {category} event at {location}.", location=location,
                start_time=start, end_time=start + timedelta(hours=hours), is_private=name in PRIVATE,
                capacity=sum(seats for _, _, seats in tiers) or 25,
                price_tiers=[{"name": t, "price": Decimal(p), "max_capacity": s} for t, p, s in tiers],
            ))
        return items

    def _bookings(self, items, customers, rng) -> int:
        """Each customer books a few public items (one a day, so none overlap); some cancel."""
        public = [item for item in items if not item.is_private]
        made = 0
        for customer in customers:
            for item in rng.sample(public, 3):
                try:
                    booking = booking_create(user=customer, item_id=item.pk)
                except ApplicationError as exc:  # e.g. already booked by an earlier run
                    self.stderr.write(f"{customer.username} → {item.name}: {exc.message}")
                    continue
                made += 1
                if rng.random() < 0.15:
                    booking_cancel(actor=customer, booking_id=booking.pk)
        return made
