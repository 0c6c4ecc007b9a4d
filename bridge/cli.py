"""The ``bridge`` command line: Drush's ``queue:*`` commands and Queue UI's actions.

::

    bridge [--import MODULE]... queue list|run|send|peek|release|delete ...
    bridge demo [--items N] [--queue NAME]
    bridge celery-demo [--seconds S] [--rate N] [--concurrency N] [--flower [--flower-port N]]
    bridge metrics [--port N] [--address HOST] [--once]

Commands parse their arguments and call the facade (:mod:`bridge.factory`,
:class:`~bridge.queue.Queue`, :func:`~bridge.runner.process_queue`); they
hold no queue logic. Worker modules come from ``BRIDGE_IMPORTS`` and from
``--import``, imported before the factory is first used so that a module
calling :func:`bridge.configure` decides which backends serve its queues.

A user's mistake (a :class:`~bridge.errors.BridgeError`, or an option value
click refuses) ends the command with one ``Error: ...`` line on stderr and a
non-zero exit, never a traceback: exit 2 for a bad argument value, 1 for
anything else. Each mistake is caught where it arises and named there. Any
other exception is a bug in bridge: :func:`main` prints one line naming it
and how to report it, and ``BRIDGE_DEBUG=1`` shows its traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from bridge.errors import (
    BridgeError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownQueueError,
)
from bridge.factory import QueueFactory, get_factory
from bridge.items import QueueItem
from bridge.queue import Queue
from bridge.runner import Summary, process_queue
from bridge.workers import import_worker_modules, registered_workers


class BridgeGroup(click.Group):
    """A group that turns any :class:`BridgeError` below it into one error line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.MissingParameter:
            raise  # a mistake in the command's shape: click's usage block helps
        except click.BadParameter as exc:
            # The message names the option and what it accepts; the usage
            # block would add nothing, so the value's error is the one line.
            raise click.UsageError(" ".join(exc.format_message().split())) from exc
        except InvalidArgumentError as exc:
            # Without a context, click prints the one line and no usage block.
            raise click.UsageError(_one_line(exc)) from exc
        except BridgeError as exc:
            raise click.ClickException(_one_line(exc)) from exc


def _one_line(exc: Exception) -> str:
    # Driver messages may span lines (psycopg adds hints); the user gets one.
    return " ".join(str(exc).split()) or type(exc).__name__


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _known_queue(factory: QueueFactory, name: str, fix: str = "") -> Queue:
    """The queue ``name`` if a worker, a setting or a stored item knows it (Drush's check)."""
    queue = factory.get(name)
    if name in registered_workers() or name in factory.queues or queue.number_of_items():
        return queue
    raise UnknownQueueError(
        f"Queue not found: {name} (no registered worker, setting or stored item knows it{fix})"
    )


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses ``nan`` and ``inf``, which ranges let through."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return number


FORMATS = click.Choice(["table", "json"])
format_option = click.option("--format", "output", type=FORMATS, default="table", show_default=True)
SECONDS = FiniteFloatRange(min=0)
LEASE = FiniteFloatRange(min=0, min_open=True)
COUNT = click.IntRange(min=0)
# Far above any queue's length, and inside every store's integer type, so a
# huge --limit is refused here rather than overflowing a driver.
PEEK_LIMIT = click.IntRange(min=0, max=2**31 - 1)
# A demo builds its items in memory before sending them in one call.
DEMO_ITEMS = click.IntRange(min=1, max=1_000_000)
IMPORT_HELP = "Import a module that registers queue workers (repeatable; adds to BRIDGE_IMPORTS)."


@click.group(cls=BridgeGroup)
@click.version_option(package_name="bridge", prog_name="bridge")
@click.option("--import", "imports", multiple=True, metavar="MODULE", help=IMPORT_HELP)
@click.pass_context
def cli(ctx: click.Context, imports: tuple[str, ...]) -> None:
    """Drupal's queue API from the shell: list, run, send to and inspect queues.

    Queues live where BRIDGE_QUEUE_DEFAULT says (default
    sqlite:///bridge.sqlite in the current directory); workers come from the
    modules in BRIDGE_IMPORTS and --import.
    """
    import_worker_modules()
    import_worker_modules(imports)
    # An application embedding the CLI may pass its own factory as ``obj``.
    if not isinstance(ctx.obj, QueueFactory):
        ctx.obj = get_factory()
    ctx.call_on_close(ctx.obj.close)


@cli.group()
def queue() -> None:
    """List, run, fill and inspect queues (drush queue:*, Queue UI)."""


@queue.command("list")
@format_option
@click.pass_obj
def list_queues(factory: QueueFactory, output: str) -> None:
    """List worker queues and queues with items.

    One row per queue and backend: every registered worker's queue, and every
    queue with items in a backend the settings name. Items include leased and
    delayed ones, as Drupal counts them.
    """
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for name, worker in registered_workers().items():
        q = factory.get(name)
        row = {"name": name, "items": q.number_of_items(), "backend": q.backend.url}
        rows[(name, id(q.backend))] = {**row, "cron": worker.cron_time}
    for backend in factory.backends():
        for name, count in backend.queue_names().items():
            row = {"name": name, "items": count, "backend": backend.url, "cron": None}
            rows.setdefault((name, id(backend)), row)
    found = sorted(rows.values(), key=lambda row: (row["name"], row["backend"]))
    if output == "json":
        click.echo(json.dumps(found, indent=2))
        return
    for row in found:
        row["cron"] = "-" if row["cron"] is None else f"{row['cron']:g}"
    click.echo(_table(["name", "items", "backend", "cron"], [list(r.values()) for r in found]))


def _drain(name: str, factory: QueueFactory, **limits: Any) -> Summary:
    """process_queue with a progress bar on stderr; the summary printed after."""
    total = factory.get(name).number_of_items()
    if limits.get("items_limit"):
        total = min(total, limits["items_limit"])
    # Hidden when stderr is not a terminal: logs and pipes get the summary only.
    hidden = not sys.stderr.isatty()
    label = f"Processing {name}"
    with click.progressbar(length=total, label=label, file=sys.stderr, hidden=hidden) as bar:
        summary = process_queue(
            name, factory=factory, progress=lambda _running: bar.update(1), **limits
        )
    click.echo(
        f"Processed {_plural(summary.processed, 'item')} from the {name} queue in "
        f"{summary.elapsed:.2f} s (requeued {summary.requeued}, delayed {summary.delayed}, "
        # Only when it happened: items a backend could not delay, left leased.
        + (f"kept leased {summary.kept_leased}, " if summary.kept_leased else "")
        + f"failed {summary.failed}, lost {summary.lost})"
    )
    if summary.stopped_by in ("time_limit", "items_limit"):
        click.echo(f"Stopped at the {summary.stopped_by.replace('_', ' ')}.")
    if summary.suspended is not None:
        raise click.ClickException(f"the {name} queue was suspended: {summary.suspended}")
    return summary


@queue.command("run")
@click.argument("name")
@click.option("--time-limit", type=SECONDS, default=0, help="Seconds; 0 means no limit.")
@click.option("--items-limit", type=COUNT, default=0, help="Items processed; 0 means no limit.")
@click.option("--lease-time", type=LEASE, help="Seconds [default: worker's lease, cron time, 30].")
@click.pass_obj
def run(
    factory: QueueFactory, name: str, time_limit: float, items_limit: int, lease_time: float | None
) -> None:
    """Process NAME with its worker (drush queue:run).

    Fails if a worker suspends the queue.
    """
    if name not in registered_workers():
        raise UnknownQueueError(
            f"Queue not found: no worker is registered for {name!r}; "
            "register one with @queue_worker and --import its module (or BRIDGE_IMPORTS)"
        )
    limits = {"time_limit": time_limit or None, "items_limit": items_limit or None}
    _drain(name, factory, lease_time=lease_time, **limits)


@queue.command("send")
@click.argument("name")
@click.argument("data", metavar="JSON")
@click.option("--delay", type=SECONDS, default=0, help="Seconds before it can be claimed.")
@click.option("--priority", type=int, default=0, help="Higher is claimed first.")
@click.option("--create", is_flag=True, help="Send even if nothing knows this queue yet.")
@click.pass_obj
def send(
    factory: QueueFactory, name: str, data: str, delay: float, priority: int, create: bool
) -> None:
    """Create one item in NAME from JSON; print its id.

    A queue that no worker, setting or stored item knows is refused unless
    --create is given, so a typo does not start a new queue.
    """
    try:
        payload = json.loads(data)
    except ValueError as exc:
        shown = _shorten(repr(data))
        raise InvalidArgumentError(f"the JSON argument {shown} is not valid JSON: {exc}") from exc
    except RecursionError:
        # Python's parser recurses once per level of nesting.
        raise InvalidArgumentError(
            f"the JSON argument {_shorten(repr(data))} is nested too deeply to be read"
        ) from None
    fix = "; pass --create to create it"
    q = factory.get(name) if create else _known_queue(factory, name, fix)
    click.echo(q.create_item(payload, delay=delay, priority=priority))


def _item_row(item: QueueItem, now: float) -> dict[str, Any]:
    state = "ready" if not item.expire else f"held {item.expire - now:.1f} s"
    if 0 < item.expire <= now:
        state = "ready (lease expired)"
    return {
        "id": item.item_id,
        "created": item.created,
        "expire": item.expire,
        "state": state,
        "attempts": item.attempts,
        "priority": item.priority,
        "data": item.data,
    }


@queue.command("peek")
@click.argument("name")
@click.option("--limit", type=PEEK_LIMIT, default=10, show_default=True)
@format_option
@click.pass_obj
def peek(factory: QueueFactory, name: str, limit: int, output: str) -> None:
    """Show the next items of NAME without claiming them."""
    items = _known_queue(factory, name).peek(limit)
    now = time.time()
    rows = [_item_row(item, now) for item in items]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, default=repr))
    elif not rows:
        click.echo(f"No items in {name}.")
    else:
        for row in rows:
            row["created"] = _when(row["created"])
            row["data"] = _shorten(json.dumps(row["data"], default=repr))
            del row["expire"]
        click.echo(_table(list(rows[0]), [list(row.values()) for row in rows]))


@queue.command("release")
@click.argument("name")
@click.pass_obj
def release(factory: QueueFactory, name: str) -> None:
    """Make every item of NAME claimable now.

    Drops every lease and delay, as Queue UI's "remove leases" does.
    """
    freed = _known_queue(factory, name).release_all()
    click.echo(f"Released {_plural(freed, 'lease')} in {name}")


@queue.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(factory: QueueFactory, name: str, yes: bool) -> None:
    """Delete every item of NAME (drush queue:delete).

    Leased items are deleted too; other queues are untouched.
    """
    q = _known_queue(factory, name)
    if not yes:
        click.confirm(
            f"Delete all {_plural(q.number_of_items(), 'item')} in the {name} queue?",
            abort=True,
        )
    q.delete_queue()
    click.echo(f"All items in {name} queue deleted.")


@cli.command()
@click.option("--items", "count", type=DEMO_ITEMS, default=200, show_default=True)
@click.option("--queue", "name", default="bridge_demo", show_default=True)
@click.pass_obj
def demo(factory: QueueFactory, count: int, name: str) -> None:
    """Fill a demo queue and drain it with the demo worker.

    Runs on the configured default backend, showing progress and a summary.
    """
    # Imported here, not at the top: every other command would otherwise see
    # the demo worker registered, and so would run_cron in any importer.
    import bridge.demo

    bridge.demo.ensure_demo_worker(name)
    q = factory.get(name)
    q.create_items(bridge.demo.demo_items(count))
    click.echo(f"Created {_plural(count, 'item')} in the {name} queue on {q.backend.url}")
    _drain(name, factory)
    click.echo(
        "\nNext, try:\n"
        "  bridge queue list\n"
        f"  bridge queue send {name} '{{\"n\": 27}}'\n"
        f"  bridge queue peek {name}\n"
        f"  bridge --import bridge.demo queue run {name}\n"
        "  bridge --import myapp.workers queue run <your queue>"
    )


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9808,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Listen address; 0.0.0.0 to be scraped from other hosts.",
)
@click.option("--once", is_flag=True, help="Print the metrics once and exit.")
@click.pass_obj
def metrics(factory: QueueFactory, port: int, address: str, once: bool) -> None:
    """Serve queue depths as Prometheus metrics on /metrics.

    Per queue: every item, and ready, leased and delayed items, which
    Flower's /metrics (tasks only) cannot show. Counted afresh each scrape.
    """
    from bridge.metrics import MetricsServer, queue_depths, render

    if once:
        click.echo(render(queue_depths(factory)), nl=False)
        return
    try:
        server = MetricsServer(factory, address, port)
    except OSError as exc:  # socket.gaierror for a bad address is one too
        raise click.ClickException(
            f"cannot listen on {address}:{port}: {exc.strerror or exc}"
        ) from exc
    click.echo(f"Serving queue metrics on http://{address}:{server.server_port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@cli.command("celery-demo")
@click.option(
    "--seconds",
    type=SECONDS,
    default=30,
    show_default=True,
    help="How long to feed the queue; 0 means until Ctrl-C.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Demo items created per second.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes (prefork).",
)
@click.option("--flower", is_flag=True, help="Also run Flower (on localhost).")
@click.option(
    "--flower-port",
    type=click.IntRange(1, 65535),
    default=5555,
    show_default=True,
    help="Flower's port, with --flower.",
)
@click.pass_obj
def celery_demo(
    factory: QueueFactory,
    seconds: float,
    rate: int,
    concurrency: int,
    flower: bool,
    flower_port: int,
) -> None:
    """Run Celery for real: a worker with beat drains the demo queue while this feeds it.

    Starts `celery -A bridge worker --beat` with the demo worker on the
    configured backends (by default SQLite queues and a server-less
    filesystem broker under ./var), creates items each second and prints
    what was created, drained and reported by each finished task.
    """
    if importlib.util.find_spec("celery") is None:
        raise MissingDependencyError('the Celery demo needs Celery: pip install "bridge[celery]"')
    from bridge.celery.demo import run_demo

    run_demo(factory, click.echo, seconds, rate, concurrency, flower, flower_port)


BUG_REPORT_HINT = (
    "this is a bug in bridge: please report it with the command you ran and the "
    "traceback that BRIDGE_DEBUG=1 shows"
)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``bridge`` console script; worker failures are logged to stderr.

    The last resort: anything the commands did not name as a user's mistake
    is a bug, reported in one line (not hidden) unless ``BRIDGE_DEBUG`` asks
    for the traceback.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="bridge")
    except Exception as exc:
        if os.environ.get("BRIDGE_DEBUG"):
            raise
        click.echo(
            f"Error: internal error {type(exc).__name__}: {_one_line(exc)}; {BUG_REPORT_HINT}",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
