"""The actions: every POST, each checked for its CSRF token before it reads anything.

An action changes the store through the facade, sets the message the next
page shows and redirects (303) to the page to look at. A form without the
session's token is refused with 403 and nothing changes; in read-only mode
:class:`~bridge.ui.security.ReadOnlyMiddleware` refuses every POST before
it gets here. An action the store cannot do is not offered by the pages,
and refused here (400) if posted anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.errors import InvalidArgumentError, UnsupportedOperationError
from bridge.queue import Queue
from bridge.ui import model
from bridge.ui.runs import RunRefused
from bridge.ui.security import CSRF_FIELD, csrf_valid
from bridge.ui.web import Context, Links, flash
from bridge.workers import registered_workers


class Refused(Exception):
    """An action refused with a page of its own: the message, a status, a link onward."""

    def __init__(self, message: str, status: int, link: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.link = link


async def _form(request: Request) -> FormData:
    form = await request.form()
    if not csrf_valid(request, form.get(CSRF_FIELD)):
        raise HTTPException(
            403,
            "Refused: the form's CSRF token is missing or wrong, so nothing was changed. "
            "Reload the page and try again.",
        )
    return form


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _require(queue: Queue, capability: str, what: str) -> None:
    if not getattr(queue.capabilities, capability):
        raise UnsupportedOperationError(f"{queue.backend.url} cannot {what}")


def _on_queue(ctx: Context, name: str, act: Callable[[Queue], Any]) -> Any:
    """``act(queue)`` on a known queue, store failures named; the queues page re-lists."""
    queue, _ = model.known_queue(ctx.factory, name)
    try:
        return model.read(ctx.factory, queue, act, queue)
    finally:
        ctx.discovery.forget()


async def release_all(ctx: Context, request: Request) -> Response:
    await _form(request)
    name = request.path_params["name"]
    freed = await ctx.call(_on_queue, ctx, name, lambda q: q.release_all())
    flash(request, f"Released {_plural(freed, 'item')} in {name}: every lease and delay dropped.")
    return _see_other(Links(request).queue(name))


def _remove(queue: Queue, text: str) -> bool:
    _require(queue, "remove_item", "delete an item by id")
    return any(queue.remove_item(item_id) for item_id in model.id_forms(text))


async def delete_item(ctx: Context, request: Request) -> Response:
    await _form(request)
    name, text = request.path_params["name"], request.path_params["item_id"]
    removed = await ctx.call(_on_queue, ctx, name, lambda q: _remove(q, text))
    flash(request, f"Deleted item {text}." if removed else f"Item {text} was already gone.")
    return _see_other(Links(request).queue(name))


def _kick_one(queue: Queue, text: str) -> bool:
    _require(queue, "hold", "hold items")
    return any(queue.kick_item(item_id) for item_id in model.id_forms(text))


async def kick_item(ctx: Context, request: Request) -> Response:
    form = await _form(request)
    name, text = request.path_params["name"], request.path_params["item_id"]
    kicked = await ctx.call(_on_queue, ctx, name, lambda q: _kick_one(q, text))
    flash(
        request,
        f"Kicked item {text} back to ready." if kicked else f"Item {text} is not held: not kicked.",
    )
    links = Links(request)
    back = links.item(name, text) if form.get("back") == "item" else links.queue_part(name, "held")
    return _see_other(back)


def _kick_all(queue: Queue) -> int:
    _require(queue, "hold", "hold items")
    return queue.kick(None)


async def kick_all(ctx: Context, request: Request) -> Response:
    await _form(request)
    name = request.path_params["name"]
    kicked = await ctx.call(_on_queue, ctx, name, _kick_all)
    flash(request, f"Kicked {_plural(kicked, 'held item')} back to ready in {name}.")
    return _see_other(Links(request).queue_part(name, "held"))


def _delete_held(queue: Queue) -> int:
    _require(queue, "hold", "hold items")
    return queue.delete_held(None)


async def delete_held(ctx: Context, request: Request) -> Response:
    await _form(request)
    name = request.path_params["name"]
    deleted = await ctx.call(_on_queue, ctx, name, _delete_held)
    flash(request, f"Deleted {_plural(deleted, 'held item')} from {name}.")
    return _see_other(Links(request).queue_part(name, "held"))


async def delete_queue(ctx: Context, request: Request) -> Response:
    form = await _form(request)
    name = request.path_params["name"]
    if form.get("confirm") != name:
        raise Refused(
            f"Not deleted: type the queue's name, {name}, in the box to delete every item of it.",
            400,
            ("Back to the queue", Links(request).queue(name)),
        )
    await ctx.call(_on_queue, ctx, name, lambda q: q.delete_queue())
    flash(request, f"Deleted every item of {name}.")
    return _see_other(Links(request).home())


def _number(form: FormData, key: str, whole: bool) -> float | None:
    """A limit from the form: blank or 0 for none; refused unless a number of 0 or more."""
    text = str(form.get(key) or "").strip()
    if not text:
        return None
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = -1
    if value < 0 or not math.isfinite(value) or value > 2**31 - 1:
        kind = "a whole number" if whole else "a number of seconds"
        raise InvalidArgumentError(f"{key} must be {kind} of 0 or more, not {text!r}")
    return value or None


def _start(ctx: Context, name: str, time_limit: float | None, items: int | None) -> str:
    _, counts = model.known_queue(ctx.factory, name)
    if name not in registered_workers():
        raise InvalidArgumentError(
            f"no worker is registered for {name} in this process: start the UI with "
            "`bridge --import MODULE ui` (or BRIDGE_IMPORTS) naming the module that registers it"
        )
    return ctx.runs.start(name, time_limit, items, counts.ready).run_id


async def run_pass(ctx: Context, request: Request) -> Response:
    form = await _form(request)
    name = request.path_params["name"]
    time_limit = _number(form, "time_limit", whole=False)
    items = _number(form, "item_limit", whole=True)
    items_limit = None if items is None else int(items)
    links = Links(request)
    try:
        run_id = await ctx.call(_start, ctx, name, time_limit, items_limit)
    except RunRefused as exc:
        raise Refused(str(exc), 409, ("See the running pass", links.run(exc.run.run_id))) from None
    return _see_other(links.run(run_id))
