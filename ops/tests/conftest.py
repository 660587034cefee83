"""Fixtures the ops tests share."""

import pytest
from django.db import OperationalError

from ops import health


@pytest.fixture
def broken_database(monkeypatch):
    """broken_database("documents"): that alias's check raises like an unreachable server;
    it returns a function that brings it back."""
    real = health.database_ping

    def install(dead_alias):
        def check(alias):
            if alias == dead_alias:
                raise OperationalError("connection refused")
            real(alias)

        monkeypatch.setattr(health, "database_ping", check)
        return lambda: monkeypatch.setattr(health, "database_ping", real)

    return install
