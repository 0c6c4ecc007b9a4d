"""The pages: every GET, none of which changes anything.

Each view reads what it shows in one hop to a worker thread
(:meth:`~bridge.ui.web.Context.call`) and renders it; errors are raised as
bridge's own and turned into pages by :mod:`bridge.ui.app`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.errors import InvalidArgumentError, UnknownQueueError
from bridge.items import ItemCounts, ItemState
from bridge.queue import BrowsedItem, Queue
from bridge.ui import model
from bridge.ui.model import STATES, ItemsView, Overview, QueueRow
from bridge.ui.rates import rate_text
from bridge.ui.web import Context, Links
from bridge.workers import registered_workers

MAX_PAGE = 500
HELD_LIMIT = 100
"""Held items listed where the store cannot page (``held_items``)."""


def _row_json(ctx: Context, links: Links, row: QueueRow) -> dict[str, Any]:
    processed, failed = ctx.rates.per_minute(row.name)
    cells = model.count_cells(row)
    cells |= {
        "rate-processed": rate_text(processed),
        "rate-failed": rate_text(failed),
        "backend": row.backend,
    }
    counts = row.counts
    return {
        "name": row.name,
        "backend": row.backend,
        "url": links.queue(row.name),
        "counts": None if counts is None else {s: getattr(counts, s) for s in STATES},
        "oldest_ready_age": row.oldest_ready_age,
        "rate_processed": processed,
        "rate_failed": failed,
        "cron_time": None if row.worker is None else row.worker.cron_time,
        "error": row.error,
        "cells": cells,
    }


async def _overview(ctx: Context) -> Overview:
    found = await ctx.call(model.overview, ctx.factory, ctx.discovery)
    await ctx.call(ctx.rates.sample)
    return found


async def queues_page(ctx: Context, request: Request) -> Response:
    found = await _overview(ctx)
    links = Links(request)
    rows = [_row_json(ctx, links, row) for row in found.rows]
    return ctx.render(
        request,
        "queues.html",
        rows=rows,
        store_errors=found.store_errors,
        rates_source=ctx.rates.source,
        runs_via=ctx.runs.via,
        metrics=ctx.registry is not None,
    )


async def queues_json(ctx: Context, request: Request) -> Response:
    found = await _overview(ctx)
    links = Links(request)
    return JSONResponse(
        {
            "queues": [_row_json(ctx, links, row) for row in found.rows],
            "store_errors": [{"backend": url, "error": err} for url, err in found.store_errors],
            "rates_source": ctx.rates.source,
            "time": time.time(),
        },
        headers={"Cache-Control": "no-store"},
    )


def _state(request: Request) -> str | None:
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        raise InvalidArgumentError(f"state must be one of {', '.join(STATES)}, not {state!r}")
    return state


def _limit(ctx: Context, request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return ctx.page_size
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidArgumentError(
            f"limit must be a whole number from 1 to {MAX_PAGE}, not {text!r}"
        )
    return int(text)


@dataclass(frozen=True)
class QueueView:
    queue: Queue
    counts: ItemCounts
    age: float | None
    items: ItemsView


def _queue_view(
    ctx: Context, name: str, state: str | None, after: str | None, limit: int
) -> QueueView:
    queue, counts = model.known_queue(ctx.factory, name)
    age = model.read(ctx.factory, queue, queue.backend.oldest_ready_age, name)
    if age is None and counts.ready == 0:
        age = 0.0
    items = model.items_page(ctx.factory, queue, state, after, limit)
    return QueueView(queue, counts, age, items)


async def queue_page(ctx: Context, request: Request) -> Response:
    name = request.path_params["name"]
    state, limit = _state(request), _limit(ctx, request)
    after = request.query_params.get("after") or None
    view = await ctx.call(_queue_view, ctx, name, state, after, limit)
    queue = view.queue
    row = QueueRow(name, queue.backend.url, view.counts, view.age)
    run_values = _run_form_values(ctx, name)
    return ctx.render(
        request,
        "queue.html",
        name=name,
        queue=queue,
        caps=queue.capabilities,
        backend=queue.backend.url,
        counts=view.counts,
        cells=model.count_cells(row),
        worker=model.worker_view(queue),
        items=[_item_values(entry) for entry in view.items.items],
        paged=view.items.paged,
        next_after=view.items.next_after,
        after=after,
        state=state,
        limit=limit if limit != ctx.page_size else None,
        states=STATES,
        run=run_values,
        now=time.time(),
    )


def _run_form_values(ctx: Context, name: str) -> dict[str, Any]:
    worker = registered_workers().get(name)
    return {
        "possible": worker is not None,
        "time_limit": f"{worker.cron_time:g}" if worker and worker.cron_time else "60",
        "via": ctx.runs.via,
    }


def _item_values(entry: BrowsedItem) -> dict[str, Any]:
    item = entry.item
    preview, cut = model.payload_preview(item.data)
    return {
        "id": item.item_id,
        "state": entry.state.value,
        "attempts": item.attempts,
        "created": item.created,
        "expire": item.expire,
        "priority": item.priority,
        "error": model.first_line(item.last_error),
        "error_whole": item.last_error,
        "preview": preview,
        "cut": cut,
        "payload": model.payload_text(item.data) if cut else preview,
        "held_at": item.held_at,
        "hold_reason": item.hold_reason,
    }


def _item_view(ctx: Context, name: str, text: str) -> tuple[Queue, BrowsedItem]:
    """The item, looked up first: an item found proves its queue, with no count to read."""
    queue = ctx.factory.get(name)
    if queue.capabilities.browse:
        found = model.find_item(ctx.factory, queue, text)
        if found is not None:
            return queue, found
    queue, _ = _known_or_longer(ctx, name, f"items/{text}")
    if not queue.capabilities.browse:
        raise HTTPException(
            404, f"{queue.backend.url} cannot look items up by id; the queue page lists them"
        )
    raise HTTPException(404, f"Item not found: {text} in queue {name}")


def _known_or_longer(ctx: Context, name: str, rest: str) -> tuple[Queue, ItemCounts]:
    """Queue ``name``, or :class:`_IsQueue` when ``name/rest`` is the queue meant.

    ``{name:path}`` is greedy only up to the sub-page routes: the page of a
    queue named ``a/held`` is routed as the held page of ``a``, and
    ``a/items/1``'s as an item page. When ``a`` is unknown and the whole path
    is a queue, that queue's page is shown.
    """
    try:
        return model.known_queue(ctx.factory, name)
    except UnknownQueueError:
        try:
            model.known_queue(ctx.factory, f"{name}/{rest}")
        except UnknownQueueError:
            pass
        else:
            raise _IsQueue(f"{name}/{rest}") from None
        raise


class _IsQueue(Exception):
    """The path names a queue whose name ends like a sub-page (``a/held``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


async def _or_queue_page(ctx: Context, request: Request, exc: _IsQueue) -> Response:
    request.path_params["name"] = exc.name
    return await queue_page(ctx, request)


async def item_page(ctx: Context, request: Request) -> Response:
    name, text = request.path_params["name"], request.path_params["item_id"]
    try:
        queue, found = await ctx.call(_item_view, ctx, name, text)
    except _IsQueue as exc:
        return await _or_queue_page(ctx, request, exc)
    return ctx.render(
        request,
        "item.html",
        name=name,
        caps=queue.capabilities,
        backend=queue.backend.url,
        item=_item_values(found),
        payload=model.payload_text(found.item.data),
        now=time.time(),
    )


@dataclass(frozen=True)
class HeldView:
    queue: Queue
    items: list[dict[str, Any]]
    next_after: str | None
    paged: bool


def _held_view(ctx: Context, name: str, after: str | None, limit: int) -> HeldView:
    """One page of held items; the queue is checked (a count read) only when none is listed."""
    queue = ctx.factory.get(name)
    entries: list[dict[str, Any]] = []
    next_after, paged = None, bool(queue.capabilities.browse)
    if queue.capabilities.hold and paged:
        page = model.items_page(ctx.factory, queue, "held", after, limit)
        entries, next_after = [_item_values(i) for i in page.items], page.next_after
    elif queue.capabilities.hold:
        if after is not None:
            raise InvalidArgumentError(f"{queue.backend.url} cannot list held items page by page")
        held = model.read(ctx.factory, queue, queue.held_items, HELD_LIMIT)
        entries = [_item_values(BrowsedItem(ItemState.HELD, item)) for item in held]
    if not entries:
        queue, _ = _known_or_longer(ctx, name, "held")
    return HeldView(queue, entries, next_after, paged)


async def held_page(ctx: Context, request: Request) -> Response:
    name = request.path_params["name"]
    limit = _limit(ctx, request)
    after = request.query_params.get("after") or None
    try:
        view = await ctx.call(_held_view, ctx, name, after, limit)
    except _IsQueue as exc:
        return await _or_queue_page(ctx, request, exc)
    return ctx.render(
        request,
        "held.html",
        name=name,
        caps=view.queue.capabilities,
        backend=view.queue.backend.url,
        items=view.items,
        next_after=view.next_after,
        paged=view.paged,
        after=after,
        held_limit=HELD_LIMIT,
    )


def _run(ctx: Context, request: Request) -> Any:
    run_id = request.path_params["run_id"]
    run = ctx.runs.get(run_id)
    if run is None:
        raise HTTPException(
            404, f"No pass {run_id} was started by this UI process (runs live until it restarts)"
        )
    return run


async def run_page(ctx: Context, request: Request) -> Response:
    run = await ctx.call(_run, ctx, request)
    return ctx.render(request, "run.html", run=run, progress=run.progress())


async def run_json(ctx: Context, request: Request) -> Response:
    run = await ctx.call(_run, ctx, request)
    return JSONResponse(run.progress(), headers={"Cache-Control": "no-store"})


async def metrics(ctx: Context, request: Request) -> Response:
    registry = ctx.registry
    if registry is None:
        raise HTTPException(404, "Metrics are not served here: start the UI with --metrics")
    body = await ctx.call(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
