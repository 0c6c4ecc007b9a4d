"""No input makes the ``bridge`` command print a traceback (issue 9, item 10).

Hypothesis feeds the commands arbitrary queue names, JSON arguments (deeply
nested ones too), numbers (huge, negative, not finite, not numbers) and
backend URLs, on SQLite and memory. Each call must either succeed or end
with exactly one ``Error: ...`` line on stderr and a non-zero exit. The
commands run in process with ``catch_exceptions=False``, so an exception
escaping the CLI fails the test with its traceback; the console script's
last-resort line ("internal error") counts as a failure too.

The examples are few, bounded and the same on every run, so that the module
runs in seconds (``BRIDGE_FUZZ_EXAMPLES=N`` hunts with N random ones). Each
case first seen by hand is pinned as an explicit test below the properties,
the service-backed ones marked for their service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bridge
import bridge.factory
from bridge import workers
from bridge.cli import cli

from conftest import AMQP_URL, POSTGRES_URL

ISOLATED_ENV: dict[str, str | None] = {
    "BRIDGE_QUEUE_DEFAULT_RELIABLE": None,
    "BRIDGE_QUEUES": None,
    "BRIDGE_IMPORTS": None,
    "CELERY_CONFIG_MODULE": "bridge_test_no_celeryconfig",
    # No credentials: a public address must be refused, never served.
    **{
        f"BRIDGE_{part}_{key}": None
        for part in ("UI", "SERVE")
        for key in ("USER", "PASSWORD", "TOKEN")
    },
}
WORKED = "fuzz_worked"
"""A queue with a registered worker, so that ``queue run`` gets past its check."""

HUNT = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    # The same examples on every run, so CI never fails by chance; set
    # BRIDGE_FUZZ_EXAMPLES=2000 to hunt with that many fresh ones instead.
    max_examples=HUNT or 100,
    derandomize=not HUNT,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def invoke(args: list[str], url: str) -> Result:
    """``bridge ARGS...`` on ``url`` with a fresh factory, as a new process would."""
    bridge.factory._factory = None
    env = {**ISOLATED_ENV, "BRIDGE_QUEUE_DEFAULT": url}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def assert_clean(result: Result) -> None:
    """Success, or one ``Error:`` line and a non-zero exit; never a traceback."""
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        return
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    assert "internal error" not in lines[0]


@pytest.fixture
def urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The backends the properties run on; relative SQLite paths land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bridge.factory, "_factory", None)
    saved = dict(workers._registry)
    bridge.queue_worker(WORKED)(lambda data: None)
    yield {"sqlite": f"sqlite:///{tmp_path}/fuzz.sqlite", "memory": "memory://"}
    workers._registry.clear()
    workers._registry.update(saved)


# -- strategies -------------------------------------------------------------------

# Text an environment variable can hold: no NUL, no lone surrogate.
env_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))

names = st.one_of(
    st.sampled_from(
        [
            WORKED,
            "emails",
            "",
            " ",
            "-x",
            "é" * 128,
            "😀" * 64,
            "😀" * 100,
            "\udcff",
            "a\ud800b",
            "a\x00b",
            "a\nb",
        ]
    ),
    st.text(max_size=300),
)
"""Queue names: empty, too long in bytes, option-like, and arbitrary Unicode."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
nested = st.integers(min_value=0, max_value=5000).flatmap(
    lambda depth: st.sampled_from(
        [
            "[" * depth + "]" * depth,
            '{"a":' * depth + "1" + "}" * depth,
            "[" * depth,
        ]
    )
)
payloads = st.one_of(
    json_values.map(json.dumps),
    nested,
    st.text(max_size=50),
    st.just("1" * 5000),
    st.just('"\\ud800"'),
    st.just("NaN"),
)
"""JSON arguments: valid values, deep nesting, invalid text, huge numbers, lone surrogates."""

numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from(
        [
            "9223372036854775808",
            "18446744073709551616",
            "-1",
            "0",
            "1e400",
            "nan",
            "inf",
            "-inf",
            "2147483648",
            "-2147483649",
        ]
    ),
    st.floats().map(repr),
    st.text(max_size=10),
)
"""Option values: in range, far out of it, not finite, and not numbers at all."""


def positional(*values: str) -> list[str]:
    # After "--", a name such as "-x" is a name, not an unknown option.
    return ["--", *values]


# -- properties -------------------------------------------------------------------


@FUZZ
@given(
    kind=st.sampled_from(["sqlite", "memory"]),
    name=names,
    payload=payloads,
    delay=numbers,
    priority=numbers,
)
def test_send_never_prints_a_traceback(
    urls: dict[str, str], kind: str, name: str, payload: str, delay: str, priority: str
) -> None:
    args = ["queue", "send", "--create", "--delay", delay, "--priority", priority]
    assert_clean(invoke([*args, *positional(name, payload)], urls[kind]))


@FUZZ
@given(
    kind=st.sampled_from(["sqlite", "memory"]),
    name=names,
    payload=payloads,
    limit=numbers,
    output=st.sampled_from(["table", "json"]),
)
def test_peek_release_and_delete_never_print_a_traceback(
    urls: dict[str, str], kind: str, name: str, payload: str, limit: str, output: str
) -> None:
    url = urls[kind]
    assert_clean(invoke(["queue", "send", "--create", *positional(name, payload)], url))
    peek = ["queue", "peek", "--limit", limit, "--format", output, *positional(name)]
    assert_clean(invoke(peek, url))
    assert_clean(invoke(["queue", "list", "--format", output], url))
    held = ["queue", "held", "--limit", limit, "--format", output, *positional(name)]
    assert_clean(invoke(held, url))
    assert_clean(invoke(["queue", "kick", "--all", *positional(name)], url))
    assert_clean(invoke(["queue", "delete-held", "--yes", *positional(name)], url))
    assert_clean(invoke(["queue", "release", *positional(name)], url))
    assert_clean(invoke(["queue", "delete", "--yes", *positional(name)], url))


item_ids = st.lists(
    st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["0", "1", "007", "9223372036854775808", "1e3", "-1", "", " 1"]),
        st.text(max_size=40),
    ),
    max_size=4,
)
"""Item ids as a shell passes them: numbers of any size, and any text."""


@FUZZ
@given(
    kind=st.sampled_from(["sqlite", "memory"]),
    name=names,
    ids=item_ids,
    kick_all=st.booleans(),
    reason=st.text(max_size=30),
    error=st.one_of(st.none(), st.text(max_size=60)),
    output=st.sampled_from(["table", "json"]),
)
def test_held_kick_and_delete_held_never_print_a_traceback(
    urls: dict[str, str],
    kind: str,
    name: str,
    ids: list[str],
    kick_all: bool,
    reason: str,
    error: str | None,
    output: str,
) -> None:
    """On a queue with a held item whose reason and error are any text."""
    url = urls[kind]
    sent = invoke(["queue", "send", "--create", *positional(name, '"x"')], url)
    assert_clean(sent)
    if sent.exit_code == 0 and kind == "sqlite":
        # Held through the API, as a worker would: reason and error are free text.
        # (A memory:// queue lives in one factory: each invocation starts empty.)
        factory = bridge.QueueFactory(default=url)
        queue = factory.get(name)
        item = queue.claim_item()
        assert item is not None
        assert queue.hold_item(item, reason=reason, error=error)
        factory.close()
        ids = [*ids, str(item.item_id)]
    assert_clean(invoke(["queue", "held", "--format", output, *positional(name)], url))
    assert_clean(invoke(["queue", "peek", "--format", output, *positional(name)], url))
    kick = ["queue", "kick", *(["--all"] if kick_all else []), *positional(name, *ids)]
    assert_clean(invoke(kick, url))
    assert_clean(invoke(["queue", "delete-held", "--yes", *positional(name)], url))


@FUZZ
@given(
    kind=st.sampled_from(["sqlite", "memory"]),
    name=st.one_of(st.just(WORKED), names),
    time_limit=numbers,
    items_limit=numbers,
    lease_time=numbers,
)
def test_run_never_prints_a_traceback(
    urls: dict[str, str],
    kind: str,
    name: str,
    time_limit: str,
    items_limit: str,
    lease_time: str,
) -> None:
    url = urls[kind]
    assert_clean(invoke(["queue", "send", "--create", *positional(name, "1")], url))
    options = ["--time-limit", time_limit, "--items-limit", items_limit, "--lease-time", lease_time]
    assert_clean(invoke(["queue", "run", *options, *positional(name)], url))


@FUZZ
@given(
    kind=st.sampled_from(["sqlite", "memory"]),
    names_given=st.lists(names.filter(lambda name: name != WORKED), min_size=1, max_size=3),
    concurrency=numbers,
    lease_time=numbers,
)
def test_watch_refusals_never_print_a_traceback(
    urls: dict[str, str], kind: str, names_given: list[str], concurrency: str, lease_time: str
) -> None:
    """No queue here has a worker, so every call must end at once with one line."""
    options = ["--concurrency", concurrency, "--lease-time", lease_time]
    result = invoke(["queue", "watch", *options, *positional(*names_given)], urls[kind])
    assert_clean(result)
    assert result.exit_code != 0, "a watch without a worker ran"


public_hosts = st.sampled_from(["0.0.0.0", "::", "8.8.8.8", "192.0.2.1", "example.invalid", ""])
"""Addresses that are not loopback (or not addresses): refused without credentials."""


@FUZZ
@given(
    command=st.sampled_from(["serve", "ui"]),
    host=public_hosts,
    port=st.one_of(numbers, st.integers(min_value=1, max_value=65535).map(str)),
)
def test_servers_on_a_public_address_or_a_bad_port_refuse_in_one_line(
    urls: dict[str, str], command: str, host: str, port: str
) -> None:
    result = invoke([command, "--host", host, "--port", port], urls["memory"])
    assert_clean(result)
    assert result.exit_code != 0, f"{command} started on {host!r}:{port}"


sqlite_urls = st.builds(
    lambda prefix, file: f"{prefix}{file}",
    st.sampled_from(["sqlite:///", "sqlite:////proc/nope/", "sqlite:///sub/dir/"]),
    env_text.filter(lambda text: "/" not in text),
)
server_urls = st.builds(
    lambda scheme, port: f"{scheme}://u:p@127.0.0.1:{port}/test",
    st.sampled_from(["postgresql", "mysql", "mariadb", "postgresql+psycopg"]),
    st.one_of(
        st.sampled_from(["abc", "", "-1", "0", "65536", "99999999999999999999", "1"]),
        st.integers(min_value=65536, max_value=2**70).map(str),
    ),
)
"""Server URLs that fail before any connection, or at once (nothing listens on port 1)."""
any_urls = st.one_of(
    sqlite_urls,
    server_urls,
    env_text,
    st.sampled_from(
        [
            "memory://",
            "memory://x?y",
            "nope://x",
            "kombu+sqla://x",
            "sqlite://",
            "sqlite:///",
            "sqlite:///..",
        ]
    ),
)


@FUZZ
@given(
    url=any_urls,
    command=st.sampled_from(
        [
            ["queue", "list"],
            ["queue", "send", "--create", "q", "{}"],
            ["queue", "peek", "q"],
            ["metrics", "--once"],
        ]
    ),
)
def test_any_default_url_gives_a_result_or_one_error_line(
    urls: dict[str, str], url: str, command: list[str]
) -> None:
    assert_clean(invoke(command, url))


demo_counts = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=1_000_001).map(str),
    st.integers(min_value=1, max_value=3).map(str),
    st.sampled_from(["nan", "1.5", "1e3", "", "abc", "18446744073709551616"]),
)
"""Counts the demo refuses, and a few small ones it runs (a big valid one would be slow)."""


@FUZZ
@given(items=demo_counts, name=names)
def test_demo_never_prints_a_traceback(urls: dict[str, str], items: str, name: str) -> None:
    assert_clean(invoke(["demo", "--items", items, "--queue", name], urls["memory"]))


# -- each case seen by hand --------------------------------------------------------


def one_error_line(result: Result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    assert_clean(result)
    line = result.stderr.strip()
    for needle in needles:
        assert needle in line, line
    return line


def test_deeply_nested_json(urls: dict[str, str]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    result = invoke(["queue", "send", "--create", "q", deep], urls["sqlite"])
    assert result.exit_code == 2
    line = one_error_line(result, "JSON argument", "nested too deeply")
    assert len(line) < 200, "the argument is shortened in the message"


def test_a_priority_beyond_64_bits(urls: dict[str, str]) -> None:
    args = ["queue", "send", "--create", "--priority", "9223372036854775808", "q", "1"]
    one_error_line(invoke(args, urls["sqlite"]), "priority", "2147483647")


def test_a_peek_limit_beyond_64_bits(urls: dict[str, str]) -> None:
    url = urls["sqlite"]
    assert invoke(["queue", "send", "--create", "q", "1"], url).exit_code == 0
    result = invoke(["queue", "peek", "q", "--limit", "18446744073709551616"], url)
    assert result.exit_code == 2
    one_error_line(result, "--limit", "18446744073709551616")


@pytest.mark.parametrize("option", ["--time-limit", "--lease-time"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_seconds_must_be_finite(urls: dict[str, str], option: str, value: str) -> None:
    result = invoke(["queue", "run", WORKED, option, value], urls["memory"])
    assert result.exit_code == 2
    one_error_line(result, option, "finite")


def test_a_bad_port(urls: dict[str, str]) -> None:
    url = "postgresql://u:p@127.0.0.1:abc/test"
    line = one_error_line(invoke(["queue", "list"], url), "port", "abc")
    assert "u:p@" not in line, "the password stays masked"


def test_a_sqlite_file_in_a_directory_that_cannot_be_made(urls: dict[str, str]) -> None:
    result = invoke(["queue", "list"], "sqlite:////proc/nope/x.sqlite")
    one_error_line(result, "/proc/nope", "directory")


def test_a_bad_query_option(urls: dict[str, str]) -> None:
    result = invoke(["queue", "list"], urls["sqlite"] + "?timeout=abc")
    one_error_line(result, "query option", "abc")


def test_metrics_on_an_address_that_does_not_resolve(urls: dict[str, str]) -> None:
    result = invoke(["metrics", "--address", "no such host", "--port", "0"], urls["memory"])
    one_error_line(result, "cannot listen", "no such host")


@pytest.mark.service("postgres")
def test_a_postgres_port_out_of_range() -> None:
    url = POSTGRES_URL.replace("127.0.0.1:5432", "127.0.0.1:99999")
    assert url != POSTGRES_URL
    one_error_line(invoke(["queue", "list"], url), "99999")


@pytest.mark.service("rabbitmq")
def test_a_queue_name_too_long_for_rabbitmq() -> None:
    result = invoke(["queue", "send", "--create", "😀" * 100, "1"], AMQP_URL)
    assert result.exit_code == 2
    one_error_line(result, "255 bytes", "400")


@pytest.mark.service("rabbitmq")
def test_a_priority_beyond_rabbitmqs_maximum() -> None:
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    result = invoke(
        ["queue", "send", "--create", "--priority", "9223372036854775808", name, "1"], AMQP_URL
    )
    one_error_line(result, "priority")


def test_the_script_reports_an_internal_error_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug is not hidden: one line names it and says how to report it."""
    from bridge import cli as cli_module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli_module.cli, "main", broken)
    monkeypatch.delenv("BRIDGE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["queue", "list"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("Error: internal error ZeroDivisionError: division by zero;")
    assert "BRIDGE_DEBUG=1" in err
    monkeypatch.setenv("BRIDGE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli_module.main(["queue", "list"])


@pytest.mark.parametrize(
    ("args", "url", "needle"),
    [
        (["queue", "send", "--create", "q", "[" * 100_000], "{db}", "nested too deeply"),
        (
            ["queue", "send", "--create", "--priority", "9223372036854775808", "q", "1"],
            "{db}",
            "priority",
        ),
        (["queue", "peek", "q", "--limit", "18446744073709551616"], "{db}", "--limit"),
        (["queue", "list"], "postgresql://u:p@127.0.0.1:abc/test", "port"),
        (["queue", "list"], "sqlite:////proc/nope/x.sqlite", "/proc/nope"),
        (["queue", "send", "--create", "\udcff", "1"], "{db}", "not valid Unicode"),
    ],
    ids=["deep-json", "priority", "peek-limit", "port", "sqlite-directory", "undecodable-name"],
)
def test_the_script_reports_each_case_in_one_line(
    tmp_path: Path, args: list[str], url: str, needle: str
) -> None:
    """The console script itself, in its own process, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    env["BRIDGE_QUEUE_DEFAULT"] = url.format(db=f"sqlite:///{tmp_path}/cli.sqlite")
    env["CELERY_CONFIG_MODULE"] = "bridge_test_no_celeryconfig"
    # Bytes, as a shell passes them: an undecodable name arrives as such.
    argv = [os.fsencode(arg) for arg in [sys.executable, "-m", "bridge.cli", *args]]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode != 0
    assert "Traceback" not in stderr + done.stdout.decode("utf-8", "replace")
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("Error: ")
    assert needle in stderr
