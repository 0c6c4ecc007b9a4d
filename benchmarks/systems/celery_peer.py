"""Celery 5 on five Kombu transports: what a stock Celery deployment costs per job.

What is measured: ``enqueue`` publishes a no-op task with ``PAYLOAD`` as its
argument through ``apply_async``; ``drain`` runs a real Celery worker
(``app.Worker``, the object the ``celery worker`` command builds) in this
process until the queue is empty, and the task body only counts. Every
number therefore includes Celery's message protocol, its consumer blueprint
and its task tracer, which is what a user of Celery pays.

Why the settings are fair to Celery (pitfall 7 of the performance notes: the
pool, prefetch, acks and results swing its figures 2-3x, so they are fixed
and written in ``settings``):

* ``pool=solo``, concurrency 1: one process per consumer and one job in
  flight, the same budget as one bridge claim loop. Up to four drain
  processes run at once, each its own worker.
* ``task_acks_late=True``: the message is acked after the task returns, the
  at-least-once equivalent of bridge's lease.
* ``task_ignore_result=True`` and no result backend; no events, gossip,
  mingle, worker heartbeat, AMQP heartbeat or remote-control (pidbox)
  consumer, so the worker does nothing but consume tasks. Logging at WARNING.
* Batch 1 keeps Celery's default ``worker_prefetch_multiplier`` (4); batch
  100 sets it to 100. Prefetch is the only batching knob a Celery consumer
  has. Kombu's virtual transports (sqla, redis) still fetch one message per
  round trip and only use prefetch as a cap on unacked messages, and the solo
  pool runs each task inside the delivery callback, so the knob matters for
  AMQP, where the broker pushes up to that many messages ahead.
* Bulk enqueue: Celery has no bulk publish. The fastest honest path is one
  producer (one connection and channel) checked out per batch and
  ``apply_async(producer=...)`` for each job of the batch; a ``group`` does
  the same loop plus group bookkeeping and a group id in every message.
  ``batch == 1`` uses plain ``apply_async``, which checks a producer out of
  the pool per job.
* SQL transports poll: ``polling_interval`` is 0.01 s instead of Kombu's 1 s
  so idle sleeps do not dominate. SQLite gets what bridge's SQLite backend
  uses: WAL, ``synchronous=NORMAL`` and a 30 s busy timeout.
* AMQP: Celery's defaults, a durable queue and persistent messages, no
  publisher confirms.

Kombu's SQLAlchemy transport as shipped (pitfall 10), measured as it is:
``_get`` runs ``SELECT ... FOR UPDATE`` without ``SKIP LOCKED`` (concurrent
consumers queue on the same head row; SQLite takes ``BEGIN IMMEDIATE``),
marks the row ``visible = false`` and commits before the task runs. The ack
never reaches the database: rows stay behind, invisible, and a consumer that
dies holding a message loses it (at-most-once in the database; only a clean
shutdown re-inserts unacked messages). ``remaining()`` therefore counts the
visible rows of the queue, and ``reset()`` deletes the invisible ones too.
Every publish also looks the queue row up and commits one transaction per
message.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any, ClassVar

import sqlalchemy as sa
from amqp.exceptions import NotFound
from celery import Celery, bootsteps
from celery.exceptions import WorkerShutdown
from celery.platforms import EX_OK
from celery.worker import state as worker_state
from kombu import Connection  # type: ignore[attr-defined]
from kombu.transport.virtual.base import Transport as VirtualTransport

from benchmarks.systems.base import PAYLOAD, QUEUE, Counter, Drained, System

CELERY_QUEUE = f"celery_{QUEUE}"
TASK_NAME = "benchmarks.celery_peer.noop"
#: Quiet time after which an idle worker checks whether the queue is empty.
IDLE = 0.3
#: How often the watcher looks.
TICK = 0.05
#: Seconds a warm shutdown may take before the watcher asks for a cold one.
STOP_GRACE = 10.0
#: Kombu's redis transport spreads priorities over these list suffixes.
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_PRIORITY_SEP = "\x06\x16"
#: Seconds a worker sleeps after an empty poll of a SQL queue (Kombu: 1.0).
SQL_POLLING_INTERVAL = 0.01

log = logging.getLogger(__name__)

# The task body's only work; ``drain`` installs a fresh one per run.
_counter = Counter()


def _noop(payload: dict[str, Any]) -> None:
    _counter()


# Celery's synchronous loop (used for transports without async I/O, here
# the SQL ones) calls ``drain_events(timeout=2.0)`` and checks the shutdown
# flag only between calls, and once more after the flag is seen, so a
# worker on an empty SQL queue takes 2-4 s to notice a warm shutdown. The
# watcher therefore also sends SIGUSR2; this handler turns it into the same
# ``WorkerShutdown`` the flag would raise, but only while the main thread is
# in Kombu's virtual polling loop: there no transaction is open and any
# message it delivered has already run and been acked (solo pool, acks
# late), so nothing is lost that the flag path would have kept.
_VIRTUAL_DRAIN = VirtualTransport.drain_events.__code__
_nudge_armed = False


def _on_nudge(signum: int, frame: FrameType | None) -> None:
    if _nudge_armed and frame is not None and frame.f_code is _VIRTUAL_DRAIN:
        raise WorkerShutdown(EX_OK)


class _SqlitePragmas:
    """Gives every SQLite connection of this process bridge's settings."""

    installed = False

    @classmethod
    def install(cls) -> None:
        # Kombu builds its engine itself, so the hook goes on the Engine
        # class; the process runs this one system, so it touches no peer.
        if cls.installed:
            return
        sa.event.listen(sa.engine.Engine, "connect", cls._on_connect)
        cls.installed = True

    @staticmethod
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()


class _SqlPolling(bootsteps.StartStopStep):  # type: ignore[misc]
    """Shortens the worker's sleep between empty polls of a SQL queue.

    Kombu reads ``polling_interval`` from the transport options, but its
    SQLAlchemy transport passes every option on to ``create_engine``, which
    rejects it, so the worker's consumer sets it once connected (and again
    after a reconnect, since the step restarts with the connection).
    """

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c: Any) -> None:
        c.connection.transport.polling_interval = SQL_POLLING_INTERVAL


_SETTINGS = (
    "celery 5.7 app.Worker pool=solo concurrency=1 per process, task_acks_late=True, "
    "task_ignore_result=True (no result backend), no events/gossip/mingle/heartbeat/"
    "remote control, prefetch multiplier 4 at batch 1 and 100 at batch 100 (Celery's only "
    "consumer batching knob), bulk enqueue = apply_async(producer=) with one producer per batch"
)
_SQLA_SETTINGS = (
    "; kombu sqla transport as shipped: polling_interval=0.01 s, SELECT ... FOR UPDATE "
    "without SKIP LOCKED, delivered rows hidden (visible=false) and never deleted on ack"
)


class CeleryPeer(System):
    """Celery with a solo-pool worker; subclasses map the harness URL to a broker."""

    batches: ClassVar[tuple[int, ...]] = (1, 100)
    settings: ClassVar[str] = _SETTINGS

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.broker = self.broker_url(url)
        self.kind = self.broker.partition("://")[0].partition("+")[0]
        self.app = Celery(f"bench-{self.family}", set_as_current=False)
        self.app.conf.update(
            broker_url=self.broker,
            broker_transport_options=self._transport_options(),
            broker_connection_retry_on_startup=True,
            broker_heartbeat=0,
            result_backend=None,
            task_ignore_result=True,
            task_acks_late=True,
            task_serializer="json",
            accept_content=["json"],
            task_default_queue=CELERY_QUEUE,
            task_default_exchange=CELERY_QUEUE,
            task_default_routing_key=CELERY_QUEUE,
            task_send_sent_event=False,
            worker_send_task_events=False,
            worker_enable_remote_control=False,
            worker_redirect_stdouts=False,
        )
        if self.kind == "sqla":
            self.app.steps["consumer"].add(_SqlPolling)
        self.task = self.app.task(name=TASK_NAME, shared=False, ignore_result=True)(_noop)
        self.app.finalize()
        self._engine: sa.Engine | None = None
        self._redis: Any = None
        self._amqp: Connection | None = None
        self._lock = threading.Lock()

    # -- what differs per broker -------------------------------------------

    @classmethod
    def broker_url(cls, url: str) -> str:
        return url

    def _transport_options(self) -> dict[str, Any]:
        if self.kind == "sqla":
            # Everything here goes to create_engine, which rejects
            # polling_interval; _SqlPolling sets that on the worker instead.
            if self.family == "sqlite":
                _SqlitePragmas.install()
                return {"connect_args": {"timeout": 30.0}}
            return {}
        if self.kind == "redis":
            # Our own unacked structures, so the count is ours alone even if
            # another Kombu user shares the database.
            return {
                "unacked_key": f"{CELERY_QUEUE}_unacked",
                "unacked_index_key": f"{CELERY_QUEUE}_unacked_index",
                "unacked_mutex_key": f"{CELERY_QUEUE}_unacked_mutex",
            }
        return {}

    # -- the contract ------------------------------------------------------

    def reset(self) -> None:
        # Kombu declares what it needs (creates the sqla tables, binds the
        # queue) and purges, which for sqla deletes invisible rows as well.
        with self.app.connection_for_write() as conn:
            queue = self.app.amqp.queues[CELERY_QUEUE](conn.default_channel)
            queue.declare()
            queue.purge()
        if self.kind == "redis":
            options = self._transport_options()
            self._redis_client().delete(
                options["unacked_key"], options["unacked_index_key"], options["unacked_mutex_key"]
            )

    def enqueue(self, count: int, batch: int) -> None:
        args = (PAYLOAD,)
        if batch == 1:
            for _ in range(count):
                self.task.apply_async(args)
            return
        for start in range(0, count, batch):
            with self.app.producer_or_acquire() as producer:
                for _ in range(min(batch, count - start)):
                    self.task.apply_async(args, producer=producer)

    def drain(self, batch: int) -> Drained:
        global _counter, _nudge_armed
        _counter = Counter()
        # Module state of celery.worker survives a previous drain in this process.
        worker_state.should_stop = None
        worker_state.should_terminate = None
        worker = self.app.Worker(
            hostname=f"bench-{os.getpid()}@{socket.gethostname()}",
            pool_cls="solo",
            concurrency=1,
            prefetch_multiplier=4 if batch == 1 else batch,
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            task_events=False,
            loglevel="WARNING",
            quiet=True,
            redirect_stdouts=False,
        )
        main = threading.current_thread() is threading.main_thread()
        if main:
            # Installed for good: a late signal must never meet SIGUSR2's
            # default action, which kills the process.
            signal.signal(signal.SIGUSR2, _on_nudge)
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch,
            args=(done, threading.main_thread().ident if main else None),
            name="celery-bench-watcher",
            daemon=True,
        )
        watcher.start()
        try:
            worker.start()
        finally:
            _nudge_armed = False
            done.set()
            watcher.join()
        if worker.exitcode not in (None, EX_OK):
            raise RuntimeError(f"the Celery worker stopped with exit code {worker.exitcode}")
        return _counter.drained()

    def remaining(self) -> int:
        with self._lock:
            if self.kind == "sqla":
                return self._sql_remaining()
            if self.kind == "redis":
                return self._redis_remaining()
            return self._amqp_remaining()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._redis is not None:
            self._redis.close()
        if self._amqp is not None:
            self._amqp.release()
        self.app.close()

    # -- the watcher -------------------------------------------------------

    def _watch(self, done: threading.Event, main_ident: int | None) -> None:
        """Stop the worker once the queue is empty and it holds nothing."""
        global _nudge_armed
        started = time.monotonic()
        empty = False
        stopping_since = 0.0
        while not done.wait(TICK):
            if not empty:
                seen = _counter.last
                if time.monotonic() - max(started, seen) < IDLE or self._in_hand():
                    continue
                try:
                    if self.remaining():
                        continue
                except Exception:
                    log.warning("remaining() failed; will retry", exc_info=True)
                    continue
                # A job taken while we counted shows up here.
                empty = _counter.last == seen and not self._in_hand()
                if not empty:
                    continue
                stopping_since = time.monotonic()
            # Set again every tick: the worker may still be starting up.
            worker_state.should_stop = EX_OK
            if time.monotonic() - stopping_since > STOP_GRACE:
                # Never seen; a cold shutdown rather than a drain that hangs.
                worker_state.should_terminate = EX_OK
            if main_ident is not None and self.kind == "sqla":
                _nudge_armed = True
                signal.pthread_kill(main_ident, signal.SIGUSR2)

    @staticmethod
    def _in_hand() -> bool:
        return bool(worker_state.reserved_requests or worker_state.active_requests)

    # -- reading the broker directly -----------------------------------------

    def _sql_remaining(self) -> int:
        if self._engine is None:
            self._engine = sa.create_engine(
                self.broker.removeprefix("sqla+"), **self._engine_options()
            )
        # Kombu never deletes a row on ack, it only hides it on delivery, so
        # the visible rows are the backlog (see the module docstring).
        query = sa.text(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
            "WHERE q.name = :name AND m.visible = :visible"
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query, {"name": CELERY_QUEUE, "visible": True}).scalar_one())

    def _engine_options(self) -> dict[str, Any]:
        if self.family == "sqlite":
            return {"connect_args": {"timeout": 30.0}}
        return {"pool_size": 1}

    def _redis_client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.broker)
        return self._redis

    def _redis_remaining(self) -> int:
        client = self._redis_client()
        pipe = client.pipeline(transaction=False)
        for priority in REDIS_PRIORITY_STEPS:
            suffix = f"{REDIS_PRIORITY_SEP}{priority}" if priority else ""
            pipe.llen(f"{CELERY_QUEUE}{suffix}")
        # Delivered but not acked: at-least-once, so these still count.
        pipe.hlen(self._transport_options()["unacked_key"])
        return int(sum(pipe.execute()))

    def _amqp_remaining(self) -> int:
        if self._amqp is None:
            self._amqp = Connection(self.broker, heartbeat=0)
        try:
            channel = self._amqp.default_channel
            # Ready messages only; unacked ones of live consumers are not
            # counted, which is fine once the drain processes have exited.
            _, count, _ = channel.queue_declare(queue=CELERY_QUEUE, passive=True)
        except NotFound:
            # The broker closed the channel; a queue never declared holds nothing.
            self._drop_amqp()
            return 0
        except Exception:
            self._drop_amqp()
            raise
        return int(count)

    def _drop_amqp(self) -> None:
        if self._amqp is not None:
            self._amqp.release()
            self._amqp = None


class CeleryPostgres(CeleryPeer):
    label = "celery sqla+postgresql"
    family = "postgresql"
    settings = _SETTINGS + _SQLA_SETTINGS + ", psycopg 3"

    @classmethod
    def broker_url(cls, url: str) -> str:
        # psycopg 3 is installed; SQLAlchemy's default postgresql driver is psycopg2.
        return "sqla+postgresql+psycopg://" + url.partition("://")[2]


class CelerySqlite(CeleryPeer):
    label = "celery sqla+sqlite"
    family = "sqlite"
    settings = (
        _SETTINGS + _SQLA_SETTINGS + ", BEGIN IMMEDIATE per poll, WAL, synchronous=NORMAL, "
        "busy timeout 30 s"
    )

    @classmethod
    def broker_url(cls, url: str) -> str:
        return "sqla+" + url


class CeleryMariadb(CeleryPeer):
    label = "celery sqla+mysql"
    family = "mariadb"
    settings = _SETTINGS + _SQLA_SETTINGS + ", pymysql, server default isolation"

    @classmethod
    def broker_url(cls, url: str) -> str:
        return "sqla+mysql+pymysql://" + url.partition("://")[2]


class CeleryRedis(CeleryPeer):
    label = "celery redis"
    family = "redis"
    settings = (
        _SETTINGS + "; kombu redis transport: BRPOP one message per round trip, unacked hash "
        "with the default 1 h visibility timeout"
    )


class CeleryRabbitmq(CeleryPeer):
    label = "celery amqp"
    family = "rabbitmq"
    settings = (
        _SETTINGS + "; py-amqp, durable queue, persistent messages, no publisher confirms, "
        "basic.consume with basic.qos prefetch = multiplier"
    )
