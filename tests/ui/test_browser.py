"""The Queue UI in a real browser: Chromium driven by Playwright, on real stores.

The app (``bridge.ui.create_app``) is served by uvicorn on 127.0.0.1 in a
thread of the test process (``serve`` in ``tests/ui/conftest.py``), over a
SQLite file of the test's own or the session's PostgreSQL table. Chromium
is Debian's (``/usr/bin/chromium``, or ``BRIDGE_TEST_CHROMIUM``):
Playwright's own browser download cannot work here. Without Playwright or
Chromium these tests skip with the reason; with ``BRIDGE_REQUIRE_SERVICES=1``
(CI) they fail instead.

Every selector is a route or a ``data-testid`` of docs/ui.md, the contract
between the app and these tests.

Every run writes the screenshots of the main pages to docs/ui/*.png, the
ones docs/ui.md shows, so they are always the pages as the code under test
draws them (the issue's "made by the same test run"). The pages show times
and ages, so the files change on every run: commit them with a change to
the UI, or ``git checkout docs/ui`` otherwise. ``BRIDGE_UI_SCREENSHOTS=0``
sends them to the test's temporary directory instead (the flow still runs).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urljoin

import pytest

import bridge

from conftest import REQUIRE_SERVICES, spec_for

try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        ViewportSize,
        expect,
        sync_playwright,
    )
except ImportError as exc:  # the browser fixture skips or fails with this
    PLAYWRIGHT_MISSING: str | None = f"Playwright for Python is not installed ({exc})"
else:
    PLAYWRIGHT_MISSING = None

CHROMIUM = os.environ.get("BRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
SCREENSHOTS = os.environ.get("BRIDGE_UI_SCREENSHOTS", "1") != "0"
DOCS_UI = Path(__file__).resolve().parents[2] / "docs" / "ui"
WAIT_MS = 15_000
"""How long an expectation waits: a few of the queues page's 2 s polls."""

SITES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
]


def missing(problem: str) -> NoReturn:
    """Skip for ``problem``, or fail in CI, where the browser tests are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{problem} (BRIDGE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(problem)


# -- the browser -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if PLAYWRIGHT_MISSING:
        missing(PLAYWRIGHT_MISSING)
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"no Chromium at {CHROMIUM} (apt-get install chromium, or BRIDGE_TEST_CHROMIUM)")
    expect.set_options(timeout=WAIT_MS)
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as exc:
        playwright.stop()
        missing(f"Chromium at {CHROMIUM} does not start under Playwright: {exc}")
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture
def dialogs() -> list[str]:
    """Every JavaScript dialog the page opened (``alert``, ``confirm``...), as ``type: text``."""
    return []


@pytest.fixture
def page(browser: Browser, dialogs: list[str]) -> Iterator[Page]:
    """A fresh browser context (no cookies), 1280x800, UTC; fails on any JavaScript error.

    Dialogs are recorded and accepted, so that an action asking
    ``confirm()`` goes ahead as the operator's click would.
    """
    context = browser.new_context(
        viewport=VIEWPORT,
        locale="en-US",
        timezone_id="UTC",
        color_scheme="light",
    )
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))

    def record(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    opened.on("dialog", record)
    yield opened
    context.close()
    if errors:
        pytest.fail(f"JavaScript errors on the page: {errors}", pytrace=False)


# -- the app, served over a real store ---------------------------------------------------


@dataclass
class Site:
    """The served app and the test's own factory on the same store."""

    url: str
    factory: bridge.QueueFactory
    fixed_names: bool
    made: list[bridge.Queue] = field(default_factory=list)

    def queue(self, name: str) -> bridge.Queue:
        """A queue for the test: ``name`` on a store of the test's own, else made unique."""
        if not self.fixed_names:
            name = f"{name}_{uuid.uuid4().hex[:8]}"
        made = self.factory.get(name)
        self.made.append(made)
        return made

    def at(self, path: str) -> str:
        return f"{self.url}{path}"


def build_site(
    spec: dict[str, Any],
    fixed_names: bool,
    serve: Callable[[Any], str],
    make_app: Callable[..., Any],
) -> Iterator[Site]:
    app_factory = bridge.QueueFactory(default=spec)
    factory = bridge.QueueFactory(default=spec)
    site = Site(serve(make_app(app_factory)), factory, fixed_names)
    yield site
    for queue in site.made:
        queue.delete_queue()
    factory.close()
    app_factory.close()


@pytest.fixture
def ui_app(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_app``, or why there is none: fails in CI, skips elsewhere."""
    try:
        import bridge.ui  # noqa: F401
    except ImportError as exc:
        missing(f"bridge.ui does not import ({exc}); pip install -e '.[ui]'")
    make_app: Callable[..., Any] = request.getfixturevalue("make_app")
    return make_app


@pytest.fixture(params=SITES)
def site(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    serve: Callable[[Any], str],
    ui_app: Callable[..., Any],
    empty_registry: None,
) -> Iterator[Site]:
    """The app on SQLite, then on PostgreSQL (queues made unique there)."""
    kind = request.param
    yield from build_site(spec_for(kind, tmp_path), kind == "sqlite", serve, ui_app)


@pytest.fixture
def sqlite_site(
    tmp_path: Path,
    serve: Callable[[Any], str],
    ui_app: Callable[..., Any],
    empty_registry: None,
) -> Iterator[Site]:
    """The app on a SQLite file of the test's own (queue names as given)."""
    yield from build_site(spec_for("sqlite", tmp_path), True, serve, ui_app)


@pytest.fixture
def docs_site(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    serve: Callable[[Any], str],
    ui_app: Callable[..., Any],
    empty_registry: None,
) -> Iterator[Site]:
    """As ``sqlite_site``, on ``sqlite:///bridge.sqlite`` (the default) in the test's directory.

    The pages then show the same store URL on every run.
    """
    monkeypatch.chdir(tmp_path)
    yield from build_site({"url": "sqlite:///bridge.sqlite"}, True, serve, ui_app)


# -- helpers -----------------------------------------------------------------------------


def row_ids(page: Page, prefix: str) -> list[str]:
    """The item ids of the rows whose ``data-testid`` is ``<prefix><id>``, in page order."""
    rows = page.locator(f'[data-testid^="{prefix}"]')
    return [str(row.get_attribute("data-testid"))[len(prefix) :] for row in rows.all()]


def follow(page: Page, link: Locator) -> None:
    """Click a link and wait until its page is the one shown."""
    href = link.get_attribute("href")
    assert href, "the link has no href"
    link.click()
    page.wait_for_url(urljoin(page.url, href))
    page.wait_for_load_state()


def act(page: Page, button: Locator) -> None:
    """Click an action's button (a POST form) and wait for the page it leads to."""
    with page.expect_navigation():
        button.click()
    expect(page.get_by_test_id("flash")).to_be_visible()


def count_cell(scope: Locator, state: str) -> Locator:
    return scope.get_by_test_id(f"count-{state}")


def hold_one(queue: bridge.Queue, data: Any, reason: str, error: str) -> str:
    """Create an item and hold it at once, with ``reason`` and ``error``; its id.

    The claim takes the queue's next item: call this before making others.
    """
    item_id = queue.create_item(data)
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert item.item_id == item_id, "the queue had ready items before this one"
    assert queue.hold_item(item, reason=reason, error=error)
    return str(item_id)


def link_in(cell: Locator) -> Locator:
    """The link a cell is, or holds."""
    return cell.locator("xpath=descendant-or-self::a").first


# -- the flows -----------------------------------------------------------------------------


def test_queues_page_counts_change_while_items_are_created(sqlite_site: Site, page: Page) -> None:
    queue = sqlite_site.queue("emails")
    queue.create_item({"to": "ada@example.com"})
    page.goto(sqlite_site.url + "/")
    row = page.get_by_test_id("queue-row-emails")
    expect(count_cell(row, "ready")).to_have_text("1")
    expect(row.get_by_test_id("backend")).to_contain_text("sqlite")
    page.evaluate("window.__sameDocument = true")

    queue.create_items([{"to": f"user{n}@example.com"} for n in range(4)])
    expect(count_cell(row, "ready")).to_have_text("5")
    claimed = queue.claim_items(2, lease_time=600)
    assert len(claimed) == 2
    expect(count_cell(row, "leased")).to_have_text("2")
    expect(count_cell(row, "ready")).to_have_text("3")

    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of polling"


def test_page_through_250_items(site: Site, page: Page) -> None:
    queue = site.queue("paged")
    ids = [str(item_id) for item_id in queue.create_items([{"n": n} for n in range(250)])]
    page.goto(site.at(f"/queues/{queue.name}"))
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert pages <= 250, "next-page never ends"
        on_page = row_ids(page, "item-row-")
        assert on_page, f"page {pages} has no items"
        first = page.get_by_test_id(f"item-row-{on_page[0]}")
        expect(first.get_by_test_id("item-id")).to_have_text(on_page[0])
        expect(first.get_by_test_id("item-state")).to_have_text("ready")
        seen.extend(on_page)
        next_page = page.get_by_test_id("next-page")
        if next_page.count() == 0:
            break
        follow(page, next_page)

    assert len(seen) == len(set(seen)), "an item was shown on two pages"
    assert sorted(seen, key=int) == sorted(ids, key=int)
    assert pages > 1, "250 items fit on one page: the paging was not exercised"
    follow(page, page.get_by_test_id("first-page"))
    assert row_ids(page, "item-row-")[0] == seen[0]


def test_held_item_error_read_and_kicked(site: Site, page: Page) -> None:
    queue = site.queue("feeds")

    @bridge.queue_worker(queue.name, max_attempts=1)
    def refresh(data: Any) -> None:
        raise ValueError(f"no route to {data['host']}")

    item_id = str(queue.create_item({"host": "feeds.example"}))
    assert bridge.process_queue(queue.name, factory=site.factory).held == 1

    page.goto(site.at(f"/queues/{queue.name}/held"))
    row = page.get_by_test_id(f"held-row-{item_id}")
    message = "ValueError: no route to feeds.example"
    expect(row.get_by_test_id("item-error")).to_contain_text(message)
    expect(row.get_by_test_id("item-attempts")).to_have_text("1")
    expect(row.get_by_test_id("hold-reason")).not_to_be_empty()
    expect(row.get_by_test_id("held-since")).not_to_be_empty()
    follow(page, link_in(row.get_by_test_id("item-id")))

    error = page.get_by_test_id("item-error")
    expect(error).to_contain_text(message)
    expect(error).to_contain_text("Traceback (most recent call last")
    expect(error).to_contain_text("in refresh")
    assert error.evaluate("e => e.tagName === 'PRE' || e.querySelector('pre') !== null")
    expect(page.get_by_test_id("item-state")).to_have_text("held")
    expect(page.get_by_test_id("hold-reason")).not_to_be_empty()

    act(page, page.get_by_test_id("kick-item"))
    page.goto(site.at(f"/queues/{queue.name}"))
    counts = page.get_by_test_id("counts")
    expect(count_cell(counts, "ready")).to_have_text("1")
    expect(count_cell(counts, "held")).to_have_text("0")
    expect(page.get_by_test_id(f"item-row-{item_id}").get_by_test_id("item-state")).to_have_text(
        "ready"
    )
    found = queue.find_item(int(item_id))
    assert found is not None
    assert found.state == bridge.ItemState.READY
    assert queue.counts().held == 0


def test_release_all_leases(site: Site, page: Page) -> None:
    queue = site.queue("leases")
    queue.create_items([{"n": n} for n in range(3)])
    claimed = queue.claim_items(2, lease_time=3600)
    page.goto(site.at(f"/queues/{queue.name}"))
    counts = page.get_by_test_id("counts")
    expect(count_cell(counts, "leased")).to_have_text("2")

    act(page, page.get_by_test_id("release-all"))
    page.goto(site.at(f"/queues/{queue.name}"))
    counts = page.get_by_test_id("counts")
    expect(count_cell(counts, "leased")).to_have_text("0")
    expect(count_cell(counts, "ready")).to_have_text("3")
    after = queue.counts()
    assert (after.ready, after.leased) == (3, 0)
    assert not queue.delete_item(claimed[0]), "a released claim still deleted its item"


def test_delete_an_item(site: Site, page: Page) -> None:
    queue = site.queue("deletes")
    ids = [str(item_id) for item_id in queue.create_items([{"n": n} for n in range(3)])]
    page.goto(site.at(f"/queues/{queue.name}/items/{ids[1]}"))
    expect(page.get_by_test_id("item-payload")).to_contain_text('"n": 1')

    act(page, page.get_by_test_id("delete-item"))
    assert queue.find_item(int(ids[1])) is None
    assert queue.number_of_items() == 2
    page.goto(site.at(f"/queues/{queue.name}"))
    expect(page.get_by_test_id(f"item-row-{ids[0]}")).to_be_visible()
    expect(page.get_by_test_id(f"item-row-{ids[1]}")).to_have_count(0)


def test_run_a_pass_with_a_live_progress_bar(sqlite_site: Site, page: Page) -> None:
    queue = sqlite_site.queue("thumbnails")
    done: list[int] = []

    @bridge.queue_worker("thumbnails", cron_time=60)
    def make_thumbnail(data: Any) -> None:
        time.sleep(0.1)  # slow enough for the page to show the bar moving
        done.append(data["n"])

    queue.create_items([{"n": n} for n in range(40)])
    page.goto(sqlite_site.at("/queues/thumbnails"))
    page.get_by_test_id("time_limit").fill("60")
    page.get_by_test_id("item_limit").fill("30")
    page.get_by_test_id("run-pass").click()
    page.wait_for_url(re.compile(r"/runs/[^/]+$"))

    progress = page.get_by_test_id("progress")
    status = page.get_by_test_id("run-status")
    summary = page.get_by_test_id("run-summary")
    expect(progress).to_be_visible()
    seen: list[tuple[float, float]] = []
    summary_while_running = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value, most = progress.evaluate("e => [e.value, e.max]")
        seen.append((value, most))
        if most and value >= most:
            break
        # Both read in one evaluation: the page's own script cannot run between them.
        running, shown = status.evaluate(
            "e => [e.innerText === 'running', !document.querySelector("
            "'[data-testid=run-summary]').hidden]"
        )
        if running and shown:
            summary_while_running = True
        time.sleep(0.1)
    assert seen[-1] == (30, 30), f"the bar never reached its end: {seen[-5:]}"
    assert any(0 < value < most for value, most in seen), f"the bar never moved: {seen}"
    expect(status).to_have_text("items_limit")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("30")
    assert not summary_while_running, "run-summary was shown while the pass was running"
    assert len(done) == 30
    assert queue.number_of_items() == 10


SCRIPT = '<script>window.__pwned = 1; alert("pwned")</script>'
IMAGE = '<img src="x" onerror="window.__pwned = 2; alert(2)">'


def test_script_payload_stays_inert(sqlite_site: Site, page: Page, dialogs: list[str]) -> None:
    queue = sqlite_site.queue("hostile")
    held_id = hold_one(queue, {"note": IMAGE}, reason=SCRIPT, error=f"RuntimeError: {SCRIPT}")
    ready_id = str(queue.create_item({"note": SCRIPT, "img": IMAGE}))
    named = sqlite_site.queue(IMAGE)  # a queue name is any string
    named.create_item({"n": 1})

    def inert() -> None:
        assert page.evaluate("window.__pwned") is None, f"a script ran on {page.url}"
        assert page.locator("script", has_text="__pwned").count() == 0
        assert page.locator('img[src="x"]').count() == 0, f"markup was parsed on {page.url}"

    page.goto(sqlite_site.url + "/")
    expect(page.get_by_test_id("updated")).to_contain_text("updated")  # after a poll
    expect(page.get_by_test_id(f"queue-row-{IMAGE}").locator("a").first).to_have_text(IMAGE)
    inert()
    follow(page, page.get_by_test_id(f"queue-row-{IMAGE}").locator("a").first)
    expect(page.get_by_test_id("counts").get_by_test_id("count-ready")).to_have_text("1")
    inert()
    page.goto(sqlite_site.at("/queues/hostile"))
    row = page.get_by_test_id(f"item-row-{ready_id}")
    expect(row.get_by_test_id("item-payload")).to_contain_text("<script>window.__pwned")
    inert()
    page.goto(sqlite_site.at(f"/queues/hostile/items/{ready_id}"))
    # Shown as JSON shows strings: quoted, with their quotes escaped.
    expect(page.get_by_test_id("item-payload")).to_contain_text(json.dumps(SCRIPT))
    expect(page.get_by_test_id("item-payload")).to_contain_text(json.dumps(IMAGE))
    inert()
    page.goto(sqlite_site.at(f"/queues/hostile/items/{held_id}"))
    expect(page.get_by_test_id("item-error")).to_contain_text(SCRIPT)
    expect(page.get_by_test_id("hold-reason")).to_contain_text(SCRIPT)
    inert()
    page.goto(sqlite_site.at("/queues/hostile/held"))
    expect(page.get_by_test_id(f"held-row-{held_id}")).to_contain_text(SCRIPT)
    inert()
    assert dialogs == [], f"a payload opened dialogs: {dialogs}"


def test_action_without_csrf_token_is_refused(sqlite_site: Site, page: Page) -> None:
    queue = sqlite_site.queue("guarded")
    ids = [str(item_id) for item_id in queue.create_items([{"n": n} for n in range(3)])]
    (leased,) = queue.claim_items(1, lease_time=3600)
    page.goto(sqlite_site.at("/queues/guarded"))  # the session's cookies, if any
    before = queue.counts()

    forged: list[tuple[str, dict[str, str | float | bool]]] = [
        (f"/queues/guarded/items/{ids[1]}/delete", {}),
        (f"/queues/guarded/items/{ids[1]}/delete", {"csrf_token": "forged"}),
        ("/queues/guarded/release", {}),
        ("/queues/guarded/delete", {"confirm": "guarded"}),
    ]
    for path, form in forged:
        answer = page.request.post(sqlite_site.at(path), form=form, max_redirects=0)
        assert answer.status == 403, f"POST {path} {form}: {answer.status}"
    answer = page.request.get(sqlite_site.at("/queues/guarded/release"), max_redirects=0)
    assert answer.status in (404, 405), f"GET of an action: {answer.status}"
    assert queue.counts() == before
    assert queue.extend_lease(leased, 3600), "the lease was dropped"

    # The same POST with the page's own token goes through: the 403 was the token's.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert token
    answer = page.request.post(
        sqlite_site.at("/queues/guarded/release"), form={"csrf_token": token}
    )
    assert answer.ok, f"with the token: {answer.status}"
    assert queue.counts().leased == 0


# -- the screenshots in docs/ui.md ----------------------------------------------------------


def test_screenshots_of_the_main_pages(docs_site: Site, page: Page, tmp_path: Path) -> None:
    """The pages docs/ui.md shows, on fixed queues and payloads (see the module docstring)."""
    where = DOCS_UI if SCREENSHOTS else tmp_path
    where.mkdir(parents=True, exist_ok=True)

    emails = docs_site.queue("emails")

    @bridge.queue_worker("emails", cron_time=60, lease_time=120, max_attempts=5)
    def send(data: Any) -> None:
        time.sleep(0.05)

    held_id = hold_one(
        emails,
        {"to": "bounce@example.invalid", "template": "welcome"},
        reason="mailbox unknown: retrying cannot help",
        error=(
            "smtplib.SMTPRecipientsRefused: {'bounce@example.invalid': (550, b'no such user')}\n"
            "Traceback (most recent call last):\n"
            '  File "/srv/app/mail.py", line 42, in send\n'
            "    smtp.send_message(message)\n"
        ),
    )
    emails.create_items(
        [{"to": f"user{n}@example.com", "template": "welcome", "locale": "en"} for n in range(120)]
    )
    emails.create_items([{"to": "ops@example.com", "template": "digest"}], delay=3600)
    emails.claim_items(3, lease_time=600)
    webhooks = docs_site.queue("webhooks")
    webhooks.create_items(
        [{"url": f"https://hooks.example/{n}", "event": "paid"} for n in range(8)]
    )
    docs_site.queue("reports").create_item({"report": "monthly"}, priority=5)

    def shot(name: str) -> None:
        page.screenshot(path=str(where / f"{name}.png"), animations="disabled", caret="hide")

    page.goto(docs_site.url + "/")  # the rates' first sample, before the pass
    page.goto(docs_site.at("/queues/emails"))
    page.get_by_test_id("time_limit").fill("30")
    page.get_by_test_id("item_limit").fill("50")
    page.get_by_test_id("run-pass").click()
    page.wait_for_url(re.compile(r"/runs/[^/]+$"))
    expect(page.get_by_test_id("run-status")).not_to_have_text("running", timeout=30_000)
    expect(page.get_by_test_id("run-summary")).to_be_visible()
    shot("run")

    # A rate needs samples 10 s apart (bridge/ui/rates.py): wait for the pass's.
    page.goto(docs_site.url + "/")
    rate = page.get_by_test_id("queue-row-emails").get_by_test_id("rate-processed")
    expect(rate).to_have_text(re.compile(r"^[1-9]"), timeout=30_000)
    shot("queues")
    page.goto(docs_site.at("/queues/emails"))
    expect(page.get_by_test_id("items")).to_be_visible()
    shot("queue")
    page.goto(docs_site.at("/queues/emails/held"))
    expect(page.get_by_test_id(f"held-row-{held_id}")).to_be_visible()
    shot("held")
    page.goto(docs_site.at(f"/queues/emails/items/{held_id}"))
    expect(page.get_by_test_id("item-error")).to_be_visible()
    shot("item")

    for name in ("queues", "queue", "held", "item", "run"):
        assert (where / f"{name}.png").stat().st_size > 1000
