"""Drupal's own queue table, shared by a Drupal site (real PHP) and bridge workers.

Each test runs on SQLite, PostgreSQL and MariaDB, in a table of its own
made as Drupal's schema makes it. ``tests/php/system_queue.php`` is Drupal's
database queue on PDO (createItem, claimItem with its ``expire = 0``
compare-and-set, releaseItem, deleteItem, garbageCollection): PHP creates
what bridge claims and the other way round, and both claim from one table
at once without ever getting the same item.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import bridge
from bridge.backends.sql.drupal import DrupalQueueBackend
from bridge.codecs import Codec, JsonCodec
from bridge.errors import PayloadError, UnsupportedOperationError
from bridge.failures import FailurePolicy
from bridge.php_serialize import PhpCodec, dumps, loads

from conftest import MARIADB_URL, POSTGRES_URL

NO_ATTEMPTS = FailurePolicy(max_attempts=None)
"""The table keeps no attempt count (docs/drupal.md)."""
PHP_SCRIPT = Path(__file__).parent / "php" / "system_queue.php"
KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.service("mariadb")),
]


class Site:
    """One database's Drupal queue table, reached by bridge and by PHP."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.table = f"drupal_{uuid.uuid4().hex[:10]}"
        plain = {
            "sqlite": f"sqlite:///{tmp_path}/drupal.sqlite",
            "postgres": POSTGRES_URL,
            "mariadb": MARIADB_URL,
        }[kind]
        self.kind, self.plain = kind, plain
        self.url = f"drupal+{plain}"
        # Built directly rather than by URL scheme through a QueueFactory, so
        # these tests stand apart from the registry (test_drupal_scheme.py).
        self.backend = DrupalQueueBackend(self.url, table=self.table)
        self.env = {**os.environ, **_php_database(plain), "BRIDGE_PHP_TABLE": self.table}

    def queue(self, name: str, codec: Codec | None = None) -> bridge.Queue:
        return bridge.Queue(name, self.backend, codec or PhpCodec(), NO_ATTEMPTS)

    def php(self, *args: str) -> list[str]:
        """Run the PHP queue; its output lines."""
        if shutil.which("php") is None:
            pytest.fail("php is not installed (apt-get install php-cli php-sqlite3 php-pgsql)")
        done = subprocess.run(
            ["php", str(PHP_SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    def rows(self, name: str) -> list[Any]:
        engine = sa.create_engine(_plain_driver(self.plain))
        try:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.text(
                            f"SELECT item_id, name, expire, created FROM {self.table} "
                            "WHERE name = :n ORDER BY item_id"
                        ),
                        {"n": name},
                    )
                )
        finally:
            engine.dispose()

    def drop(self) -> None:
        self.backend.close()
        engine = sa.create_engine(_plain_driver(self.plain))
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.table}"))
        finally:
            engine.dispose()


def _plain_driver(url: str) -> str:
    drivers = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
    scheme, rest = url.split("://", 1)
    return f"{drivers.get(scheme, scheme)}://{rest}"


def _php_database(url: str) -> dict[str, str]:
    """The PDO DSN and credentials for a bridge test URL."""
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"BRIDGE_PHP_DSN": f"sqlite:{parsed.database}"}
    driver = "pgsql" if backend == "postgresql" else "mysql"
    port = parsed.port or (5432 if driver == "pgsql" else 3306)
    return {
        "BRIDGE_PHP_DSN": f"{driver}:host={parsed.host};port={port};dbname={parsed.database}",
        "BRIDGE_PHP_USER": parsed.username or "",
        "BRIDGE_PHP_PASSWORD": parsed.password or "",
    }


@pytest.fixture(params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    made = Site(request.param, tmp_path)
    made.queue("setup").create_queue()  # Drupal's table, as its schema makes it
    yield made
    made.drop()


@pytest.fixture
def name() -> str:
    return f"q_{uuid.uuid4().hex[:12]}"


# What tests/php/system_queue.php's samples() creates, as Python reads it.
SAMPLES: list[Any] = [
    None, True, False, 0, -7, 2**63 - 1, -(2**63), 0.1, -2.5, 1e25, 3.0, math.inf,
    "", "plain", "h\xe9llo \U0001f600", b"\xff\xfe binary", 'with "quotes";\n and a NUL \x00',
    [], [1, 2, 3], {"a": 1, "b": [True, None]}, {5: "five", 9: "nine"},
    {1: "starts at one"}, {"nid": 42, "langcode": "en", "tags": ["x", "y"]},
    {"nested": {"deeper": {"deepest": [0.5]}}}, {-1: "negative key"},
]  # fmt: skip


def test_php_creates_and_bridge_claims_and_deletes(site: Site, name: str) -> None:
    ids = [int(line) for line in site.php("create-samples", name)]
    queue = site.queue(name)
    claimed = queue.claim_items(len(SAMPLES) + 5, lease_time=60)
    assert [item.item_id for item in claimed] == ids  # Drupal's order: created, item_id
    assert [item.data for item in claimed] == SAMPLES
    assert all(
        type(item.data) is type(sample) for item, sample in zip(claimed, SAMPLES, strict=True)
    )
    assert queue.delete_items(claimed) == len(SAMPLES)
    assert site.php("count", name) == ["0"]


def test_bridge_creates_and_php_claims_and_deletes(site: Site, name: str) -> None:
    queue = site.queue(name)
    ids = queue.create_items(SAMPLES)
    seen = []
    for _ in SAMPLES:
        item_id, encoded = site.php("claim", name, "60")[0].split(" ")
        seen.append((int(item_id), loads(base64.b64decode(encoded))))
    assert site.php("claim", name, "60") == ["none"]
    assert [item_id for item_id, _ in seen] == ids
    assert [data for _, data in seen] == SAMPLES
    assert queue.number_of_items() == 0


def test_rows_are_as_drupal_writes_them(site: Site, name: str) -> None:
    site.php("create-serialized", name, base64.b64encode(dumps({"by": "php"})).decode())
    site.queue(name).create_item({"by": "bridge"})
    claimed = site.queue(name).claim_item(lease_time=30)
    assert claimed is not None
    assert claimed.data == {"by": "php"}
    (php_row, bridge_row) = site.rows(name)
    now = time.time()
    for row in (php_row, bridge_row):
        assert isinstance(row.expire, int)
        assert isinstance(row.created, int)
        assert abs(row.created - now) < 5
    # The last whole second of the lease, as Drupal's time() + 30 is: free 30 to 31 s on.
    assert 28.5 <= php_row.expire - now <= 30.5
    assert bridge_row.expire == 0


def test_each_side_settles_what_the_other_left(site: Site, name: str) -> None:
    queue = site.queue(name)
    queue.create_item("first")
    # PHP claims and releases: bridge can claim it again at once.
    assert site.php("claim", name, "60", "release")[0].endswith(
        base64.b64encode(dumps("first")).decode()
    )
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.data == "first"
    # bridge releases: PHP's claimItem (expire = 0) takes it.
    assert queue.release_item(item)
    assert site.php("claim", name, "60")[0].split(" ")[0] == str(item.item_id)
    # bridge's delayed item: PHP takes it only after garbage collection.
    queue.create_item("later", delay=1)
    assert site.php("claim", name, "60") == ["none"]
    time.sleep(2.1)
    site.php("gc", name)
    assert site.php("claim", name, "60")[0] != "none"


def test_a_lease_php_left_is_claimable_by_bridge_once_its_second_has_passed(
    site: Site, name: str
) -> None:
    site.php("create-serialized", name, base64.b64encode(dumps("x")).decode())
    site.php("claim", name, "1", "keep")  # a PHP worker that died mid-item
    queue = site.queue(name)
    assert queue.claim_item(lease_time=30) is None
    time.sleep(2.1)  # expire < now, in whole seconds: what Drupal's GC resets
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == "x"
    # ... and bridge's lease keeps PHP out, garbage collection or not.
    site.php("gc", name)
    assert site.php("claim", name, "60") == ["none"]
    assert queue.delete_item(item)


def test_php_and_bridge_claiming_at_once_never_share_an_item(site: Site, name: str) -> None:
    total = 300
    queue = site.queue(name)
    ids = set(queue.create_items([{"n": n} for n in range(total)]))
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Event()

    def bridge_worker() -> None:
        own = site.queue(name)
        start.wait()
        while (item := own.claim_item(lease_time=300)) is not None:
            assert own.delete_item(item)
            with lock:
                taken.append(int(item.item_id))

    workers = [threading.Thread(target=bridge_worker) for _ in range(2)]
    for worker in workers:
        worker.start()
    php = [
        subprocess.Popen(
            ["php", str(PHP_SCRIPT), "drain", name, "300"],
            env=site.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    start.set()
    for worker in workers:
        worker.join(120)
    by_php: list[int] = []
    for process in php:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        by_php.extend(int(line) for line in out.split())
    assert by_php, "PHP claimed nothing: no concurrency was tested"
    assert taken, "bridge claimed nothing: no concurrency was tested"
    everything = taken + by_php
    assert len(everything) == len(set(everything)) == total
    assert set(everything) == ids


def test_a_stale_holder_cannot_settle_after_another_claim(site: Site, name: str) -> None:
    queue = site.queue(name)
    queue.create_item("once")
    stale = queue.claim_item(lease_time=1)
    assert stale is not None
    time.sleep(2.1)
    fresh = queue.claim_item(lease_time=60)
    assert fresh is not None
    assert fresh.item_id == stale.item_id
    assert not queue.delete_item(stale)
    assert not queue.release_item(stale)
    assert not queue.extend_lease(stale, 60)
    assert queue.extend_lease(fresh, 120)
    assert queue.delete_item(fresh)  # the fence follows the holder's own extend


def test_a_stale_bridge_holder_cannot_delete_what_php_claimed(site: Site, name: str) -> None:
    queue = site.queue(name)
    queue.create_item("contested")
    stale = queue.claim_item(lease_time=1)
    assert stale is not None
    time.sleep(2.1)
    site.php("gc", name)  # Drupal's cron resets the ended lease
    site.php("claim", name, "60", "keep")  # and a PHP worker takes the item
    assert not queue.delete_item(stale)
    assert queue.number_of_items() == 1


def test_release_ends_the_claim_and_delay_keeps_it(site: Site, name: str) -> None:
    queue = site.queue(name)
    queue.create_item("a")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.delay_item(item, 30)
    assert queue.counts().leased == 1  # a delay is a future expire, as a lease
    assert queue.delete_item(item)
    queue.create_item("b")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.release_item(item)
    assert not queue.delete_item(item)  # expire is 0: nobody's claim
    assert queue.number_of_items() == 1


def test_what_the_table_cannot_hold_is_refused(site: Site, name: str) -> None:
    queue = site.queue(name)
    caps = queue.capabilities
    assert not caps.priority
    assert not caps.hold
    assert not caps.browse
    assert not caps.settle_after_release
    assert caps.lease == "emulated"
    with pytest.raises(UnsupportedOperationError):
        queue.create_item("x", priority=5)
    queue.create_item("x")
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.attempts == 1
    with pytest.raises(UnsupportedOperationError):
        queue.hold_item(item)
    with pytest.raises(PayloadError, match="codec='php'"):
        site.queue(name, JsonCodec()).create_item({"json": True})


def test_objects_php_queued_are_refused_never_built(site: Site, name: str) -> None:
    site.php("create-object", name)
    with pytest.raises(PayloadError, match="object of class 'stdClass'"):
        site.queue(name).claim_item(lease_time=1)


def test_operators_calls(site: Site, name: str) -> None:
    queue = site.queue(name)
    ids = queue.create_items(["a", "b", "c"])
    leased = queue.claim_items(2, lease_time=60)
    counts = queue.counts()
    assert (counts.ready, counts.leased, counts.delayed, counts.held) == (1, 2, 0, 0)
    assert [item.item_id for item in queue.peek(10)] == [ids[2]]
    assert queue.release_all() == 2
    assert not queue.delete_item(leased[0])
    assert queue.remove_item(ids[0])
    assert site.backend.queue_names()[name] == 2
    queue.delete_queue()
    assert queue.number_of_items() == 0


def test_garbage_collection_frees_bridge_leases_for_php(site: Site, name: str) -> None:
    queue = site.queue(name)
    queue.create_item("crashed")
    assert queue.claim_item(lease_time=1) is not None  # a worker that died
    time.sleep(2.1)
    assert site.php("claim", name, "60") == ["none"]  # Drupal claims expire = 0 only
    queue.garbage_collection()
    assert site.php("claim", name, "60")[0] != "none"
