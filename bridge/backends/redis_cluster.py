"""The Redis backend on a Redis Cluster: the ``redis+cluster://`` URL and its client.

The Redis backend needs nothing else to run on a cluster: every key of a
queue carries the queue's name as its hash tag, so each script touches one
slot, on one master (``redis_scripts.queue_keys``), and the one call that
spans queues, ``queue_names``, scans every master and counts through a
pipeline that redis-py splits by node. What differs is the client, made
here: redis-py's ``RedisCluster``, which follows ``MOVED`` and ``ASK``
redirections itself (the server ran nothing, so that is safe) and is told
to repeat nothing else, as the single-server client is.

URL format:
    ``redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0][?args]``,
    or ``rediss+cluster://`` for TLS: one or more nodes to discover the
    cluster from (any node will do; listing several lets the backend start
    while one is down), port 6379 unless given, database 0 only, and
    redis-py's query arguments as for ``redis://``. The ``+cluster`` follows
    bridge's ``scheme+variant`` rule (``postgresql+psycopg``, Celery's
    ``redis+socket``): the scheme picks the Redis backend, the variant its
    client.

Connecting:
    redis-py's ``RedisCluster`` connects when it is made (it asks a node for
    the slot map). ``ClusterClient`` makes it on first use instead, so that
    a backend can be opened while the cluster is down and its calls raise
    ``BackendUnavailableError`` like those of any other backend, then work
    once the cluster is back. redis-py reports a cluster it cannot reach, or
    a slot no master serves, with ``RedisClusterException``, which is not a
    ``redis.RedisError``, and a cluster failing over with ``CLUSTERDOWN``, a
    ``ResponseError``: ``ClusterClient`` raises those as
    ``redis.ConnectionError`` (chained), the error the backend already reads
    as "unavailable" (see ``_as_redis_errors``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    AuthorizationError,
    ClusterError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""A cluster URL's scheme -> the scheme redis-py reads for each node."""

_AUTHORITY = re.compile(r"([^/?#]*)(.*)", re.DOTALL)
"""A URL after its ``://``: the authority (userinfo and hosts), then path and query."""

_MISTAKES = (CrossSlotTransactionError, InvalidPipelineStack)
"""What redis-py's cluster client raises for a caller's mistake, not the cluster's state."""

_MIN_REDIS_PY = 6
"""Before 6.0, RedisCluster repeated a failed command three times by default."""


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def split_url(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL as one node's ``redis://`` URL (credentials and arguments) and every node.

    Raises ``ValueError`` for a host that is empty or has a bad port.
    """
    scheme, _, rest = url.partition("://")
    netloc, tail = _AUTHORITY.match(rest).groups()  # type: ignore[union-attr]  # always matches
    userinfo, at, hosts = netloc.rpartition("@")
    nodes = [_node(host) for host in hosts.split(",")]
    single = f"{SCHEMES[scheme.lower()]}://{userinfo}{at}{hosts.split(',')[0]}{tail}"
    return single, nodes


def _node(host: str) -> tuple[str, int]:
    parts = urlsplit(f"//{host}")
    if not parts.hostname:
        raise ValueError(f"no host in {host!r}: expected host[:port] separated by commas")
    return parts.hostname, parts.port or 6379


@contextmanager
def _as_redis_errors() -> Iterator[None]:
    """The cluster's own failures raised as the errors the backend already sorts.

    ``RedisClusterException`` is not a ``redis.RedisError``; ``ClusterError``
    (``CLUSTERDOWN`` while a master is down or failing over, redirections
    that never settle) and ``TRYAGAIN`` are ``ResponseError``s, which the
    backend would call permanent. Those that waiting mends become
    ``redis.ConnectionError`` (the backend: unavailable); a refused login
    stays a refusal, and what no wait mends (a node that is not in cluster
    mode, a transaction across slots) becomes ``redis.ResponseError``.
    """
    try:
        yield
    except (ClusterError, TryAgainError) as exc:
        raise redis.ConnectionError(str(exc) or type(exc).__name__) from exc
    except RedisClusterException as exc:
        cause = exc.__cause__
        if isinstance(cause, redis.AuthenticationError | AuthorizationError):
            raise redis.AuthenticationError(str(exc)) from exc
        # A node answered, but not as a cluster node: a configuration mistake.
        if isinstance(cause, RedisClusterException) or isinstance(exc, _MISTAKES):
            raise redis.ResponseError(str(exc)) from exc
        raise redis.ConnectionError(str(exc) or type(exc).__name__) from exc


class ClusterClient:
    """redis-py's ``RedisCluster``, made on first use; the calls the Redis backend makes.

    Scripts registered here run on the master that serves their keys' slot.
    """

    def __init__(self, url: str, **defaults: Any) -> None:
        major = int(redis.__version__.split(".")[0])
        if major < _MIN_REDIS_PY:
            raise ValueError(
                f"a Redis Cluster needs redis-py {_MIN_REDIS_PY}.0 or later, not "
                f"{redis.__version__} (older clients repeat a failed command by themselves)"
            )
        self._single, self._nodes = split_url(url)
        self._defaults = defaults
        # A single-server client connects to nothing when made: it reads the
        # URL as RedisCluster will (ValueError for a bad argument) and gives
        # the encoder scripts are hashed with.
        probe = redis.Redis.from_url(self._single, **defaults)
        db = probe.connection_pool.connection_kwargs.get("db", 0)
        if db != 0:
            raise ValueError(f"a Redis Cluster has database 0 only, not {db}")
        self._encoder = probe.get_encoder()
        self._lock = threading.Lock()
        self._client: RedisCluster | None = None

    def cluster(self) -> RedisCluster:
        """The connected ``RedisCluster``, made now if this is the first call."""
        client = self._client
        if client is None:
            with self._lock, _as_redis_errors():
                if self._client is None:
                    # The first node comes from the URL, with its credentials
                    # and arguments (which win over bridge's defaults, as on a
                    # single server), and applies them to every node.
                    self._client = RedisCluster(
                        url=self._single,
                        startup_nodes=[
                            ClusterNode(host, port)  # type: ignore[no-untyped-call, unused-ignore]
                            for host, port in self._nodes[1:]
                        ],
                        # No repeats: a script whose reply was lost may have
                        # run, and running a claim again claims twice.
                        retry=Retry(NoBackoff(), 0),
                        **self._defaults,
                    )
                client = self._client
        return client

    # -- what Script needs: the encoder, EVALSHA and SCRIPT LOAD ---------------------

    def get_encoder(self) -> Any:
        return self._encoder

    def register_script(self, script: str) -> Script:
        # A Script asks its client for get_encoder, evalsha and script_load only.
        return Script(cast(Any, self), script)

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """Runs the script on the master of its first key's slot.

        Every key of a bridge script shares that slot. Naming the node here
        hashes one key, where redis-py would hash each key twice to check
        they agree: about a quarter of the client's time per call. A
        ``MOVED`` reply is still followed: redis-py then finds the node from
        the keys.
        """
        with _as_redis_errors():
            cluster = self.cluster()
            if not numkeys:
                return cluster.evalsha(sha, numkeys, *args)
            node = cluster.get_node_from_key(args[0])  # type: ignore[no-untyped-call, unused-ignore]
            return cluster.execute_command(  # type: ignore[no-untyped-call, unused-ignore]
                "EVALSHA", sha, numkeys, *args, target_nodes=node
            )

    def script_load(self, script: str) -> str:
        """Loads ``script`` on every master (a NOSCRIPT reply means it ran nowhere)."""
        with _as_redis_errors():
            return str(self.cluster().script_load(script))

    # -- what spans nodes ---------------------------------------------------------

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` of the master running the oldest Redis, so one check covers all."""
        with _as_redis_errors():
            replies = self.cluster().info(section, target_nodes=RedisCluster.PRIMARIES)
        return min(replies.values(), key=lambda reply: _version(reply.get("redis_version")))

    def scan_iter(self, match: str, count: int) -> Iterator[bytes]:
        """Every key matching ``match`` on every master, each key once."""
        with _as_redis_errors():
            yield from self.cluster().scan_iter(match=match, count=count)

    def pipeline(self, transaction: bool = False) -> ClusterPipeline:
        """Commands sent together, redis-py grouping them by the master of each key."""
        with _as_redis_errors():
            pipe = self.cluster().pipeline(transaction)  # type: ignore[no-untyped-call, unused-ignore]
        return ClusterPipeline(pipe)

    def close(self) -> None:
        """Closes every node's connections; a later call connects afresh."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __getattr__(self, name: str) -> Any:
        """Any other ``RedisCluster`` command (``zrange``, ``hgetall``...), for readers of keys."""
        if name.startswith("_"):  # copy, pickle and the like must not connect
            raise AttributeError(name)
        found = getattr(self.cluster(), name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            with _as_redis_errors():
                return found(*args, **kwargs)

        return call


class ClusterPipeline:
    """redis-py's cluster pipeline, whose ``execute`` raises the backend's kind of errors."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe

    def zcard(self, key: str) -> None:
        self._pipe.zcard(key)

    def execute(self) -> list[Any]:
        with _as_redis_errors():
            return list(self._pipe.execute())


def _version(text: object) -> tuple[int, ...]:
    """``"7.0.15"`` as ``(7, 0)``; an unreadable one sorts last, so a readable one is judged."""
    found = re.match(r"(\d+)\.(\d+)", str(text or ""))
    return (int(found[1]), int(found[2])) if found else (1 << 30,)
