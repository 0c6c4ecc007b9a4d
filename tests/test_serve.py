"""``bridge serve``: the Zaqar v2 API, driven by the real python-zaqarclient and by plain HTTP.

The client tests run the app under uvicorn on a free port (``served``, as
the Queue UI's browser tests do) over SQLite and the session's PostgreSQL
table; error paths and auth are plain HTTP calls; the refusal to listen on
a public address without credentials is the real command in a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui.conftest import served
from zaqarclient.queues.v2 import client as zaqar  # type: ignore[import-untyped]

import bridge
from bridge.serve import create_app
from bridge.ui.security import Credentials

from conftest import spec_for

KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
]
CLIENT_ID = str(uuid.uuid4())


@pytest.fixture(params=KINDS)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    yield made
    made.close()


@pytest.fixture
def url(factory: bridge.QueueFactory) -> Iterator[str]:
    with served(create_app(factory, credentials=Credentials())) as base:
        yield base


@pytest.fixture
def name() -> str:
    # Zaqar's names are letters, digits, _ and -; unique, as the PostgreSQL table is shared.
    return f"q-{uuid.uuid4().hex[:12]}"


def client(url: str) -> Any:
    return zaqar.Client(url, version=2, conf={"auth_opts": {"backend": "noauth"}})


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One request; the status, the JSON answer (or None) and the headers (lower-cased)."""
    headers = {"Client-ID": CLIENT_ID, **(headers or {})}
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text, got = answer.status, answer.read(), _lower(answer.headers)
    except urllib.error.HTTPError as exc:
        status, text, got = exc.code, exc.read(), _lower(exc.headers)
    return status, json.loads(text) if text else None, got


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


# -- with python-zaqarclient -----------------------------------------------------------


@pytest.mark.timeout(60)
def test_zaqarclient_posts_lists_claims_and_deletes_with_the_claim_id(
    url: str, name: str, factory: bridge.QueueFactory
) -> None:
    cli = client(url)
    queue = cli.queue(name, force_create=True)
    queue.post([{"body": {"n": n}, "ttl": 300} for n in range(3)])
    assert [m.body for m in queue.messages(echo=True)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert queue.stats["messages"] == {"free": 3, "claimed": 0, "total": 3}
    assert factory.get(name).number_of_items() == 3  # the same items a Python worker sees

    claim = queue.claim(ttl=60, grace=60, limit=2)
    claimed = list(claim)
    assert [m.body for m in claimed] == [{"n": 0}, {"n": 1}]
    assert {m.claim_id for m in claimed} == {claim.id}
    assert queue.stats["messages"] == {"free": 1, "claimed": 2, "total": 3}
    assert claim.ttl == 60
    # Unclaimed listing leaves the claimed ones out, as Zaqar does by default.
    assert [m.body for m in queue.messages(echo=True)] == [{"n": 2}]
    assert len(list(queue.messages(echo=True, include_claimed=True))) == 3

    for message in claimed:
        message.delete()  # DELETE .../messages/{id}?claim_id=...
    assert queue.stats["messages"] == {"free": 1, "claimed": 0, "total": 1}

    again = queue.claim(ttl=60, grace=120)
    again.update(ttl=90, grace=60)
    assert again.ttl == 90
    fetched = queue.claim(id=again.id)
    assert fetched.ttl == 90
    assert [m.body for m in fetched] == [{"n": 2}]
    again.delete()  # released: free again
    assert queue.stats["messages"] == {"free": 1, "claimed": 0, "total": 1}

    listed, _ = cli.queues()
    assert name in [q.name for q in listed]
    queue.delete()
    assert queue.stats["messages"]["total"] == 0


@pytest.mark.timeout(60)
def test_zaqarclient_pages_messages_by_marker(url: str, name: str) -> None:
    queue = client(url).queue(name, force_create=True)
    queue.post([{"body": n, "ttl": 60} for n in range(5)])
    pages = queue.messages(echo=True, limit=2).stream()  # follows the "next" links
    assert [m.body for m in pages] == [0, 1, 2, 3, 4]
    one = next(iter(queue.messages(echo=True, limit=1)))
    assert queue.message(one.id).body == 0
    assert [m.body for m in queue.messages(one.id)] == [0]
    queue.delete_messages(one.id)  # DELETE ...?ids=
    assert [m.body for m in queue.pop(2)] == [1, 2]  # DELETE ...?pop=2
    assert [m.body for m in queue.messages(echo=True)] == [3, 4]


@pytest.mark.timeout(60)
def test_a_claimed_message_needs_its_claim_id(url: str, name: str) -> None:
    queue = client(url).queue(name, force_create=True)
    queue.post([{"body": "job", "ttl": 60}])
    claim = queue.claim(ttl=60, grace=60)
    (message,) = list(claim)
    base = f"{url}/v2/queues/{name}/messages/{message.id}"
    status, answer, _ = call("DELETE", base)
    assert status == 403
    assert "claimed" in answer["description"]
    assert call("DELETE", f"{base}?claim_id={uuid.uuid4().hex}")[0] == 403
    claim.delete()
    assert call("DELETE", base)[0] == 204  # released, so deletable without a claim
    assert call("GET", base)[0] == 404
    assert call("DELETE", base)[0] == 204  # Zaqar: deleting what is gone succeeds


@pytest.mark.timeout(60)
def test_a_message_ttl_and_an_ended_claim(
    url: str, name: str, factory: bridge.QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zaqar's 60 s minimums lowered to 1 s, so that a TTL and a claim end within the test."""
    from bridge.serve import wire

    monkeypatch.setattr(wire, "MIN_MESSAGE_TTL", 1)
    monkeypatch.setattr(wire, "MIN_CLAIM_TTL", 1)
    queue = client(url).queue(name, force_create=True)
    queue.post([{"body": "short", "ttl": 1}, {"body": "long", "ttl": 600}])
    claim = queue.claim(ttl=1, grace=60, limit=1)
    (held,) = list(claim)
    assert held.body == "short"
    time.sleep(1.3)
    # The claim ended: its id is unknown, deleting with it is refused.
    assert call("GET", f"{url}/v2/queues/{name}/claims/{claim.id}")[0] == 404
    assert call("DELETE", f"{url}{held.href}")[0] == 403
    if factory.get(name).capabilities.grace:
        # grace kept "short" alive 60 s past its lease, so it is free again, not expired.
        assert sorted(m.body for m in queue.messages(echo=True)) == ["long", "short"]
    fresh = client(url).queue(name)
    fresh.post([{"body": "gone", "ttl": 1}])
    time.sleep(1.3)
    bodies = [m.body for m in fresh.messages(echo=True, include_claimed=True)]
    if factory.get(name).capabilities.ttl:
        assert "gone" not in bodies  # past its TTL, unclaimed: gone
    else:
        assert "gone" in bodies


@pytest.mark.timeout(60)
def test_renewing_a_claim_moves_the_ttl_deadline_by_its_grace(
    url: str, name: str, factory: bridge.QueueFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim renewed with a grace keeps its message alive past its TTL, as a new claim would."""
    from bridge.serve import wire

    monkeypatch.setattr(wire, "MIN_MESSAGE_TTL", 1)
    monkeypatch.setattr(wire, "MIN_CLAIM_TTL", 1)
    monkeypatch.setattr(wire, "MIN_GRACE", 0)
    queue = client(url).queue(name, force_create=True)
    queue.post([{"body": "renewed", "ttl": 1}])
    claim = queue.claim(ttl=1, grace=0, limit=1)
    claim.update(ttl=1, grace=60)
    time.sleep(1.4)  # past the TTL and the renewed lease
    assert factory.get(name).capabilities.grace  # every store served here keeps TTLs
    # Free again, not expired: the renewal's grace holds it 60 s past the lease.
    assert [m.body for m in queue.messages(echo=True, include_claimed=True)] == ["renewed"]


# -- errors, over plain HTTP -----------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    factory = bridge.QueueFactory(default="memory://")
    with served(create_app(factory, credentials=Credentials())) as base:
        yield base
    factory.close()


@pytest.mark.timeout(60)
def test_bad_requests_are_zaqar_error_documents(memory_url: str) -> None:
    base = f"{memory_url}/v2/queues"
    post = {"messages": [{"body": 1}]}
    cases: list[tuple[int, str, str, Any, dict[str, str], bytes | None]] = [
        (400, "POST", "/q/messages", post, {"Client-ID": ""}, None),
        (400, "POST", "/q/messages", post, {"Client-ID": "not-a-uuid"}, None),
        (400, "POST", "/q/messages", None, {}, b"{not json"),
        (400, "POST", "/q/messages", {"messages": []}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"ttl": 60}]}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"body": 1, "ttl": 5}]}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"body": 1, "ttl": "x"}]}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"body": 1}] * 21}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"body": "x" * 300_000}]}, {}, None),
        (400, "POST", "/q/messages", {"messages": [{"body": float("nan")}]}, {}, None),
        (400, "PUT", "/bad.name", None, {}, None),
        (400, "PUT", "/" + "a" * 65, None, {}, None),
        (400, "GET", "/q/messages?limit=0", None, {}, None),
        (400, "GET", "/q/messages?echo=maybe", None, {}, None),
        (400, "GET", "/q/messages?marker=nonsense", None, {}, None),
        (400, "POST", "/q/claims", {"ttl": 10}, {}, None),
        (400, "POST", "/q/claims?limit=21", {}, {}, None),
        (400, "POST", "/q/claims", [1], {}, None),
        (400, "DELETE", "/q/messages", None, {}, None),
        (404, "GET", "/q/messages/12345", None, {}, None),
        (404, "GET", "/q/claims/nope", None, {}, None),
        (404, "PATCH", "/q/claims/nope", {"ttl": 60}, {}, None),
        (404, "GET", "/q/nothing/here", None, {}, None),
        (405, "POST", "/q/stats", {}, {}, None),
    ]
    for status, method, path, body, headers, raw in cases:
        got, answer, _ = call(method, base + path, body, raw=raw, headers=headers)
        assert got == status, (method, path, answer)
        assert set(answer) == {"title", "description"}, answer
        assert answer["title"]
        assert answer["description"]


@pytest.mark.timeout(60)
def test_an_unknown_queue_answers_as_zaqar(memory_url: str) -> None:
    base = f"{memory_url}/v2/queues/never-made"
    status, answer, _ = call("GET", f"{base}/stats")
    assert (status, answer) == (200, {"messages": {"free": 0, "claimed": 0, "total": 0}})
    assert call("GET", f"{base}/messages")[1] == {"messages": [], "links": []}
    assert call("POST", f"{base}/claims", {"ttl": 60, "grace": 60})[0] == 204
    assert call("DELETE", f"{base}/claims/nope")[0] == 204
    assert call("DELETE", base)[0] == 204


@pytest.mark.timeout(60)
def test_posting_answers_201_with_the_messages_hrefs(memory_url: str) -> None:
    base = f"{memory_url}/v2/queues/hrefs"
    body = {"messages": [{"body": {"a": 1}}, {"body": [2], "ttl": 120, "delay": 1}]}
    status, answer, headers = call("POST", f"{base}/messages", body)
    assert status == 201
    assert len(answer["resources"]) == 2
    assert all(r.startswith("/v2/queues/hrefs/messages/") for r in answer["resources"])
    assert headers["location"].startswith("/v2/queues/hrefs/messages?ids=")
    # the delayed one is not free yet
    assert call("GET", f"{base}/stats")[1]["messages"] == {"free": 1, "claimed": 0, "total": 2}


# -- auth ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_token_is_asked_of_every_request_when_configured() -> None:
    factory = bridge.QueueFactory(default="memory://")
    credentials = Credentials(user="ops", password="pw", token="s3cret")
    with served(create_app(factory, credentials=credentials)) as base:
        stats = f"{base}/v2/queues/q/stats"
        status, answer, headers = call("GET", stats)
        assert status == 401
        assert answer["title"] == "Unauthorized"
        assert "www-authenticate" in headers
        assert call("GET", stats, headers={"X-Auth-Token": "wrong"})[0] == 401
        assert call("GET", stats, headers={"X-Auth-Token": "s3cret"})[0] == 200
        assert call("GET", stats, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert call("GET", stats, headers={"Authorization": "Basic b3BzOnB3"})[0] == 200  # ops:pw
        assert call("GET", stats, headers={"Authorization": "Basic b3BzOng="})[0] == 401  # ops:x
    factory.close()


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "CELERY_", "PROMETHEUS_"))
    }
    return {
        **env,
        "BRIDGE_QUEUE_DEFAULT": f"sqlite:///{tmp_path}/bridge.sqlite",
        "CELERY_CONFIG_MODULE": f"no_celeryconfig_{uuid.uuid4().hex}",
        **extra,
    }


@pytest.mark.timeout(120)
def test_a_public_address_without_credentials_is_refused(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from bridge.cli import main; main()", "serve"]
    for host in ("0.0.0.0", "192.0.2.7"):
        done = subprocess.run(
            [*command, "--host", host],
            env=_environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"Error: refusing to serve the Zaqar API on {host}")
        assert "BRIDGE_SERVE_TOKEN" in lines[0]
        assert not done.stdout
    done = subprocess.run(
        [*command, "--host", "0.0.0.0"],
        env=_environment(tmp_path, BRIDGE_SERVE_USER="ops"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs both a user and a password" in done.stderr


@pytest.mark.timeout(60)
def test_bridge_serve_starts_on_loopback_and_answers(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from bridge.cli import main; main()", "serve"]
    proc = subprocess.Popen(
        [*command, "--port", "0"],
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Serving the Zaqar v2 API on http://127.0.0.1:"), line
        base = line.split(" on ", 1)[1].strip()
        assert call("POST", f"{base}/queues/cli/messages", {"messages": [{"body": 1}]})[0] == 201
        assert client(base.removesuffix("/v2")).queue("cli").stats["messages"]["total"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
