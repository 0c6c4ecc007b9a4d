"""Passwords never reach what bridge prints: masked URLs, in listings, metrics and errors.

:func:`bridge.urls.mask_password` renders an ordinary URL as SQLAlchemy's
``render_as_string(hide_password=True)`` does, and holds where that one
leaks (``/`` or ``@`` in a password, ``?password=``). The commands are run
for real, as a user would, on a database that is not there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bridge.urls import mask_password

SECRET = "Zq9x/Wk7m%40Pv4r"
"""A password with a slash and an at sign (escaped, as SQLAlchemy needs: unescaped, the
driver takes what follows it for the host and names it in its error)."""

ORDINARY = [
    "postgresql+psycopg://app:pw@db:5432/bridge",
    "mysql+pymysql://root:pw@127.0.0.1:3306/test",
    "redis://:pw@cache:6379/0",
    "amqp://guest:guest@rabbit:5672/vhost",
    "kombu+amqp://u:p@h:5672/vh",
    "amqp://guest@localhost//",
    "sqlite:///bridge.sqlite",
    "memory://",
    "filesystem://localhost/",
    "db+postgresql://u:p@h/results",
]


@pytest.mark.parametrize("url", ORDINARY)
def test_ordinary_urls_render_as_sqlalchemy_renders_them(url: str) -> None:
    assert mask_password(url) == make_url(url).render_as_string(hide_password=True)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://app:s3cr/et@db:5432/x", "postgresql+psycopg://app:***@db:5432/x"),
        ("mysql+pymysql://app:p@ss@db/x", "mysql+pymysql://app:***@db/x"),
        ("mysql+pymysql://app:pa?ss@db/x", "mysql+pymysql://app:***@db/x"),
        (
            "postgresql://app@db/x?password=s3cr/et&sslmode=require",
            "postgresql://app@db/x?password=***&sslmode=require",
        ),
        ("amqp://u:p@rabbit//?x=1&Password=zz", "amqp://u:***@rabbit//?x=1&Password=***"),
        ("sqs://AKIAEXAMPLE:ab/c+d@", "sqs://AKIAEXAMPLE:***@"),
        (
            "kombu+sqs://AKIAEXAMPLE:ab/c+d@/?region=eu-west-1",
            "kombu+sqs://AKIAEXAMPLE:***@/?region=eu-west-1",
        ),
        ("redis://cache:6379/0?client_name=a@b", "redis://cache:6379/0?client_name=a@b"),
        ("sqlite:////tmp/a:b@c.sqlite", "sqlite:////tmp/a:b@c.sqlite"),
    ],
)
def test_passwords_with_slashes_ats_or_in_the_query_are_hidden(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def _bridge(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/bridge",
        f"postgresql+psycopg://app@127.0.0.1:1/bridge?password={SECRET}",
    ],
)
def test_commands_print_no_password(url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    env["BRIDGE_QUEUE_DEFAULT"] = url
    for args in (["queue", "list"], ["metrics", "--once"], ["queue", "send", "q", "1"]):
        done = _bridge(*args, env=env, cwd=tmp_path)
        printed = done.stdout + done.stderr
        assert "***" in printed, (args, printed)
        for part in ("Zq9x", "Wk7m", "Pv4r"):
            assert part not in printed, (args, part, printed)
