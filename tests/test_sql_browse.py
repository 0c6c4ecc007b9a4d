"""browse on SQL: pages by key in claim order, across priorities; cursors checked.

The contract suite (tests/contract/test_browse.py) covers what every
backend does; these check what the SQL backend promises beyond it: the
order is the claim order exactly (``priority DESC, item_id``), so a page
boundary inside a priority and one between priorities both continue where
they stopped, and a cursor that no page made is refused before anything is
sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge

from conftest import SQL_BACKENDS, spec_for


@pytest.fixture(params=SQL_BACKENDS)
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bridge.Queue]:
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    made = factory.get(f"browse_{uuid.uuid4().hex[:10]}")
    yield made
    made.delete_queue()
    factory.close()


def test_pages_follow_claim_order_across_priorities(queue: bridge.Queue) -> None:
    for priority in (0, 7, -3, 7, 0):
        queue.create_items([f"p{priority}-{n}" for n in range(3)], priority=priority)
    claim_order = [item.data for item in queue.peek(100)]

    for limit in (1, 2, 3, 4):
        shown, after = [], None
        while True:
            page = queue.browse(after=after, limit=limit)
            assert len(page.items) <= limit
            shown += [listed.item.data for listed in page.items]
            if page.next_after is None:
                break
            after = page.next_after
        assert shown == claim_order, f"pages of {limit}"


def test_the_last_full_page_says_it_is_the_last(queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c", "d"])
    first = queue.browse(limit=2)
    last = queue.browse(after=first.next_after, limit=2)
    assert [listed.item.data for listed in last.items] == ["c", "d"]
    assert last.next_after is None


@pytest.mark.parametrize("cursor", ["", "next", "3", "3:", ":4", "1:2:3", "x:1", f"{2**31}:1"])
def test_a_cursor_no_page_made_is_refused(queue: bridge.Queue, cursor: str) -> None:
    with pytest.raises(bridge.InvalidArgumentError, match="after"):
        queue.browse(after=cursor)
