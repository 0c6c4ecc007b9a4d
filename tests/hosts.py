"""Three hosts on one machine for ``test_many_hosts.py``, and the worker each runs.

Each host is a Linux network namespace with one veth into a bridge in the root
namespace; the test's own PostgreSQL and Redis listen on the bridge's address.
Nothing is routed: every packet goes between a namespace and the bridge, so
nothing leaves the machine (docs/many-hosts.md draws it)::

    root namespace                               namespace bmh-<run>-<k>, k = 1..3
    bridge bmh-<run>, 10.213.S.1/24  --  veth bmh-<run>-<k>h  ==  eth0, 10.213.S.1<k>/24
      postgres     10.213.S.1:<free port>        python -m hosts, forking the workers
      redis-server 10.213.S.1:<free port>

A run's names all start ``bmh-<run>`` (six hex digits) and its files live in
``/tmp/bridge-many-hosts/<run>/``, whose ``lock`` the run holds (flock) until
it has taken everything down. A run that crashed leaves its lock unheld:
the next run removes its namespaces, links, server processes and files
(:func:`clean_leftovers`). Runs choose their subnet ``S`` and clean up under
one machine-wide lock, so parallel runs never collide.

Run as ``python -m hosts`` (from ``tests/``) in a namespace, this module is
the host's parent process, which forks the host's worker processes: see
:func:`serve` and :func:`work`.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

PREFIX = "bmh-"
BASE = Path("/tmp/bridge-many-hosts")
TESTS = Path(__file__).resolve().parent
HOSTS = 3
_RUN_NAME = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})(?:-|$)")


class HostsUnavailable(Exception):
    """The namespaces or a private server could not be made here (and why)."""


def ip(*args: str) -> str:
    """Run ``ip args``; its output. Failing, :class:`HostsUnavailable` with ip's message."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise HostsUnavailable("the ip command (iproute2) is not installed") from None
    if done.returncode:
        raise HostsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the test process dies, even by SIGKILL."""

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG

    return preexec


@contextmanager
def _machine_lock() -> Iterator[None]:
    BASE.mkdir(mode=0o755, exist_ok=True)
    with open(BASE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class Network:
    """One run's bridge and namespaces; :meth:`create` makes it, :meth:`remove` undoes it."""

    run: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: int = 0
    _lock: IO[str] | None = None

    @property
    def dir(self) -> Path:
        return BASE / self.run

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.run}"

    @property
    def address(self) -> str:
        """The servers' address: the bridge's, in the root namespace."""
        return f"10.213.{self.subnet}.1"

    @property
    def cidr(self) -> str:
        return f"10.213.{self.subnet}.0/24"

    def namespace(self, host: int) -> str:
        return f"{self.bridge}-{host}"

    def link(self, host: int) -> str:
        """The host's veth end in the root namespace: setting it down cuts the host off."""
        return f"{self.bridge}-{host}h"

    def create(self) -> None:
        """Clean up crashed runs, then make this run's bridge and hosts."""
        if os.geteuid() != 0:
            raise HostsUnavailable("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
        with _machine_lock():
            clean_leftovers()
            self.dir.mkdir(mode=0o755)
            self._lock = open(self.dir / "lock", "w")  # noqa: SIM115 (held until remove)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self.subnet = _free_subnet()
            try:
                self._build()
            except BaseException:
                self.remove()
                raise

    def _build(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in range(1, HOSTS + 1):
            ns, inside = self.namespace(host), f"{self.bridge}-{host}n"
            ip("netns", "add", ns)
            ip("link", "add", self.link(host), "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", self.link(host), "master", self.bridge)
            ip("link", "set", self.link(host), "up")
            ip("-n", ns, "link", "set", inside, "name", "eth0")
            ip("-n", ns, "addr", "add", f"10.213.{self.subnet}.1{host}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, host: int) -> None:
        ip("link", "set", self.link(host), "down")

    def restore(self, host: int) -> None:
        ip("link", "set", self.link(host), "up")

    def start_host(self, host: int, log: Path) -> Host:
        """The host's parent process, ``python -m hosts`` in its namespace (see :func:`serve`)."""
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace(host), sys.executable, "-m", "hosts"],
                cwd=TESTS,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_die_with_parent(signal.SIGKILL),
            )
        return Host(host, process, log)

    def remove(self) -> None:
        """Take down what :meth:`create` made (and what ran in it), then the files."""
        _remove_run(self.run)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_subnet() -> int:
    """A third octet no address on this machine uses in 10.213.0.0/16."""
    used = {
        int(info["local"].split(".")[2])
        for link in json.loads(ip("-j", "-4", "addr", "show") or "[]")
        for info in link.get("addr_info", [])
        if info.get("local", "").startswith("10.213.")
    }
    free = [octet for octet in range(1, 255) if octet not in used]
    if not free:
        raise HostsUnavailable("no free /24 left in 10.213.0.0/16")
    return random.choice(free)


def _run_names() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """This test's namespaces and links by run id."""
    namespaces: dict[str, list[str]] = {}
    links: dict[str, list[str]] = {}
    for entry in json.loads(ip("-j", "netns", "list") or "[]"):
        if match := _RUN_NAME.match(entry["name"]):
            namespaces.setdefault(match[1], []).append(entry["name"])
    for entry in json.loads(ip("-j", "link", "show") or "[]"):
        if match := _RUN_NAME.match(entry["ifname"]):
            links.setdefault(match[1], []).append(entry["ifname"])
    return namespaces, links


def clean_leftovers() -> list[str]:
    """Remove what runs that died left (their lock is free); the run ids removed.

    Called under the machine lock, so no run is between taking its lock and
    making its first namespace.
    """
    namespaces, links = _run_names()
    runs = set(namespaces) | set(links)
    if BASE.exists():
        runs |= {path.name for path in BASE.iterdir() if re.fullmatch("[0-9a-f]{6}", path.name)}
    removed = []
    for run in sorted(runs):
        lock_path = BASE / run / "lock"
        if lock_path.exists():
            with open(lock_path) as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run
        _remove_run(run)
        shutil.rmtree(BASE / run, ignore_errors=True)
        removed.append(run)
    return removed


def _remove_run(run: str) -> None:
    """Kill one run's processes (in its namespaces, and its servers), delete its network."""
    namespaces, links = _run_names()
    for ns in namespaces.get(run, []):
        # A namespace outlives `ip netns del` while a process still runs in it.
        for pid in ip("netns", "pids", ns).split():
            _kill(int(pid))
        ip("netns", "del", ns)
    pids = BASE / run / "pids"
    for line in pids.read_text().splitlines() if pids.exists() else []:
        pid, marker = line.split(" ", 1)
        _kill(int(pid), must_mention=marker)
    # A veth usually goes with its namespace, but not while TCP sockets orphaned
    # there (their host killed while cut off) keep the namespace alive.
    for link in links.get(run, []):
        try:
            ip("link", "del", link)
        except HostsUnavailable:
            if link in _run_names()[1].get(run, []):
                raise


def _kill(pid: int, must_mention: str | None = None) -> None:
    """SIGKILL ``pid``, if it lives (and its command line names ``must_mention``)."""
    try:
        if must_mention is not None:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if must_mention.encode() not in command:
                return  # the pid was reused by someone else
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


@dataclass
class Server:
    """A private server process on the network's address; :meth:`stop` ends it."""

    url: str
    process: subprocess.Popen[bytes]
    stop_signal: signal.Signals

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def _start(
    network: Network, argv: list[str], marker: str, dies_by: signal.Signals, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a server, its output in the run's directory; ``dies_by`` if the test dies.

    Its pid is noted with ``marker``, a string its command line shows (servers
    rewrite theirs), so a later run kills it only if the pid is still it.
    """
    with open(network.dir / f"{Path(argv[0]).name}.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(dies_by),
            **popen,
        )
    with open(network.dir / "pids", "a") as pids:
        pids.write(f"{process.pid} {marker}\n")
    return process


def _wait_until_up(server: Server, log: Path, ping: Callable[[], object]) -> Server:
    deadline = time.monotonic() + 30
    while True:
        if server.process.poll() is not None:
            output = log.read_text(errors="replace")[-2000:]
            raise HostsUnavailable(f"{log.name}: exited {server.process.returncode}: {output}")
        try:
            ping()
            return server
        except Exception as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise HostsUnavailable(f"{log.name}: not answering after 30 s: {exc}") from exc
            time.sleep(0.05)


def start_redis(network: Network) -> Server:
    """A redis-server of the run's own, on the bridge's address, persisting nothing."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise HostsUnavailable("redis-server is not installed")
    (network.dir / "redis").mkdir()
    listen = f"{network.address}:{_free_port(network.address)}"
    argv = [binary, "--bind", network.address, "--port", listen.split(":")[1], "--save", ""]
    argv += ["--appendonly", "no", "--protected-mode", "no", "--dir", str(network.dir / "redis")]
    server = Server(
        f"redis://{listen}/0", _start(network, argv, listen, signal.SIGTERM), signal.SIGTERM
    )
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    try:
        return _wait_until_up(server, network.dir / "redis-server.log", client.ping)
    finally:
        client.close()


def start_postgres(network: Network) -> Server:
    """A PostgreSQL cluster of the run's own (initdb, trust), on the bridge's address.

    Run as the ``postgres`` user when the test runs as root, which initdb and
    postgres refuse. ``fsync=off``: the cluster lives for one test module and
    no server crash is tested, so waiting for the disk would only slow it.
    ``jit=off``: with JIT on (the default), each worker's first call JIT-compiles
    SQLAlchemy's column reflection (``ensure_schema``), 0.5 to 4 s a process here.
    """
    import psycopg

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if not found:
        raise HostsUnavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    bindir, data = found[-1].parent, network.dir / "postgres" / "data"
    owner = "postgres" if os.geteuid() == 0 else None
    data.parent.mkdir()
    if owner is not None:
        shutil.chown(data.parent, owner, owner)
    initdb = [str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"]
    done = subprocess.run(
        [*initdb, "--no-sync", "-E", "UTF8"], capture_output=True, text=True, user=owner, timeout=60
    )
    if done.returncode:
        raise HostsUnavailable(f"initdb failed: {done.stderr.strip()}")
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {network.cidr} trust\n")
    port = _free_port(network.address)
    argv = [str(bindir / "postgres"), "-D", str(data), "-c", f"port={port}"]
    argv += ["-c", f"listen_addresses={network.address}", "-c", "unix_socket_directories="]
    argv += ["-c", "fsync=off", "-c", "jit=off"]
    # SIGINT is a fast shutdown; SIGQUIT, the immediate one, only if the test dies.
    process = _start(network, argv, str(data), signal.SIGQUIT, user=owner)
    server = Server(
        f"postgresql+psycopg://postgres@{network.address}:{port}/postgres", process, signal.SIGINT
    )
    conninfo = f"host={network.address} port={port} user=postgres dbname=postgres"
    return _wait_until_up(
        server,
        network.dir / "postgres.log",
        lambda: psycopg.connect(conninfo, connect_timeout=1).close(),
    )


def _version(initdb: Path) -> tuple[int, ...]:
    name = initdb.parent.parent.name
    return tuple(int(part) for part in name.split(".") if part.isdigit())


# The processes each host runs ----------------------------------------------------------


@dataclass
class Host:
    """A host's parent process, forking a worker process when asked (:func:`serve`)."""

    number: int
    process: subprocess.Popen[str]
    log: Path

    def fork(self, args: list[str]) -> int:
        """Start a worker process (:func:`work`) with ``args``; its pid."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise HostsUnavailable(f"host {self.number} exited {self.process.wait()}: {tail}")
        return int(answer)

    def stop(self) -> None:
        """End the parent (its stdin closed); a worker still running dies with it."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve() -> NoReturn:
    """A host: imports bridge and its drivers once, then forks a worker process for
    each line of stdin (the worker's arguments, JSON), answering with its pid.

    As a Celery prefork pool does: the workers start in milliseconds, not the
    second an import of SQLAlchemy and psycopg takes, and share no connection
    (none is open before the fork). Workers are reaped as they exit; the test
    reads their record files.
    """
    # What every worker would import: drivers and backends, once per host.
    import psycopg  # noqa: F401
    import redis  # noqa: F401
    import sqlalchemy  # noqa: F401

    import bridge.backends.redis
    import bridge.backends.sql  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _die_with_parent(signal.SIGKILL)()
            os.dup2(os.open(os.devnull, os.O_RDWR), 0)
            os.dup2(0, 1)
            code = 1
            try:
                code = work(json.loads(line))
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
    os._exit(0)  # stdin closed: nothing to tear down, so skip the interpreter's teardown


def _record(out: int, line: str) -> None:
    # One unbuffered write per line: a killed process leaves whole lines only.
    os.write(out, f"{line}\n".encode())


def work(argv: list[str]) -> int:
    """A worker process: drains the queue with ``bridge.process_queue``.

    It writes ``ready`` to its record file once connected, waits for the
    ``--go`` file, then runs passes until the store says the queue is empty
    (items leased by a host that was cut off count, so it waits for their
    leases to end and processes them too). Each item it finishes adds
    ``done <id> <attempts> <time>``. With ``--hold-after N``, the worker
    pauses in its item after N items, writing ``hold <id> <lease end>``,
    until the ``--gate`` file exists: the test cuts this host off while it
    holds that item. Its totals end the record: ``summary <json>``, or
    ``error <what>`` if it failed.
    """
    parser = argparse.ArgumentParser(prog="worker")
    parser.add_argument("spec", type=json.loads)
    parser.add_argument("queue")
    parser.add_argument("record", type=Path)
    parser.add_argument("--go", type=Path, required=True)
    parser.add_argument("--lease", type=float, required=True)
    parser.add_argument("--work", type=float, default=0.0)
    parser.add_argument("--hold-after", type=int)
    parser.add_argument("--gate", type=Path)
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args(argv)
    out = os.open(args.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        totals = _drain(args, out)
    except BaseException as exc:
        _record(out, f"error {exc!r}")
        raise
    _record(out, f"summary {json.dumps(totals)}")
    return 0


def _drain(args: argparse.Namespace, out: int) -> dict[str, Any]:
    import bridge

    factory = bridge.QueueFactory(default=args.spec)
    queue = factory.get(args.queue)
    finished = 0

    @bridge.queue_worker(args.queue, lease_time=args.lease)
    def record_item(data: Any) -> None:
        nonlocal finished
        item = bridge.current_item()
        assert item is not None
        if finished == args.hold_after:
            _record(out, f"hold {item.item_id} {item.expire:.6f}")
            while not args.gate.exists():
                time.sleep(0.005)
        time.sleep(args.work)
        finished += 1
        _record(out, f"done {item.item_id} {item.attempts} {time.time():.6f}")

    queue.number_of_items()  # connected before the start line, not after
    _record(out, "ready")
    started = time.monotonic()
    while not args.go.exists():
        time.sleep(0.005)
    totals: dict[str, Any] = {"processed": 0, "lost": 0, "passes": 0, "stops": []}
    while time.monotonic() - started < args.deadline:
        summary = bridge.process_queue(args.queue, factory=factory)
        totals["passes"] += 1
        totals["processed"] += summary.processed
        totals["lost"] += summary.lost
        if summary.stopped_by != "empty" and summary.stopped_by not in totals["stops"]:
            totals["stops"].append(summary.stopped_by)
        if queue.number_of_items() == 0:
            break
        time.sleep(0.05)
    else:
        totals["stops"].append("deadline")
    factory.close()
    return totals


if __name__ == "__main__":
    serve()
