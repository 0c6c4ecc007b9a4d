"""Every system the harness can run: key -> (service family, lazy ``module:Class``).

Importing this package imports no peer: the harness process stays free of
them, and a missing peer library fails only the cells that need it.
"""

from __future__ import annotations

import importlib

from benchmarks.systems.base import System

SYSTEMS: dict[str, tuple[str, str]] = {
    # PostgreSQL
    "bridge:postgresql": ("postgresql", "benchmarks.systems.bridge_system:BridgePostgres"),
    "raw:postgresql": ("postgresql", "benchmarks.systems.raw_sql:RawPostgres"),
    "pgqueuer": ("postgresql", "benchmarks.systems.pgqueuer_peer:PgQueuer"),
    "procrastinate": ("postgresql", "benchmarks.systems.procrastinate_peer:Procrastinate"),
    "celery:postgresql": ("postgresql", "benchmarks.systems.celery_peer:CeleryPostgres"),
    # SQLite
    "bridge:sqlite": ("sqlite", "benchmarks.systems.bridge_system:BridgeSqlite"),
    "raw:sqlite": ("sqlite", "benchmarks.systems.raw_sql:RawSqlite"),
    "huey:sqlite": ("sqlite", "benchmarks.systems.huey_peer:HueySqlite"),
    "celery:sqlite": ("sqlite", "benchmarks.systems.celery_peer:CelerySqlite"),
    # MariaDB
    "bridge:mariadb": ("mariadb", "benchmarks.systems.bridge_system:BridgeMariadb"),
    "raw:mariadb": ("mariadb", "benchmarks.systems.raw_sql:RawMariadb"),
    "celery:mariadb": ("mariadb", "benchmarks.systems.celery_peer:CeleryMariadb"),
    # Redis
    "bridge:redis": ("redis", "benchmarks.systems.bridge_system:BridgeRedis"),
    "raw:redis": ("redis", "benchmarks.systems.raw_redis:RawRedis"),
    "rq": ("redis", "benchmarks.systems.rq_peer:RqSimpleWorker"),
    "dramatiq:redis": ("redis", "benchmarks.systems.dramatiq_peer:DramatiqRedis"),
    "huey:redis": ("redis", "benchmarks.systems.huey_peer:HueyRedis"),
    "celery:redis": ("redis", "benchmarks.systems.celery_peer:CeleryRedis"),
    # RabbitMQ
    "bridge:rabbitmq": ("rabbitmq", "benchmarks.systems.bridge_system:BridgeRabbitmq"),
    "raw:rabbitmq": ("rabbitmq", "benchmarks.systems.raw_kombu:RawKombuGet"),
    "kombu-consumer:rabbitmq": ("rabbitmq", "benchmarks.systems.raw_kombu:RawKombuConsumer"),
    "celery:rabbitmq": ("rabbitmq", "benchmarks.systems.celery_peer:CeleryRabbitmq"),
}

FAMILIES = ("postgresql", "sqlite", "mariadb", "redis", "rabbitmq")


def load(key: str) -> type[System]:
    try:
        _, path = SYSTEMS[key]
    except KeyError:
        raise SystemExit(f"unknown system {key!r}; known: {', '.join(SYSTEMS)}") from None
    module, _, name = path.partition(":")
    cls: type[System] = getattr(importlib.import_module(module), name)
    return cls
