"""The Queue UI's pages and actions, server side, on real stores.

Starlette's TestClient drives the real app (``bridge.ui.create_app``) over
a SQLite file of the test's own, the session's PostgreSQL table and the
memory store (``ui_factory``); each test checks the store itself after an
action, through a queue of the same factory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

import bridge

from .pages import flash, parse, post, queue_path, token

pytestmark = pytest.mark.usefixtures("empty_registry")

MakeApp = Callable[..., Any]


def unique(prefix: str = "q") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def queue(ui_factory: bridge.QueueFactory) -> Any:
    made = ui_factory.get(unique())
    yield made
    made.delete_queue()


def claim(queue: bridge.Queue, lease: float = 600) -> bridge.QueueItem:
    item = queue.claim_item(lease_time=lease)
    assert item is not None
    return item


def hold(
    queue: bridge.Queue, data: Any, error: str = "ValueError: bounced", priority: int = 1000
) -> str:
    """Create an item and hold it at once (claimed first, ahead of ready ones below
    ``priority``); its id."""
    item_id = queue.create_item(data, priority=priority)
    item = claim(queue)
    assert item.item_id == item_id
    assert queue.hold_item(item, reason="poison", error=error)
    return str(item_id)


# -- the queues page ---------------------------------------------------------------------


def test_queues_page_lists_workers_settings_and_stored_queues(
    make_app: MakeApp, ui_kind: str, tmp_path: Any
) -> None:
    from conftest import spec_for

    worker_queue, configured, stored = unique("w"), unique("c"), unique("s")
    factory = bridge.QueueFactory(default=spec_for(ui_kind, tmp_path), queues={configured: {}})
    bridge.queue_worker(worker_queue, cron_time=30)(lambda data: None)
    factory.get(stored).create_items([1, 2, 3])
    factory.get(stored).claim_item(lease_time=600)
    try:
        with TestClient(make_app(factory)) as client:
            page = parse(client.get("/").text)
            for name in (worker_queue, configured):
                row = page.find(f"queue-row-{name}")
                assert row is not None, name
                assert row.cell("count-ready") == "0"
            row = page.find(f"queue-row-{stored}")
            assert row is not None
            assert (row.cell("count-ready"), row.cell("count-leased")) == ("2", "1")
            assert row.cell("count-held") == "0"
            assert row.cell("rate-processed") == "—", "no pass ran in this process"
            assert row.cell("backend") == factory.get(stored).backend.url
            links = [a.attrs["href"] for a in row.tags("a")]
            assert links == [queue_path(stored)]
    finally:
        factory.get(stored).delete_queue()
        factory.close()


def test_queues_json_follows_the_store(client: TestClient, queue: bridge.Queue) -> None:
    queue.create_item({"n": 1})

    def row() -> dict[str, Any]:
        rows = [r for r in client.get("/queues.json").json()["queues"] if r["name"] == queue.name]
        assert len(rows) == 1
        return rows[0]

    assert row()["counts"] == {"ready": 1, "leased": 0, "delayed": 0, "held": 0}
    queue.create_items([{"n": n} for n in range(4)])
    claim(queue)
    found = row()
    assert found["counts"] == {"ready": 4, "leased": 1, "delayed": 0, "held": 0}
    assert found["cells"]["count-ready"] == "4"
    assert found["url"] == queue_path(queue.name)
    assert found["oldest_ready_age"] >= 0


@pytest.mark.service("redis")
def test_queues_page_counts_a_redis_store(make_app: MakeApp) -> None:
    from conftest import spec_for

    factory = bridge.QueueFactory(default=spec_for("redis", None))
    queue = factory.get(unique())
    try:
        hold(queue, "poison")
        queue.create_items(list(range(5)))
        claim(queue)
        with TestClient(make_app(factory)) as client:
            row = parse(client.get("/").text).find(f"queue-row-{queue.name}")
            assert row is not None
            counts = [row.cell(f"count-{s}") for s in ("ready", "leased", "delayed", "held")]
            assert counts == ["4", "1", "0", "1"]
            assert row.cell("backend").startswith("redis://")
            listed = client.get("/queues.json").json()["queues"]
            assert {"name": queue.name, "held": 1} == {
                "name": queue.name,
                "held": next(r for r in listed if r["name"] == queue.name)["counts"]["held"],
            }
    finally:
        queue.delete_queue()
        factory.close()


# -- one queue, its items ------------------------------------------------------------------


def test_paging_through_250_items_visits_each_once(client: TestClient, queue: bridge.Queue) -> None:
    ids = {str(i) for i in queue.create_items([{"n": n} for n in range(250)])}
    seen: list[str] = []
    url: str | None = queue_path(queue.name)
    pages = 0
    while url is not None:
        pages += 1
        assert pages < 20, "the cursor does not move"
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        page = parse(answer.text)
        rows = page.find_prefix("item-row-")
        seen += [row.cell("item-id") for row in rows]
        assert all(row.cell("item-state") == "ready" for row in rows)
        assert page.find("first-page") is not None
        next_page = page.find("next-page")
        url = None if next_page is None else next_page.attrs["href"]
        assert url is None or "offset" not in url
    assert pages == 5, "50 a page"
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == ids


def test_a_page_by_state_and_the_worker_box(client: TestClient, queue: bridge.Queue) -> None:
    bridge.queue_worker(queue.name, cron_time=45, max_attempts=4, retry=bridge.Backoff(5))(
        lambda data: None
    )
    queue.create_items(["a", "b", "c"])
    leased = claim(queue)
    page = parse(client.get(queue_path(queue.name) + "?state=leased").text)
    rows = page.find_prefix("item-row-")
    assert [row.cell("item-id") for row in rows] == [str(leased.item_id)]
    assert rows[0].cell("item-state") == "leased"
    assert rows[0].cell("item-expire").startswith("lease ends in")
    assert rows[0].cell("item-attempts") == "1"
    worker = page.find("worker")
    assert worker is not None
    assert "45 s" in worker.text
    assert "4" in worker.text
    assert "backoff 5 s, x2" in worker.text
    counts = page.find("counts")
    assert counts is not None
    assert (counts.cell("count-ready"), counts.cell("count-leased")) == ("2", "1")
    for state in ("ready", "leased", "delayed", "held"):
        assert page.find(f"filter-{state}") is not None


def test_bad_state_cursor_and_limit_are_400s(client: TestClient, queue: bridge.Queue) -> None:
    queue.create_item(1)
    answer = client.get(queue_path(queue.name) + "?state=sleeping")
    assert answer.status_code == 400
    assert "state must be one of ready, leased, delayed, held" in flash(answer.text)
    answer = client.get(queue_path(queue.name) + "?after=%00not-a-cursor%FF")
    assert answer.status_code == 400, answer.text
    assert flash(answer.text)
    answer = client.get(queue_path(queue.name) + "?limit=100000")
    assert answer.status_code == 400
    assert "limit" in flash(answer.text)


def test_unknown_queue_and_item_are_404s_naming_them(
    client: TestClient, queue: bridge.Queue
) -> None:
    name = unique("nowhere")
    answer = client.get(queue_path(name))
    assert answer.status_code == 404
    assert f"Queue not found: {name}" in flash(answer.text)
    assert client.get(queue_path(name, "held")).status_code == 404
    queue.create_item(1)
    answer = client.get(queue_path(queue.name, "items", "987654321"))
    assert answer.status_code == 404
    assert "987654321" in flash(answer.text)
    assert client.get("/no/such/page").status_code == 404


def test_payload_is_pretty_printed_cut_and_whole_on_its_page(
    client: TestClient, queue: bridge.Queue
) -> None:
    big = {"rows": [{"n": n, "text": "x" * 40} for n in range(30)]}
    big_id, small_id = queue.create_items([big, {"to": "ada"}])
    page = parse(client.get(queue_path(queue.name)).text)
    small = page.find(f"item-row-{small_id}")
    assert small is not None
    assert small.cell("item-payload") == '{\n  "to": "ada"\n}'
    row = page.find(f"item-row-{big_id}")
    assert row is not None
    shown = row.cell("item-payload")
    assert shown.endswith("…")
    assert len(shown) < 400
    links = [a.attrs["href"] for a in row.tags("a")]
    assert queue_path(queue.name, "items", str(big_id)) in links
    whole = parse(client.get(queue_path(queue.name, "items", str(big_id))).text)
    import json

    assert json.loads(whole.cell("item-payload")) == big


def test_script_in_a_payload_or_an_error_is_text(client: TestClient, queue: bridge.Queue) -> None:
    evil = "<script>alert('x')</script>"
    item_id = hold(queue, {"html": evil}, error=f"ValueError: {evil}\n  File <img src=x>")
    for path in (
        queue_path(queue.name),
        queue_path(queue.name, "held"),
        queue_path(queue.name, "items", item_id),
    ):
        html = client.get(path).text
        assert "<script>alert" not in html, path
        assert "<img src=x>" not in html, path
        assert "&lt;script&gt;alert" in html, path
    item = parse(client.get(queue_path(queue.name, "items", item_id)).text)
    assert evil in item.cell("item-payload")
    assert evil in item.cell("item-error")
    assert item.cell("item-state") == "held"
    assert item.cell("hold-reason") == "poison"


def test_a_name_with_a_slash_and_markup(make_app: MakeApp, ui_factory: bridge.QueueFactory) -> None:
    name = f"team/{uuid.uuid4().hex[:6]} <b>mails</b> é"
    queue = ui_factory.get(name)
    try:
        item_id = str(queue.create_item({"n": 1}))
        claim(queue)
        with TestClient(make_app(ui_factory)) as client:
            home = client.get("/").text
            assert "<b>mails</b>" not in home
            row = parse(home).find(f"queue-row-{name}")
            assert row is not None
            href = row.tags("a")[0].attrs["href"]
            assert href == queue_path(name)
            assert "%3Cb%3E" in href
            assert "/team/" in href
            page = client.get(href)
            assert page.status_code == 200
            assert parse(page.text).tags("h1")[0].text.strip() == name
            assert client.get(queue_path(name, "items", item_id)).status_code == 200
            assert client.get(queue_path(name, "held")).status_code == 200
            answer = post(client, href, queue_path(name, "release"))
            assert answer.status_code == 303
            assert answer.headers["location"] == queue_path(name)
        assert queue.counts().leased == 0
    finally:
        queue.delete_queue()


def test_a_queue_named_like_a_sub_page(make_app: MakeApp, ui_factory: bridge.QueueFactory) -> None:
    name = f"{unique()}/held"
    queue = ui_factory.get(name)
    try:
        queue.create_items([1, 2])
        with TestClient(make_app(ui_factory)) as client:
            page = parse(client.get(queue_path(name)).text)
            assert page.tags("h1")[0].text.strip() == name
            assert len(page.find_prefix("item-row-")) == 2
    finally:
        queue.delete_queue()


# -- held items -------------------------------------------------------------------------------


def test_held_page_shows_reason_attempts_and_error(client: TestClient, queue: bridge.Queue) -> None:
    error = "Traceback (most recent call last):\n  File 'w.py', line 3\nValueError: bounced"
    item_id = hold(queue, {"n": 1}, error=error)
    page = parse(client.get(queue_path(queue.name, "held")).text)
    row = page.find(f"held-row-{item_id}")
    assert row is not None
    assert row.cell("hold-reason") == "poison"
    assert row.cell("item-attempts") == "1"
    assert row.cell("held-since") != "—"
    assert row.cell("item-error") == "ValueError: bounced", "a traceback's last line"
    assert page.find("kick-all") is not None
    assert page.find(f"kick-{item_id}") is not None
    item = parse(client.get(queue_path(queue.name, "items", item_id)).text)
    assert item.cell("item-error") == error
    shown = item.find("item-error")
    assert shown is not None
    assert shown.tag == "pre"
    assert item.find("kick-item") is not None


# -- actions --------------------------------------------------------------------------------


def test_release_all_drops_every_lease(client: TestClient, queue: bridge.Queue) -> None:
    queue.create_items([1, 2, 3])
    held_claim = claim(queue)
    claim(queue)
    answer = post(client, queue_path(queue.name), queue_path(queue.name, "release"))
    assert answer.status_code == 303
    after = client.get(answer.headers["location"])
    assert "Released 2 items" in flash(after.text)
    counts = queue.counts()
    assert (counts.ready, counts.leased) == (3, 0)
    assert not queue.delete_item(held_claim), "the released claim is over"


def test_delete_an_item_in_any_state(client: TestClient, queue: bridge.Queue) -> None:
    ready_id, leased_id, _ = queue.create_items(["a", "b", "c"])
    claim(queue)
    for item_id in (leased_id, ready_id):
        page = queue_path(queue.name, "items", str(item_id))
        answer = post(client, page, f"{page}/delete")
        assert answer.status_code == 303
        assert answer.headers["location"] == queue_path(queue.name)
        assert queue.find_item(item_id) is None
    assert queue.counts().total == 1
    again = post(
        client, queue_path(queue.name), queue_path(queue.name, "items", str(ready_id), "delete")
    )
    assert "already gone" in flash(client.get(again.headers["location"]).text)


def test_kick_one_kick_all_and_delete_held(client: TestClient, queue: bridge.Queue) -> None:
    first, second, third = (hold(queue, n) for n in range(3))
    held_page = queue_path(queue.name, "held")
    answer = post(client, held_page, queue_path(queue.name, "items", first, "kick"), back="item")
    assert answer.headers["location"] == queue_path(queue.name, "items", first)
    assert "Kicked item" in flash(client.get(answer.headers["location"]).text)
    found = queue.find_item(int(first) if first.isdigit() else first)
    assert found is not None
    assert found.state == bridge.ItemState.READY
    assert queue.counts().held == 2

    answer = post(client, held_page, queue_path(queue.name, "held", "kick"))
    assert answer.headers["location"] == held_page
    assert queue.counts().held == 0
    assert queue.counts().ready == 3

    for data in ("x", "y"):
        hold(queue, data, priority=2000)  # ahead of the kicked ones
    answer = post(client, held_page, queue_path(queue.name, "held", "delete"))
    assert "Deleted 2 held items" in flash(client.get(answer.headers["location"]).text)
    counts = queue.counts()
    assert (counts.held, counts.ready) == (0, 3)
    del second, third


def test_delete_a_queue_needs_its_name_typed(client: TestClient, queue: bridge.Queue) -> None:
    queue.create_items([1, 2])
    page = queue_path(queue.name)
    answer = post(client, page, queue_path(queue.name, "delete"), confirm="yes")
    assert answer.status_code == 400
    assert f"type the queue's name, {queue.name}" in flash(answer.text)
    assert queue.counts().total == 2
    answer = post(client, page, queue_path(queue.name, "delete"), confirm=queue.name)
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    assert f"Deleted every item of {queue.name}" in flash(client.get("/").text)
    assert queue.counts().total == 0


def wait_for_run(client: TestClient, location: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        progress = client.get(f"{location}.json").json()
        assert progress["value"] <= progress["max"]
        if progress["finished"] or time.monotonic() > deadline:
            return progress
        time.sleep(0.05)


def test_run_a_pass_to_its_end(client: TestClient, queue: bridge.Queue) -> None:
    done: list[int] = []
    bridge.queue_worker(queue.name, cron_time=60)(lambda data: done.append(data["n"]))
    queue.create_items([{"n": n} for n in range(25)])
    answer = post(
        client,
        queue_path(queue.name),
        queue_path(queue.name, "run"),
        time_limit="30",
        item_limit="20",
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/runs/")
    page = parse(client.get(location).text)
    assert page.find("progress") is not None
    assert page.find("run-status") is not None
    progress = wait_for_run(client, location)
    assert progress["finished"], progress
    assert (progress["value"], progress["max"]) == (20, 20)
    assert progress["status"] == "items_limit"
    assert progress["summary"]["processed"] == 20
    assert len(done) == 20
    assert queue.counts().total == 5
    page = parse(client.get(location).text)
    assert page.cell("run-status") == "items_limit"
    summary = page.find("run-summary")
    assert summary is not None
    assert "hidden" not in summary.attrs
    assert page.find("progress").attrs["value"] == "20"  # type: ignore[union-attr]


def test_a_second_pass_is_refused_while_one_runs(client: TestClient, queue: bridge.Queue) -> None:
    gate = threading.Event()
    bridge.queue_worker(queue.name, cron_time=60)(lambda data: gate.wait(20))
    queue.create_items([1, 2])
    action = queue_path(queue.name, "run")
    first = post(client, queue_path(queue.name), action, time_limit="30")
    assert first.status_code == 303
    try:
        second = post(client, queue_path(queue.name), action, time_limit="30")
        assert second.status_code == 409
        assert f"A pass over {queue.name} is already running" in flash(second.text)
        assert first.headers["location"] in second.text
    finally:
        gate.set()
    progress = wait_for_run(client, first.headers["location"])
    assert progress["status"] == "empty"
    assert progress["summary"]["processed"] == 2
    third = post(client, queue_path(queue.name), action)
    assert third.status_code == 303, "once it ended, another may start"
    wait_for_run(client, third.headers["location"])


def test_run_needs_a_worker_and_sane_limits(client: TestClient, queue: bridge.Queue) -> None:
    queue.create_item(1)
    page = parse(client.get(queue_path(queue.name)).text)
    assert page.find("run-pass") is None, "no worker: no button"
    answer = post(client, queue_path(queue.name), queue_path(queue.name, "run"))
    assert answer.status_code == 400
    assert "no worker is registered" in flash(answer.text)
    bridge.queue_worker(queue.name)(lambda data: None)
    for field, value in (("time_limit", "-1"), ("item_limit", "1.5"), ("time_limit", "nan")):
        answer = post(
            client, queue_path(queue.name), queue_path(queue.name, "run"), **{field: value}
        )
        assert answer.status_code == 400, (field, value)
        assert field in flash(answer.text)
    assert queue.counts().total == 1


# -- refusals: CSRF, read-only, credentials --------------------------------------------------


def test_a_post_without_or_with_a_wrong_token_changes_nothing(
    client: TestClient, queue: bridge.Queue
) -> None:
    queue.create_items([1, 2])
    claim(queue)
    client.get(queue_path(queue.name))  # a session with a token of its own
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        for action in ("release", "delete"):
            answer = client.post(
                queue_path(queue.name, action), data={**data, "confirm": queue.name}
            )
            assert answer.status_code == 403, (data, action)
            assert "CSRF" in flash(answer.text)
    counts = queue.counts()
    assert (counts.ready, counts.leased) == (1, 1)


def test_a_token_from_another_session_is_refused(
    make_app: MakeApp, ui_factory: bridge.QueueFactory, queue: bridge.Queue
) -> None:
    queue.create_item(1)
    app = make_app(ui_factory)
    with TestClient(app) as mine, TestClient(app) as theirs:
        stolen = token(theirs.get(queue_path(queue.name)).text)
        mine.get(queue_path(queue.name))
        answer = mine.post(
            queue_path(queue.name, "delete"), data={"csrf_token": stolen, "confirm": queue.name}
        )
        assert answer.status_code == 403
    assert queue.counts().total == 1


def test_read_only_renders_no_action_and_refuses_every_post(
    make_app: MakeApp, ui_factory: bridge.QueueFactory, queue: bridge.Queue
) -> None:
    item_id = hold(queue, "poison")
    queue.create_item("ready")
    with TestClient(make_app(ui_factory, read_only=True)) as client:
        for path in (
            "/",
            queue_path(queue.name),
            queue_path(queue.name, "held"),
            queue_path(queue.name, "items", item_id),
        ):
            html = client.get(path).text
            assert "<form" not in html, path
            assert "csrf_token" not in html, path
            assert "<button" not in html, path
        for action in ("release", "delete", "run", "held/kick", "held/delete"):
            answer = client.post(queue_path(queue.name, action), data={"confirm": queue.name})
            assert answer.status_code == 403, action
    counts = queue.counts()
    assert (counts.held, counts.ready) == (1, 1)


def test_credentials_are_asked_when_configured(
    make_app: MakeApp, ui_factory: bridge.QueueFactory
) -> None:
    from bridge.ui import Credentials

    secret = "t0ken-" + uuid.uuid4().hex
    app = make_app(ui_factory, credentials=Credentials("ops", "pa55word", secret))
    with TestClient(app) as client:
        answer = client.get("/")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
        assert client.get("/", auth=("ops", "wrong")).status_code == 401
        assert client.get("/", auth=("root", "pa55word")).status_code == 401
        assert client.get("/", auth=("ops", "pa55word")).status_code == 200
        assert client.get("/", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/queues.json", auth=("anyone", secret)).status_code == 200
        assert client.post("/queues/x/release").status_code == 401


def test_credentials_come_from_the_settings(
    make_app: MakeApp, ui_factory: bridge.QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(ui_factory)  # before the variables: none asked
    monkeypatch.setenv("BRIDGE_UI_USER", "ops")
    monkeypatch.setenv("BRIDGE_UI_PASSWORD", "from-env")
    guarded = make_app(ui_factory)
    with TestClient(app) as open_client, TestClient(guarded) as client:
        assert open_client.get("/").status_code == 200
        assert client.get("/").status_code == 401
        assert client.get("/", auth=("ops", "from-env")).status_code == 200


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    cookie = headers["set-cookie"].lower()
    assert "samesite=strict" in cookie
    assert "httponly" in cookie


# -- stores that cannot do everything, or do not answer ----------------------------------------


def test_a_store_that_does_not_answer_is_named(make_app: MakeApp, tmp_path: Any) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex[:6]
    down = f"postgresql+psycopg://bridge:{secret}@127.0.0.1:1/nowhere"
    name = unique("down")
    factory = bridge.QueueFactory(
        default=f"sqlite:///{tmp_path}/q.sqlite", queues={name: {"url": down}}
    )
    try:
        with TestClient(make_app(factory)) as client:
            home = client.get("/")
            assert home.status_code == 200
            assert secret not in home.text
            errors = parse(home.text).find_all("store-error")
            assert any(
                "postgresql+psycopg://bridge:***@127.0.0.1:1/nowhere" in e.text for e in errors
            )
            row = parse(home.text).find(f"queue-row-{name}")
            assert row is not None
            assert row.cell("count-ready") == "—"
            page = client.get(queue_path(name))
            assert page.status_code == 503
            assert "postgresql+psycopg://bridge:***@127.0.0.1:1/nowhere" in flash(page.text)
            assert secret not in page.text
            assert client.get("/queues.json").status_code == 200
    finally:
        factory.close()


@pytest.mark.service("rabbitmq")
def test_a_store_that_cannot_page_shows_its_next_items(make_app: MakeApp) -> None:
    from conftest import spec_for

    factory = bridge.QueueFactory(default=spec_for("rabbitmq", None))
    queue = factory.get(unique())
    try:
        queue.create_items([{"n": n} for n in range(3)])
        assert not queue.capabilities.browse
        with TestClient(make_app(factory)) as client:
            page = parse(client.get(queue_path(queue.name)).text)
            assert page.find("cannot-page") is not None
            rows = page.find_prefix("item-row-")
            assert len(rows) == 3
            assert page.find("next-page") is None
            assert page.find("filter-ready") is None
            assert not rows[0].tags("a"), "no item page to link to"
            answer = client.get(queue_path(queue.name) + "?state=held")
            assert answer.status_code == 400
            assert "cannot list items page by page" in flash(answer.text)
            item = client.get(queue_path(queue.name, "items", rows[0].cell("item-id")))
            assert item.status_code == 404
    finally:
        queue.delete_queue()
        factory.close()


# -- metrics ------------------------------------------------------------------


def test_metrics_only_when_asked(
    make_app: MakeApp, ui_factory: bridge.QueueFactory, queue: bridge.Queue
) -> None:
    queue.create_items([1, 2])
    with TestClient(make_app(ui_factory, metrics=True)) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert f'bridge_queue_items{{backend="{queue.backend.url}",queue="{queue.name}"}} 2.0' in (
            answer.text
        )
    with TestClient(make_app(ui_factory)) as client:
        assert client.get("/metrics").status_code == 404
