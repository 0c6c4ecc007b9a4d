"""The ``bridge`` command line: Drush's ``queue:*`` commands and Queue UI's actions.

::

    bridge [--import MODULE]... queue list|run|send|peek|release|delete ...
    bridge queue watch NAME... [--concurrency N] [--lease-time S]
    bridge queue held|kick|delete-held NAME ...
    bridge demo [--items N] [--queue NAME]
    bridge celery-demo [--seconds S] [--rate N] [--concurrency N] [--flower [--flower-port N]]
    bridge metrics [--port N] [--address HOST] [--once]
    bridge ui [--host HOST] [--port N] [--metrics] [--read-only]
    bridge serve [--host HOST] [--port N]

Commands parse their arguments and call the facade (:mod:`bridge.factory`,
:class:`~bridge.queue.Queue`, :func:`~bridge.runner.process_queue`); they
hold no queue logic. Worker modules come from ``BRIDGE_IMPORTS`` and from
``--import``, imported before the factory is first used so that a module
calling :func:`bridge.configure` decides which backends serve its queues.

A user's mistake (a :class:`~bridge.errors.BridgeError`, or an option value
click refuses) ends the command with one ``Error: ...`` line on stderr and a
non-zero exit, never a traceback: exit 2 for a bad argument value, 1 for
anything else (``bridge queue run`` adds 3: an item failed or was held).
Each mistake is caught where it arises and named there. Any
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
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from bridge.contract import Introspection
from bridge.errors import (
    BridgeError,
    InvalidArgumentError,
    MissingDependencyError,
    UnknownQueueError,
)
from bridge.factory import QueueFactory, get_factory
from bridge.items import ItemId, QueueItem, Undecodable
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


def _cell(text: str | None, width: int = 60) -> str:
    """``text`` on one table line: control characters escaped, shortened; "-" if None.

    Reasons and errors come from workers and other programs; a newline or an
    escape sequence in one must not break the table or the terminal.
    """
    if text is None:
        return "-"
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return _shorten(shown, width)


def _first_line(text: str | None) -> str | None:
    """The first non-blank line of an error: its type and message."""
    if text is None:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _data_cell(data: Any) -> str:
    if isinstance(data, Undecodable):
        return _shorten(str(data))  # already escaped: raw bytes, then the codec's error
    return _shorten(json.dumps(data, default=repr))


def _json_default(value: object) -> str:
    # A listed item's data is JSON, except an undecodable payload: shown escaped.
    return str(value) if isinstance(value, Undecodable) else repr(value)


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
    queue with items in a backend the settings name. Items include leased,
    delayed and held ones, as Drupal counts them; held items (set aside after
    failing, see `bridge queue held`) are also shown on their own.
    """
    stores: dict[tuple[str, int], tuple[Introspection, float | None]] = {}
    for name, worker in registered_workers().items():
        store: Introspection = factory.get(name).backend
        stores[(name, id(store))] = (store, worker.cron_time)
    for store in factory.backends():
        for name in store.queue_names():
            stores.setdefault((name, id(store)), (store, None))
    rows: list[dict[str, Any]] = []
    for (name, _), (store, cron) in stores.items():
        counts = store.counts(name)
        rows.append(
            {
                "name": name,
                "items": counts.total,
                "held": counts.held,
                "backend": store.url,
                "cron": cron,
            }
        )
    rows.sort(key=lambda row: (row["name"], row["backend"]))
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["cron"] = "-" if row["cron"] is None else f"{row['cron']:g}"
    headers = ["name", "items", "held", "backend", "cron"]
    click.echo(_table(headers, [list(row.values()) for row in rows]))


class OneLineError(click.ClickException):
    """An error printed as one ``Error:`` line whatever it quotes.

    Queue names, worker messages and driver errors may hold newlines; the
    user gets one line, as :class:`BridgeGroup` gives for bridge's errors.
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(Exception(message)))


ITEMS_FAILED = 3
"""``bridge queue run``'s exit status when an item failed or was held."""


class ItemsFailed(OneLineError):
    """Some items of the pass failed or were held: one error line, exit 3."""

    exit_code = ITEMS_FAILED


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
        + f"failed {summary.failed}, held {summary.held}, lost {summary.lost})"
    )
    if summary.stopped_by in ("time_limit", "items_limit"):
        click.echo(f"Stopped at the {summary.stopped_by.replace('_', ' ')}.")
    if summary.suspended is not None:
        raise OneLineError(f"the {name} queue was suspended: {summary.suspended}")
    if summary.stopped_by == "backend unavailable":
        raise OneLineError(f"the pass over {name} stopped: {summary.error}")
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

    Prints what the pass did: processed, requeued, delayed, failed, held and
    lost items (lost: the lease ran out and another claimer took the item).

    \b
    Exit status:
      0  every item the pass took was settled without failing
      1  the pass stopped early: a worker suspended the queue, or the
         backend failed (also: an unknown queue, an unreachable backend)
      2  a bad argument
      3  at least one item failed or was held (a failed one comes back
         when its lease or retry delay ends; see `bridge queue held NAME`)
    """
    if name not in registered_workers():
        raise UnknownQueueError(
            f"Queue not found: no worker is registered for {name!r}; "
            "register one with @queue_worker and --import its module (or BRIDGE_IMPORTS)"
        )
    limits = {"time_limit": time_limit or None, "items_limit": items_limit or None}
    summary = _drain(name, factory, lease_time=lease_time, **limits)
    held_count = summary.held
    if summary.failed or held_count:
        raise ItemsFailed(
            f"{_plural(summary.failed, 'item')} failed and {_plural(held_count, 'item')} "
            f"{'was' if held_count == 1 else 'were'} held in the {name} queue"
            + (f"; list them with: bridge queue held {name}" if held_count else "")
        )


class WatchRefused(OneLineError):
    """``bridge queue watch`` refused what it was asked to watch: one line, exit 2."""

    exit_code = 2


@queue.command("watch")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Watcher processes sharing the queues.",
)
@click.option("--lease-time", type=LEASE, help="Seconds [default: worker's lease, cron time, 30].")
@click.pass_obj
def watch_queues(
    factory: QueueFactory, names: tuple[str, ...], concurrency: int, lease_time: float | None
) -> None:
    """Process NAME... as items arrive, until SIGTERM or Ctrl-C (Lilmuckers' watch).

    Waits for new items without polling where the store can say (PostgreSQL
    LISTEN/NOTIFY, Redis pub/sub, a RabbitMQ consumer, beanstalkd's reserve,
    Gearman's worker wake-up), else claims every 0.25 s; each item is
    settled as `bridge queue run` settles it. The first SIGTERM or Ctrl-C
    finishes the item in hand and exits 0; a second releases it and exits.

    \b
    Exit status:
      0  stopped by a signal, every item in hand settled or released
      1  a watcher process failed
      2  a bad argument: an unknown queue, no registered worker, a bad URL
    """
    from bridge.watch import check, watch

    names = tuple(dict.fromkeys(names))
    try:
        check(names, factory, lease_time)
    except BridgeError as exc:
        # Nothing is watched yet: a mistake in what was asked. Exit 2, and one
        # line (a UsageError raised here would get click's usage block).
        raise WatchRefused(str(exc)) from exc
    processes = f"{concurrency} process" + ("es" if concurrency > 1 else "")
    click.echo(f"Watching {', '.join(names)} with {processes}; SIGTERM or Ctrl-C stops.", err=True)
    status = watch(names, factory, concurrency=concurrency, lease_time=lease_time)
    if status:
        raise OneLineError("a watcher process failed; see the log above")


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
    # A leased item and a delayed one look alike here: both wait for expire.
    state = "ready" if not item.expire else f"claimable in {item.expire - now:.1f} s"
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
        "last_error": item.last_error,
    }


@queue.command("peek")
@click.argument("name")
@click.option("--limit", type=PEEK_LIMIT, default=10, show_default=True)
@format_option
@click.pass_obj
def peek(factory: QueueFactory, name: str, limit: int, output: str) -> None:
    """Show the next items of NAME without claiming them.

    Each with its attempts (claims so far) and the first line of the last
    failed attempt's error; --format json gives the whole error. Held items
    are not shown here: see `bridge queue held`. A payload that cannot be
    decoded is shown as its raw bytes, escaped.
    """
    items = _known_queue(factory, name).peek(limit)
    now = time.time()
    rows = [_item_row(item, now) for item in items]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, default=_json_default))
    elif not rows:
        click.echo(f"No items in {name}.")
    else:
        for row in rows:
            row["created"] = _when(row["created"])
            row["data"] = _data_cell(row["data"])
            row["last error"] = _cell(_first_line(row.pop("last_error")))
            del row["expire"]
        click.echo(_table(list(rows[0]), [list(row.values()) for row in rows]))


@queue.command("held")
@click.argument("name")
@click.option("--limit", type=PEEK_LIMIT, default=100, show_default=True)
@format_option
@click.pass_obj
def held(factory: QueueFactory, name: str, limit: int, output: str) -> None:
    """List the held items of NAME, oldest held first.

    Held items failed too often (the worker's max_attempts) or were set aside
    on purpose (HoldItem, an undecodable payload). They are never claimed
    until `bridge queue kick` puts them back, and stay until then or until
    `bridge queue delete-held`. Shows each one's id, attempts, when it was
    held, why, and the first line of its last error; --format json gives the
    whole error and the data.
    """
    items = _known_queue(factory, name).held_items(limit)
    if output == "json":
        rows = [
            {
                "id": item.item_id,
                "attempts": item.attempts,
                "held_at": item.held_at,
                "hold_reason": item.hold_reason,
                "last_error": item.last_error,
                "created": item.created,
                "priority": item.priority,
                "data": item.data,
            }
            for item in items
        ]
        click.echo(json.dumps(rows, indent=2, default=_json_default))
    elif not items:
        click.echo(f"No held items in {name}.")
    else:
        table = [
            [
                item.item_id,
                item.attempts,
                "-" if item.held_at is None else _when(item.held_at),
                _cell(item.hold_reason),
                _cell(_first_line(item.last_error)),
            ]
            for item in items
        ]
        click.echo(_table(["id", "attempts", "held since", "reason", "last error"], table))


def _id_forms(text: str) -> list[ItemId]:
    """The ids ``text`` may stand for: SQL, Redis and memory ids are ints, others str."""
    if re.fullmatch(r"[0-9]{1,18}", text):
        return [int(text), text]
    return [text]


@queue.command("kick")
@click.argument("name")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "kick_all", is_flag=True, help="Kick every held item.")
@click.pass_obj
def kick(factory: QueueFactory, name: str, ids: tuple[str, ...], kick_all: bool) -> None:
    """Put held items of NAME back to ready (these IDs, or --all).

    Their attempts start again from 0 (on beanstalkd they count on, and
    max_attempts counts anew from each kick), and their last error is kept
    for the next claimer to see. IDs are as `bridge queue held` prints them;
    the ones that are not held are named in the error (exit 1), the others
    kicked.
    """
    if kick_all == bool(ids):
        raise InvalidArgumentError("give the IDs of held items to kick, or --all (not both)")
    q = _known_queue(factory, name)
    kept = "" if q.capabilities.kick_resets_attempts else _KICK_KEEPS_ATTEMPTS
    if kick_all:
        click.echo(f"Kicked {_plural(q.kick(None), 'item')} back to ready in {name}{kept}")
        return
    kicked = [text for text in ids if any(q.kick_item(i) for i in _id_forms(text))]
    missed = [text for text in ids if text not in kicked]
    if kicked:
        click.echo(f"Kicked {_plural(len(kicked), 'item')} back to ready in {name}{kept}")
    if missed:
        shown = ", ".join(_cell(text, 40) for text in missed[:10])
        more = f" and {len(missed) - 10} more" if len(missed) > 10 else ""
        raise OneLineError(f"not held in {name}: {shown}{more}")


_KICK_KEEPS_ATTEMPTS = (
    " (their attempts count on in this store; max_attempts counts anew from the kick)"
)


@queue.command("delete-held")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete_held(factory: QueueFactory, name: str, yes: bool) -> None:
    """Delete every held item of NAME; other items are untouched."""
    q = _known_queue(factory, name)
    if not yes:
        count = q.counts().held
        if not count:
            click.echo(f"No held items in {name}.")
            return
        click.confirm(f"Delete all {_plural(count, 'held item')} in the {name} queue?", abort=True)
    click.echo(f"Deleted {_plural(q.delete_held(None), 'held item')} from {name}")


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
    """Serve queue metrics for Prometheus on /metrics.

    Per queue, counted afresh at each scrape: items by state (ready, leased,
    delayed, held), held items, and how long the oldest ready item has
    waited, which Flower's /metrics (tasks only) cannot show. Also the
    runner's outcome counters (processed, failed, held, ...): with
    PROMETHEUS_MULTIPROC_DIR set to the directory the workers write to,
    added up over every worker process; without it, only this process's,
    which runs no items. See docs/failures.md for alert rules.
    """
    from bridge.metrics import exposition, serve

    if once:
        click.echo(exposition(factory), nl=False)
        return
    try:
        server = serve(factory, address, port)
    except OSError as exc:  # socket.gaierror for a bad address is one too
        raise OneLineError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from exc
    host = f"[{address}]" if ":" in address else address
    click.echo(f"Serving queue metrics on http://{host}:{server.server_port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class BadStart(OneLineError):
    """A server that must not start as asked: one error line, exit 2 (a bad argument)."""

    exit_code = 2


def _listen_options(default_port: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--host`` and ``--port`` of a web server command (``ui``, ``serve``)."""

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=default_port,
            show_default=True,
            help="0 picks a free port.",
        )(command)
        return click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Listen address; any but loopback needs credentials.",
        )(command)

    return add


def _serve_app(
    app: Any,
    host: str,
    port: int,
    what: str,
    path: str,
    tls_note: bool,
    *,
    metrics: bool = False,
    read_only: bool = False,
) -> None:
    """Listen on ``host:port`` (one error line if it cannot), say where, and serve ``app``."""
    from bridge.ui.serve import listen, run, url_of

    try:
        sock = listen(host, port)
    except OSError as exc:  # socket.gaierror for a bad address is one too
        raise OneLineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    url = url_of(sock)
    click.echo(f"Serving {what} on {url}{path}" + (" (read-only)" if read_only else ""))
    if metrics:
        click.echo(f"Metrics on {url}metrics")
    if tls_note:
        click.echo("Credentials travel in clear over HTTP: put a TLS proxy in front of it.")
    run(app, sock)


@cli.command("ui")
@_listen_options(8010)
@click.option("--metrics", "with_metrics", is_flag=True, help="Also serve /metrics.")
@click.option("--read-only", is_flag=True, help="Offer no action; refuse every POST.")
@click.option("--user", help="Basic auth user [default: BRIDGE_UI_USER].")
@click.option(
    "--password",
    help="Basic auth password [default: BRIDGE_UI_PASSWORD, better: a command line "
    "is visible to other users].",
)
@click.option("--token", help="Bearer token, or any user's password [default: BRIDGE_UI_TOKEN].")
@click.option(
    "--runs",
    type=click.Choice(["auto", "thread", "celery"]),
    default="auto",
    show_default=True,
    help="Where a pass started from the UI runs: Celery (auto: when a broker is "
    "configured) or a thread of this process.",
)
@click.pass_obj
def ui(
    factory: QueueFactory,
    host: str,
    port: int,
    with_metrics: bool,
    read_only: bool,
    user: str | None,
    password: str | None,
    token: str | None,
    runs: str,
) -> None:
    """Serve the web Queue UI: queues, items, held failures, and actions on them.

    Every queue with its counts, live; a queue's items page by page; held
    items with their errors; release leases, delete items and queues, kick
    held items, run a pass with a progress bar. Binds 127.0.0.1 unless
    told otherwise, and refuses any other address without credentials
    (BRIDGE_UI_USER and BRIDGE_UI_PASSWORD, or BRIDGE_UI_TOKEN). Queue
    workers come from BRIDGE_IMPORTS and --import, as for `bridge queue run`.
    See docs/ui.md.
    """
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise MissingDependencyError('the queue UI needs its extra: pip install "bridge[ui]"')
    from bridge.settings import load_ui_settings
    from bridge.ui import Credentials, check_address, create_app
    from bridge.ui.security import is_loopback

    settings = load_ui_settings()
    try:
        credentials = Credentials(
            user or settings.user, password or settings.password, token or settings.token
        )
        check_address(host, credentials)
    except BridgeError as exc:
        raise BadStart(str(exc)) from exc
    app = create_app(
        factory,
        read_only=read_only,
        credentials=credentials,
        metrics=with_metrics,
        runs=runs,  # type: ignore[arg-type]  # click.Choice checked it
    )
    tls_note = credentials.configured and not is_loopback(host)
    _serve_app(
        app, host, port, "the queue UI", "", tls_note, metrics=with_metrics, read_only=read_only
    )


@cli.command("serve")
@_listen_options(8888)
@click.pass_obj
def serve_zaqar(factory: QueueFactory, host: str, port: int) -> None:
    """Serve a Zaqar v2-compatible HTTP API over the queues, for producers that are not Python.

    Queues, messages (post, list, get, delete) and claims (ttl and grace,
    delete with the claim id). Binds 127.0.0.1 unless told otherwise, and
    refuses any other address without credentials (BRIDGE_SERVE_TOKEN, or
    BRIDGE_SERVE_USER and BRIDGE_SERVE_PASSWORD). See docs/serve.md.
    """
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise MissingDependencyError('bridge serve needs its extra: pip install "bridge[serve]"')
    from bridge.serve import check_address, create_app, credentials_from_settings
    from bridge.ui.security import is_loopback

    try:
        credentials = credentials_from_settings()
        check_address(host, credentials)
    except BridgeError as exc:
        raise BadStart(str(exc)) from exc
    app = create_app(factory, credentials=credentials)
    tls_note = credentials.configured and not is_loopback(host)
    _serve_app(app, host, port, "the Zaqar v2 API", "v2", tls_note)


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
