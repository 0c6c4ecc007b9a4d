"""The services every system runs against, one URL per family, shared by all.

The defaults are this project's CI machine (see README); each can be moved
with an environment variable, e.g. ``BRIDGE_BENCH_POSTGRESQL``. The SQL
families use a database of their own, ``bridge_bench``, created when
missing, so the benchmark never touches the test suite's tables; Redis uses
database 9, which the Redis systems may flush.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchmarks.systems import SYSTEMS

DEFAULTS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/bridge_bench",
    "mariadb": "mysql://root@127.0.0.1:3306/bridge_bench",
    "redis": "redis://127.0.0.1:6379/9",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


class Services:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.urls = {
            family: os.environ.get(f"BRIDGE_BENCH_{family.upper()}", url)
            for family, url in DEFAULTS.items()
        }
        self._prepared: set[str] = set()

    @staticmethod
    def family_of(key: str) -> str:
        return SYSTEMS[key][0]

    def url(self, family: str, key: str = "bridge") -> str:
        if family == "sqlite":
            # A file per system: SQLite has one writer, and systems never share.
            return f"sqlite:///{self.scratch / re.sub(r'[^A-Za-z0-9]+', '-', key)}.sqlite"
        return self.urls[family]

    def settle(self, family: str) -> None:
        """After a fill, before a drain: ``VACUUM ANALYZE`` the benchmark database.

        The machine's PostgreSQL may run without autovacuum (this one does),
        and a peer whose claim plan depends on fresh statistics would then be
        measured on a plan no production database would keep for long.
        """
        if family != "postgresql":
            return
        import psycopg

        with psycopg.connect(self.urls[family], autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def prepare(self, family: str) -> None:
        """Create the benchmark database on first use."""
        if family in self._prepared:
            return
        self._prepared.add(family)
        if family == "postgresql":
            import psycopg

            url = self.urls[family]
            base, _, name = url.rpartition("/")
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not found:
                    conn.execute(f'CREATE DATABASE "{name}"')
        elif family == "mariadb":
            from benchmarks.machine import mysql_connect

            name = self.urls[family].rpartition("/")[2]
            conn = mysql_connect(self.urls[family], database=None)
            try:
                with conn.cursor() as cursor:
                    cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            finally:
                conn.close()
