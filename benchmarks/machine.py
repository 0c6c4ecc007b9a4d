"""What the figures were measured on: hardware, services, their durability, versions.

Absolute jobs/s mean nothing without this; ratios from one run survive it.
Each probe that fails says so in the report instead of stopping the run.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib import metadata
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from benchmarks.services import Services

PACKAGES = (
    "bridge",
    "sqlalchemy",
    "psycopg",
    "pymysql",
    "redis",
    "hiredis",
    "kombu",
    "celery",
    "pgqueuer",
    "asyncpg",
    "procrastinate",
    "rq",
    "dramatiq",
    "huey",
)


def mysql_connect(url: str, database: str | None = "") -> Any:
    import pymysql

    parts = urlsplit(url)
    name = parts.path.lstrip("/") if database == "" else database
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=name,
    )


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
        return f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def _postgresql(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:

        def show(setting: str) -> str:
            row = conn.execute(f"SHOW {setting}").fetchone()
            return str(row[0]) if row else "?"

        return (
            f"PostgreSQL {show('server_version')}, fsync={show('fsync')}, "
            f"synchronous_commit={show('synchronous_commit')}, "
            f"shared_buffers={show('shared_buffers')}"
        )


def _mariadb(url: str) -> str:
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT version(), @@innodb_flush_log_at_trx_commit, @@sync_binlog")
            version, flush, sync_binlog = cursor.fetchone()
    finally:
        conn.close()
    return f"MariaDB {version}, innodb_flush_log_at_trx_commit={flush}, sync_binlog={sync_binlog}"


def _redis(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info()
        appendonly = client.config_get("appendonly").get("appendonly", "?")
        save = client.config_get("save").get("save", "?")
    finally:
        client.close()
    return f"Redis {info['redis_version']}, appendonly={appendonly}, save={save!r}"


def _rabbitmq(url: str) -> str:
    import kombu

    with kombu.Connection(url, connect_timeout=5) as conn:  # type: ignore[attr-defined,no-untyped-call]
        conn.connect()
        properties = conn.connection.server_properties
    version = properties.get("version", "?")
    return f"RabbitMQ {version}, durable queues, persistent messages, no publisher confirms"


def describe_machine(services: Services) -> dict[str, Any]:
    cores = os.cpu_count() or 0
    machine: dict[str, Any] = {
        "cpu": f"{_cpu()}, {cores} cores (client and servers share them)",
        "memory": _memory_gib(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"CPython {platform.python_version()}",
        "sqlite": f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL",
    }
    probes = {
        "postgresql": _postgresql,
        "mariadb": _mariadb,
        "redis": _redis,
        "rabbitmq": _rabbitmq,
    }
    for family, probe in probes.items():
        try:
            services.prepare(family)
            machine[family] = probe(services.url(family))
        except Exception as exc:  # a report line, not a crash
            machine[family] = f"unavailable: {type(exc).__name__}: {exc}"
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    machine["packages"] = versions
    return machine
