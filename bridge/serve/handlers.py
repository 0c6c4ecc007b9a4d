"""The endpoints: Zaqar v2's queue, message and claim operations on bridge queues.

Each handler reads the request, then makes its store calls in a worker
thread (bridge's calls block) through :meth:`Api.call`. The mapping, and
what is not covered, is in docs/serve.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.factory import QueueFactory
from bridge.items import QueueItem
from bridge.queue import BrowsedItem, Queue
from bridge.serve import wire
from bridge.serve.claims import Claim, ClaimBook
from bridge.serve.wire import ApiError
from bridge.ui.model import id_forms

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Api:
    """What every handler shares: the factory, the claims, the thread limiter."""

    factory: QueueFactory
    claims: ClaimBook
    limiter: anyio.CapacityLimiter

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    def queue(self, request: Request) -> Queue:
        return self.factory.get(wire.queue_name(request.path_params["name"]))


def _client(request: Request) -> str:
    client: str = request.state.client_id
    return client


async def _body(request: Request) -> bytes:
    """The request's body, read no further than Zaqar's size limit: a larger one is refused
    before it is held in memory whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > wire.MAX_POST_BYTES:
        raise wire.bad(f"The request body may be at most {wire.MAX_POST_BYTES} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > wire.MAX_POST_BYTES:
            raise wire.bad(f"The request body may be at most {wire.MAX_POST_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


# -- queues ----------------------------------------------------------------------------


async def list_queues(api: Api, request: Request) -> Response:
    marker = request.query_params.get("marker") or ""
    limit = wire.int_in(
        "limit",
        request.query_params.get("limit"),
        1,
        wire.MAX_QUEUES_PAGE,
        wire.DEFAULT_QUEUES_PAGE,
    )

    def names() -> list[str]:
        found: set[str] = set()
        for store in api.factory.backends():
            found.update(store.queue_names())
        # Names Zaqar could not address are left out: their hrefs would not work.
        return sorted(name for name in found if wire.QUEUE_NAME.match(name) and name > marker)

    page = (await api.call(names))[:limit]
    queues = [{"name": name, "href": wire.queue_href(name)} for name in page]
    links = []
    if len(page) == limit:
        query = urlencode({"marker": page[-1], "limit": limit})
        links.append({"rel": "next", "href": f"/v2/queues?{query}"})
    return JSONResponse({"queues": queues, "links": links})


async def put_queue(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    raw = await _body(request)
    if raw.strip() and not isinstance(wire.json_body(raw), dict):
        raise wire.bad("A queue's metadata must be a JSON object.")
    await api.call(queue.create_queue)
    return Response(status_code=201, headers={"Location": wire.queue_href(queue.name)})


async def get_queue(api: Api, request: Request) -> Response:
    api.queue(request)
    # Zaqar's reserved metadata, as its defaults; bridge keeps no queue metadata.
    return JSONResponse(
        {
            "_default_message_ttl": wire.DEFAULT_MESSAGE_TTL,
            "_max_messages_post_size": wire.MAX_POST_BYTES,
        }
    )


async def delete_queue(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    await api.call(queue.delete_queue)
    api.claims.forget_queue(queue.name)
    return _no_content()


async def queue_stats(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    counts = await api.call(queue.counts)
    total = counts.ready + counts.leased + counts.delayed + counts.held
    messages = {"free": counts.ready, "claimed": counts.leased, "total": total}
    return JSONResponse({"messages": messages})


# -- messages --------------------------------------------------------------------------


async def post_messages(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    posted = wire.posted_messages(wire.json_body(await _body(request)))

    def create() -> list[str]:
        ids = []
        # One round trip per run of messages with the same terms: all of a usual post.
        start = 0
        while start < len(posted):
            end = start + 1
            terms = posted[start][1:]
            while end < len(posted) and posted[end][1:] == terms:
                end += 1
            bodies = [body for body, _, _ in posted[start:end]]
            ids.extend(_create(queue, bodies, ttl=terms[0], delay=terms[1]))
            start = end
        return [str(item_id) for item_id in ids]

    ids = await api.call(create)
    logger.debug("Client %s posted %d messages to %s", _client(request), len(ids), queue.name)
    hrefs = [wire.message_href(queue.name, message_id) for message_id in ids]
    location = f"{wire.queue_href(queue.name)}/messages?{urlencode({'ids': ','.join(ids)})}"
    return JSONResponse({"resources": hrefs}, status_code=201, headers={"Location": location})


def _create(queue: Queue, bodies: list[Any], ttl: int, delay: int) -> list[Any]:
    """Create the items, with the message's TTL where the store keeps one (``ttl`` capability);
    elsewhere a message lives until it is deleted (docs/serve.md)."""
    if queue.capabilities.ttl:
        return queue.create_items(bodies, delay=delay, ttl=ttl)
    return queue.create_items(bodies, delay=delay)


async def list_messages(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    params = request.query_params
    if params.get("ids") is not None:
        return await _get_many(api, queue, params["ids"])
    limit = wire.int_in(
        "limit", params.get("limit"), 1, wire.MAX_MESSAGES_PAGE, wire.DEFAULT_MESSAGES_PAGE
    )
    # echo is checked, and changes nothing: bridge items do not record who posted them.
    echo = wire.flag("echo", params.get("echo"))
    include_claimed = wire.flag("include_claimed", params.get("include_claimed"))
    marker = params.get("marker") or None
    state = None if include_claimed else "ready"
    page = await api.call(queue.browse, state, marker, limit)
    messages = [wire.message(queue.name, found.item) for found in page.items]
    links = []
    if page.next_after is not None:
        query = urlencode(
            {
                "marker": page.next_after,
                "limit": limit,
                "echo": str(echo).lower(),
                "include_claimed": str(include_claimed).lower(),
            }
        )
        links.append({"rel": "next", "href": f"{wire.queue_href(queue.name)}/messages?{query}"})
    return JSONResponse({"messages": messages, "links": links})


def _message_ids(text: str) -> list[str]:
    ids = [part for part in text.split(",") if part]
    if not ids or len(ids) > wire.MAX_MESSAGES_PAGE:
        raise wire.bad(f"ids must name 1 to {wire.MAX_MESSAGES_PAGE} messages.")
    return ids


def _find(queue: Queue, message_id: str) -> BrowsedItem | None:
    for item_id in id_forms(message_id):
        found = queue.find_item(item_id)
        if found is not None:
            return found
    return None


async def _get_many(api: Api, queue: Queue, text: str) -> Response:
    ids = _message_ids(text)

    def find_all() -> list[BrowsedItem]:
        return [found for found in (_find(queue, one) for one in ids) if found is not None]

    found = await api.call(find_all)
    return JSONResponse({"messages": [wire.message(queue.name, one.item) for one in found]})


async def get_message(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    found = await api.call(_find, queue, request.path_params["message_id"])
    if found is None:
        raise ApiError(404, "Not found", "Message not found.")
    return JSONResponse(wire.message(queue.name, found.item))


async def delete_message(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    message_id = request.path_params["message_id"]
    claim_id = request.query_params.get("claim_id")
    if claim_id is None:
        await api.call(_delete_unclaimed, queue, message_id)
        return _no_content()
    claim = api.claims.get(queue.name, claim_id)
    item = None if claim is None else claim.items.get(message_id)
    if claim is None or item is None:
        raise ApiError(
            403,
            "Unable to delete",
            "The claim does not exist, has expired, or does not hold this message.",
        )
    deleted = await api.call(queue.delete_item, item)
    api.claims.drop_item(claim, message_id)
    if not deleted:
        raise ApiError(
            403,
            "Unable to delete",
            "The claim's lease ended and the message was claimed again, or it is gone.",
        )
    return _no_content()


def _delete_unclaimed(queue: Queue, message_id: str) -> None:
    """Zaqar's delete without a claim id: refused while the message is claimed."""
    found = _find(queue, message_id)
    if found is None:
        return  # Zaqar: deleting a message that is not there succeeds.
    if found.state == "leased":
        raise ApiError(
            403,
            "Unable to delete",
            "This message is claimed; it cannot be deleted without a valid claim ID.",
        )
    queue.remove_item(found.item.item_id)


async def delete_messages(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    params = request.query_params
    if params.get("ids") is not None:
        ids = _message_ids(params["ids"])

        def delete_all() -> None:
            for message_id in ids:
                _delete_unclaimed(queue, message_id)

        await api.call(delete_all)
        return _no_content()
    if params.get("pop") is not None:
        count = wire.int_in("pop", params["pop"], 1, wire.MAX_CLAIM_LIMIT, 1)

        def pop() -> list[QueueItem]:
            items = queue.claim_items(count, wire.MIN_CLAIM_TTL)
            queue.delete_items(items)
            return items

        popped = await api.call(pop)
        return JSONResponse({"messages": [wire.message(queue.name, one) for one in popped]})
    raise wire.bad("Deleting messages needs ids= or pop=.")


# -- claims ----------------------------------------------------------------------------


async def create_claim(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    given = request.query_params.get("limit")
    limit = wire.int_in("limit", given, 1, wire.MAX_CLAIM_LIMIT, wire.DEFAULT_CLAIM_LIMIT)
    raw = await _body(request)
    ttl, grace = wire.claim_terms(wire.json_body(raw) if raw.strip() else None)
    items = await api.call(_claim, queue, limit, ttl, grace)
    if not items:
        return _no_content()
    claim = api.claims.add(queue.name, items, ttl, grace, _client(request))
    messages = [wire.message(queue.name, item, claim.claim_id) for item in items]
    location = f"{wire.queue_href(queue.name)}/claims/{claim.claim_id}"
    return JSONResponse({"messages": messages}, status_code=201, headers={"Location": location})


def _claim(queue: Queue, limit: int, ttl: int, grace: int) -> list[QueueItem]:
    """The claim's ttl is the lease; its grace keeps a message with a TTL alive that long
    past the lease's end, where the store keeps TTLs (``grace`` capability)."""
    if queue.capabilities.grace:
        return queue.claim_items(limit, ttl, grace=grace)
    return queue.claim_items(limit, ttl)


def _live_claim(api: Api, queue: Queue, request: Request) -> Claim:
    claim = api.claims.get(queue.name, request.path_params["claim_id"])
    if claim is None:
        raise ApiError(404, "Not found", "Claim not found: it does not exist or has expired.")
    return claim


async def get_claim(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    claim = _live_claim(api, queue, request)
    messages = [wire.message(queue.name, item, claim.claim_id) for item in claim.items.values()]
    return JSONResponse(
        {
            "age": claim.age,
            "ttl": claim.ttl,
            "grace": claim.grace,
            "href": f"{wire.queue_href(queue.name)}/claims/{claim.claim_id}",
            "messages": messages,
        }
    )


async def update_claim(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    document = wire.json_body(await _body(request))
    claim = _live_claim(api, queue, request)
    ttl, grace = wire.renewal_terms(document, claim.ttl, claim.grace)

    # As a claim does, a renewal keeps a message with a TTL alive ``grace`` s past
    # the new lease's end, where the store keeps TTLs.
    keep = grace if queue.capabilities.grace else None

    def extend() -> list[str]:
        return [
            message_id
            for message_id, item in list(claim.items.items())
            if not queue.extend_lease(item, ttl, grace=keep)
        ]

    for message_id in await api.call(extend):  # leases lost meanwhile leave the claim
        api.claims.drop_item(claim, message_id)
    api.claims.renew(claim, ttl, grace)
    return _no_content()


async def delete_claim(api: Api, request: Request) -> Response:
    queue = api.queue(request)
    claim = api.claims.pop(queue.name, request.path_params["claim_id"])
    if claim is not None:
        items = list(claim.items.values())

        def release() -> None:
            for item in items:
                queue.release_item(item)

        await api.call(release)
    return _no_content()
