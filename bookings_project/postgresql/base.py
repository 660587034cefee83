"""Django's PostgreSQL backend, with one change to its connection pool's health check.

After a database restart every idle pooled connection is dead. psycopg_pool checks the
connection it is about to hand out, and after each failed check sleeps before trying the next
one, doubling the sleep (1, 2, 4, 8 s): a pool of ten dead connections made the first request
of each process wait out its whole timeout (a 503 after 10 s) and later ones seconds more, for
minutes. Here the first failed check makes the pool take all its idle connections out and test
them, one after another, in a background thread (psycopg_pool's `check()`): after a restart
each dead one fails at once and is replaced, so the request's next try gets a fresh connection.
On a network that drops packets instead, each test can take DB_TCP_USER_TIMEOUT_MS; the sweep
then takes that long per connection, in the background, while requests get new connections.
"""

import logging
import threading

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if (self.alias == NO_DB_ALIAS or self.alias in self._connection_pools or not pool_options
                or not self.settings_dict["CONN_HEALTH_CHECKS"]):
            return super().pool
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            return super().pool  # (Django refuses this combination)
        # As Django builds it (django.db.backends.postgresql.base), but with the sweeping check.
        sweeper = _Sweeper()
        pool = ConnectionPool(kwargs={**self.get_connection_params(), "autocommit": True}, open=False,
                              configure=self._configure_connection, check=sweeper.check,
                              **({} if pool_options is True else pool_options))
        sweeper.pool = pool
        self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]


class _Sweeper:
    """The pool's health check: the usual empty round trip; when it fails, every idle
    connection of the pool is tested and the dead ones replaced, once at a time per pool."""

    def __init__(self):
        self.pool: ConnectionPool | None = None
        self._sweeping = threading.Lock()

    def check(self, conn) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self._sweep()
            raise

    def _sweep(self) -> None:
        if self.pool is None or not self._sweeping.acquire(blocking=False):
            return  # one sweep at a time: it covers every connection idle when it started
        logger.warning("pool %s: a pooled connection is dead; testing all idle ones", self.pool.name)

        def sweep():
            try:
                self.pool.check()
            except Exception:  # noqa: BLE001 - the pool replaces what it can; requests go on
                logger.warning("pool %s: sweep failed", self.pool.name, exc_info=True)
            finally:
                self._sweeping.release()

        try:
            threading.Thread(target=sweep, name=f"pool-sweep-{self.pool.name}", daemon=True).start()
        except RuntimeError:  # no thread to be had (interpreter shutting down): the next failure tries again
            self._sweeping.release()
