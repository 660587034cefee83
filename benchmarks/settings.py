"""Production settings plus one benchmark-only route (the no-op floor); nothing else differs."""

from bookings_project.settings import *  # noqa: F401,F403

ROOT_URLCONF = "benchmarks.urls"
