"""The Redis backend on a Redis Cluster, beyond the contract suite it passes there too.

The contract suite, the multi-process, fork and SIGKILL tests run on the
cluster as the ``redis-cluster`` backend kind (``tests/conftest.py``).
Here: queues spread over every master and listed from all of them, every
key of a queue in its one slot (the server refuses a script across slots),
connections killed mid-call on the queue's master, a claimer killed
holding an item, an unreachable cluster, refused logins, the URL; and on a
private cluster with replicas, a queue's slot moved to another master and
a master killed, whose replica takes over.

The shared cluster (three masters, no replicas, on 7000-7002) is started
by ``.ci/run``, and nothing here changes its layout; the last two tests
start six servers of their own in a temporary directory.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

import bridge
from bridge.backends import redis_scripts
from bridge.backends.redis import RedisBackend
from bridge.backends.redis_cluster import ClusterClient, split_url

from children import claim_in_a_process_and_kill_it, claim_within
from conftest import REDIS_CLUSTER_URL, REDIS_URL, REQUIRE_SERVICES

pytestmark = pytest.mark.service("redis-cluster")


@pytest.fixture
def admin() -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(split_url(REDIS_CLUSTER_URL)[0])
    yield client
    client.close()


@pytest.fixture
def prefix(admin: RedisCluster) -> Iterator[str]:
    """A fresh key prefix; every key under it, on every master, is deleted after the test."""
    made = f"bridge_c_{uuid.uuid4().hex[:10]}"
    yield made
    for key in list(admin.scan_iter(match=f"{made}:*", count=1000)):
        admin.unlink(key)


@pytest.fixture
def factory(prefix: str) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(
        default={"url": REDIS_CLUSTER_URL, "options": {"key_prefix": prefix}}
    )
    yield made
    made.close()


def backend_of(queue: bridge.Queue) -> RedisBackend:
    assert isinstance(queue.backend, RedisBackend)
    return queue.backend


def items_key(queue: bridge.Queue) -> str:
    return redis_scripts.queue_keys(backend_of(queue).key_prefix, queue.name)[0][3]


def master_of(admin: RedisCluster, key: str) -> Any:
    """The ClusterNode of the master serving ``key``'s slot."""
    return admin.get_node_from_key(key)


# -- queues over every master -------------------------------------------------------------


def test_queue_names_lists_the_queues_of_every_master(
    factory: bridge.QueueFactory, admin: RedisCluster
) -> None:
    masters = {node.name for node in admin.get_primaries()}
    assert len(masters) >= 3, "a cluster of three masters"
    # Two queues per master, whichever names it takes to get them.
    by_master: dict[str, list[bridge.Queue]] = {name: [] for name in masters}
    n = 0
    while any(len(queues) < 2 for queues in by_master.values()):
        queue = factory.get(f"q{n}")
        n += 1
        node = master_of(admin, items_key(queue)).name
        if len(by_master[node]) < 2:
            by_master[node].append(queue)
    queues = [queue for pair in by_master.values() for queue in pair]
    expected = {queue.name: n + 1 for n, queue in enumerate(queues)}
    for queue in queues:
        queue.create_items(list(range(expected[queue.name])))
    # A queue with no ready item is listed too: its items leased, delayed, held.
    first = queues[0]
    first.create_item("delayed", delay=60)
    expected[first.name] += 1
    [claimed] = first.claim_items(10, lease_time=60)
    assert first.hold_item(claimed)
    first.create_item("leased")
    assert first.claim_item(lease_time=60) is not None
    expected[first.name] += 1

    assert first.backend.queue_names() == expected
    for node, pair in by_master.items():
        own = admin.get_node(node_name=node).redis_connection
        for queue in pair:
            assert own.exists(items_key(queue)) == 1, "the queue lives on its own master"
    for queue in queues:
        queue.delete_queue()
    assert first.backend.queue_names() == {}


NAMES = ["plain", "with {braces} inside", "}starts with a brace", "100%}{", "ünï 🚀:x"]


def test_every_key_of_a_queue_is_in_its_one_slot_whatever_the_name(
    factory: bridge.QueueFactory, admin: RedisCluster, prefix: str
) -> None:
    # Every call below is a script on the queue's keys: a key outside the
    # queue's slot and the cluster would refuse it (CROSSSLOT).
    for name in NAMES:
        queue = factory.get(name)
        queue.create_items(["leased", "held", "failed", "ready"], priority=2)
        queue.create_item("delayed", delay=60)
        leased, held, failed = queue.claim_items(3, lease_time=60)
        assert queue.hold_item(held, reason="set aside")
        assert queue.fail_item(failed, "Error: once", delay=30)
        assert queue.extend_lease(leased, 90)
    keys = list(admin.scan_iter(match=f"{prefix}:*", count=1000))
    for name in NAMES:
        tag = redis_scripts.escape_name(name)
        mine = [key for key in keys if key.startswith(f"{prefix}:{{{tag}}}:".encode())]
        parts = {key.decode().rsplit("}:", 1)[1].split(":")[0] for key in mine}
        assert parts == {"ready", "leased", "delayed", "held", "items", "ids", "producer"}, name
        assert len({key_slot(key) for key in mine}) == 1, name
    assert len(keys) == 7 * len(NAMES), "every key belongs to one queue's slot"
    assert set(factory.get("any").backend.queue_names()) == set(NAMES)
    for name in NAMES:
        queue = factory.get(name)
        assert queue.kick() == 1
        assert [item.data for item in queue.peek(2)] == ["held", "ready"]
        assert queue.release_all() == 3, "the lease, the failed item's delay, the delay"
        assert queue.counts() == bridge.ItemCounts(ready=5, leased=0, delayed=0, held=0)
        queue.delete_queue()


# -- killed mid-call, killed holding a claim ----------------------------------------------


def kill_on_next_call(
    queue: bridge.Queue, admin: RedisCluster, monkeypatch: pytest.MonkeyPatch, when: str
) -> list[str]:
    """Kill, from the server side, the connection to the queue's master on its next request.

    ``when`` is ``"before"`` (the server never sees the request) or
    ``"after"`` (the server ran it; its reply is lost). Returns the steps
    not yet taken.
    """
    client = backend_of(queue).client
    assert isinstance(client, ClusterClient)
    node = client.cluster().get_node_from_key(items_key(queue))
    pool = node.redis_connection.connection_pool
    conn = pool.get_connection()
    pool.release(conn)
    killer = redis.Redis(host=node.host, port=node.port)
    steps = [when]
    send = conn.send_packed_command

    def kill() -> None:
        host, port = conn._sock.getsockname()[:2]
        killer.client_kill(f"{host}:{port}")

    def send_then_maybe_die(*args: Any, **kwargs: Any) -> None:
        if steps == ["before"]:
            steps.pop()
            kill()
        send(*args, **kwargs)
        if steps == ["after"]:
            steps.pop()
            sock = conn._sock
            assert select.select([sock], [], [], 10)[0], "no reply within 10 s"
            kill()
            sock.settimeout(5)
            while sock.recv(65536):
                pass

    monkeypatch.setattr(conn, "send_packed_command", send_then_maybe_die)
    return steps


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_claim_killed_mid_call_raises_unavailable_and_loses_nothing(
    factory: bridge.QueueFactory,
    admin: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    queue = factory.get("killed")
    queue.create_items(["only"])
    steps = kill_on_next_call(queue, admin, monkeypatch, when)
    with pytest.raises(bridge.BackendUnavailableError, match="claim_items on redis\\+cluster://"):
        queue.claim_item(lease_time=0.5)
    assert steps == []
    assert queue.number_of_items() == 1
    if when == "after":
        assert queue.claim_item(lease_time=30) is None, "the lost claim holds it"
        time.sleep(0.6)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.attempts == (2 if when == "after" else 1), "attempts counts the lost claim"
    assert queue.delete_item(item)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_create_killed_once_is_repeated_by_bridge_and_written_once(
    factory: bridge.QueueFactory,
    admin: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    queue = factory.get("created")
    queue.create_item("first")
    steps = kill_on_next_call(queue, admin, monkeypatch, when)
    ids = queue.create_items(["a", "b", "c"])
    assert steps == []
    claimed = queue.claim_items(10, lease_time=30)
    assert [item.data for item in claimed] == ["first", "a", "b", "c"]
    assert [item.item_id for item in claimed[1:]] == ids


def test_a_process_killed_holding_a_claim_loses_nothing(factory: bridge.QueueFactory) -> None:
    queue = factory.get("holder")
    [item_id] = queue.create_items(["held by the dead"])
    spec = factory.default
    assert isinstance(spec, dict)
    started = time.monotonic()
    assert claim_in_a_process_and_kill_it(spec, queue.name, lease=2) == item_id
    assert queue.counts().leased == 1
    if time.monotonic() - started < 2:
        assert queue.claim_item(lease_time=30) is None, "back before its lease ended"
    item = claim_within(queue, 10, lease=30)
    assert (item.item_id, item.attempts) == (item_id, 2)
    assert queue.delete_item(item)


# -- unreachable, misdirected, URLs -----------------------------------------------------


def test_every_call_on_an_unreachable_cluster_raises_unavailable() -> None:
    # Opened while the cluster is down: RedisCluster is made at the first call.
    backend = RedisBackend("redis+cluster://:s3cret@127.0.0.1:1,127.0.0.1:2", key_prefix="p")
    item = bridge.QueueItem(1, "x", 0.0, 0.0, 1, 0, "q", "token")
    calls: list[Callable[[], object]] = [
        lambda: backend.create_queue("q"),
        lambda: backend.delete_queue("q"),
        lambda: backend.create_items("q", [b"1"], 0, 0),
        lambda: backend.claim_items("q", 1, 30),
        lambda: backend.delete_items("q", [item]),
        lambda: backend.release_item("q", item),
        lambda: backend.delay_item("q", item, 5),
        lambda: backend.extend_lease("q", item, 5),
        lambda: backend.fail_item("q", item, "E", None),
        lambda: backend.hold_item("q", item, "r", None),
        lambda: backend.held_items("q", 5),
        lambda: backend.kick("q", None),
        lambda: backend.counts("q"),
        lambda: backend.oldest_ready_age("q"),
        lambda: backend.queue_names(),
        lambda: backend.peek("q", 5),
        lambda: backend.release_all("q"),
    ]
    try:
        for call in calls:
            with pytest.raises(bridge.BackendUnavailableError) as raised:
                call()
            assert " on redis+cluster://:***@127.0.0.1:1,127.0.0.1:2 " in str(raised.value)
            assert "s3cret" not in str(raised.value)
            assert isinstance(raised.value.__cause__, redis.ConnectionError)
    finally:
        backend.close()


def test_a_node_that_is_down_is_passed_over_for_the_next(prefix: str) -> None:
    host_port = split_url(REDIS_CLUSTER_URL)[1][0]
    url = f"redis+cluster://127.0.0.1:1,{host_port[0]}:{host_port[1]}"
    factory = bridge.QueueFactory(default={"url": url, "options": {"key_prefix": prefix}})
    try:
        queue = factory.get("q")
        queue.create_item("x")
        assert queue.number_of_items() == 1
        queue.delete_queue()
    finally:
        factory.close()


def test_a_closed_backend_connects_again_on_its_next_call(prefix: str) -> None:
    backend = RedisBackend(REDIS_CLUSTER_URL, key_prefix=prefix)
    try:
        backend.create_items("q", [b"1"], 0, 0)
        backend.close()
        assert backend.counts("q").ready == 1, "as redis.Redis does after close()"
        backend.delete_queue("q")
    finally:
        backend.close()


def test_a_refused_login_and_a_server_not_in_cluster_mode_are_errors_not_outages() -> None:
    host, port = split_url(REDIS_CLUSTER_URL)[1][0]
    plain = REDIS_URL.partition("://")[2].rpartition("@")[2].partition("/")[0]
    for url, says in [
        (f"redis+cluster://nobody:wrong@{host}:{port}", "username-password"),
        (f"redis+cluster://{plain}", "Cluster mode is not enabled"),
    ]:
        backend = RedisBackend(url)
        try:
            with pytest.raises(bridge.BackendError, match=says) as raised:
                backend.number_of_items("x")
            assert not isinstance(raised.value, bridge.BackendUnavailableError), url
        finally:
            backend.close()


def test_urls() -> None:
    assert split_url("redis+cluster://a,b:7001,[::1]:7002") == (
        "redis://a",
        [("a", 6379), ("b", 7001), ("::1", 7002)],
    )
    assert split_url("REDISS+CLUSTER://u:p,w@a:1,b:2/0?ssl_cert_reqs=none") == (
        "rediss://u:p,w@a:1/0?ssl_cert_reqs=none",
        [("a", 1), ("b", 2)],
    )
    secure = RedisBackend("rediss+cluster://u:pw@127.0.0.1:1,127.0.0.1:2/0?socket_timeout=3")
    assert secure.url == "rediss+cluster://u:***@127.0.0.1:1,127.0.0.1:2/0?socket_timeout=3"
    assert isinstance(secure.client, ClusterClient)
    secure.close()
    for bad, says in [
        ("redis+cluster://h:1/2", "database 0 only"),
        ("redis+cluster://h:1,,h:2", "no host"),
        ("redis+cluster://h:99999", "Port"),
        ("redis+cluster://h:1?socket_timeout=soon", "socket_timeout"),
    ]:
        with pytest.raises(bridge.ConfigurationError, match=says):
            RedisBackend(bad)


# -- a master killed, its replica promoted ------------------------------------------------


def _free_port() -> int:
    """A port free now, whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _answering(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        time.sleep(0.1)


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    """Three masters with a replica each, started here, on free ports; port -> server."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "redis-server and redis-cli are needed to start a private cluster"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    servers: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for _ in range(6):
            port = _free_port()
            (tmp_path / str(port)).mkdir()
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            cluster = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
            files = ["--cluster-config-file", "nodes.conf", "--dir", str(tmp_path / str(port))]
            scratch = ["--save", "", "--appendonly", "no"]
            servers[port] = subprocess.Popen(
                [*command, *cluster, *files, *scratch], stdout=subprocess.DEVNULL
            )
        for port in servers:
            _until(partial(_answering, port), 20, f"no Redis on {port}")
        nodes = [f"127.0.0.1:{port}" for port in servers]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1"]
        subprocess.run([*create, "--cluster-yes"], check=True, capture_output=True, timeout=60)

        def ready() -> bool:
            for port in servers:
                client = redis.Redis(port=port)
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False
            return True

        _until(ready, 60, "the private cluster was not ready")
        yield servers
    finally:
        for server in servers.values():
            server.kill()
            server.wait()


def test_a_queue_whose_slot_moves_to_another_master_is_followed_there(
    private_cluster: dict[int, subprocess.Popen[bytes]],
) -> None:
    ports = list(private_cluster)
    url = f"redis+cluster://127.0.0.1:{ports[0]}"
    factory = bridge.QueueFactory(default={"url": url, "options": {"key_prefix": "mv"}})
    admin = RedisCluster(host="127.0.0.1", port=ports[0])
    try:
        queue = factory.get("moving")
        ids = queue.create_items(["a", "b", "c", "d", "e"])
        holder = queue.claim_item(lease_time=60)
        assert holder is not None
        key = items_key(queue)
        slot = key_slot(key.encode())
        source = master_of(admin, key)
        target = next(node for node in admin.get_primaries() if node.port != source.port)
        src, dst = source.redis_connection, target.redis_connection
        src_id, dst_id = (node.execute_command("CLUSTER MYID") for node in (src, dst))
        # Resharding one slot by hand, as redis-cli --cluster reshard does.
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
        assert len(keys) == 5, keys  # ready, leased, items, ids, the producer's record
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in admin.get_primaries():
            node.redis_connection.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)

        # The backend still sends the queue's scripts to the old master,
        # which answers MOVED; the client follows it and learns the new map.
        assert queue.counts() == bridge.ItemCounts(ready=4, leased=1, delayed=0, held=0)
        assert queue.delete_item(holder)
        claimed = queue.claim_items(10, lease_time=60)
        assert [item.item_id for item in claimed] == ids[1:]
        assert dst.exists(key) == 1
        assert src.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
    finally:
        factory.close()
        admin.close()


def test_a_killed_master_fails_over_to_its_replica_and_its_queue_goes_on(
    private_cluster: dict[int, subprocess.Popen[bytes]],
) -> None:
    ports = list(private_cluster)
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports[:2])
    factory = bridge.QueueFactory(default={"url": url, "options": {"key_prefix": "fo"}})
    admin = RedisCluster(host="127.0.0.1", port=ports[0])
    try:
        queue = factory.get("jobs")
        ids = queue.create_items([{"n": n} for n in range(10)])
        holder = queue.claim_item(lease_time=60)
        assert holder is not None
        master = master_of(admin, items_key(queue))
        # Every write on a replica before the kill: replication is
        # asynchronous (bridge does not WAIT), and what a failover may lose
        # is not what this test is about.
        assert master.redis_connection.execute_command("WAIT", 1, 5000) == 1
        os.kill(private_cluster[master.port].pid, signal.SIGKILL)

        outages: list[bridge.BackendUnavailableError] = []

        def answers() -> bool:
            try:
                queue.counts()
            except bridge.BackendUnavailableError as exc:
                outages.append(exc)
                return False
            return True

        _until(answers, 30, "the replica did not take over")
        assert outages, "the kill was never seen: the test proves nothing"
        other = ports[1] if master.port == ports[0] else ports[0]
        fresh = RedisCluster(host="127.0.0.1", port=other)
        assert master_of(fresh, items_key(queue)).port != master.port, "a replica took the slot"
        fresh.close()
        assert queue.counts() == bridge.ItemCounts(ready=9, leased=1, delayed=0, held=0)
        assert queue.delete_item(holder), "the claim (its token) was replicated with the item"
        # The new master never loaded bridge's scripts: NOSCRIPT, then loaded.
        claimed = queue.claim_items(20, lease_time=60)
        assert sorted(item.item_id for item in claimed) == ids[1:]
        assert queue.delete_items(claimed) == 9
    finally:
        factory.close()
        admin.close()
