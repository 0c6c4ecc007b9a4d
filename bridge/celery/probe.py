"""A liveness probe for a Celery worker or beat that a broker outage does not fail.

``python -m bridge.celery.probe worker`` (or ``beat``) pings this host's
node (``celery@<hostname>``, ``celerybeat@<hostname>``) through the broker
and exits 0 if it answers. ``celery inspect ping`` alone fails on every
host at once while the broker is down, so an orchestrator restarting on it
would restart every worker for a fault that is not theirs, and restarting
does not bring the broker back. This probe first checks that the broker
answers at all: if it does not, it says so and exits 0 (the worker keeps
reconnecting by itself); only a broker that answers while the node does not
fails the probe, exit 1.

Options: ``--app`` (default ``bridge``, as ``celery -A``), ``--node`` (a
full node name instead), ``--timeout`` (seconds for each step, default 10).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from celery.app.utils import find_app
from celery.utils.imports import cwd_in_path

NODE_PREFIX = {"worker": "celery", "beat": "celerybeat"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.celery.probe", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("kind", choices=sorted(NODE_PREFIX), help="what runs on this host")
    parser.add_argument("--app", default="bridge", help="the Celery app, as celery -A takes it")
    parser.add_argument("--node", help="the node to ping (default: KIND's on this host)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 if the node answers or the broker does not; 1 if only the broker does."""
    args = build_parser().parse_args(argv)
    node = args.node or f"{NODE_PREFIX[args.kind]}@{socket.gethostname()}"
    with cwd_in_path():
        app = find_app(args.app)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=args.timeout)
    except Exception as exc:
        print(
            f"broker unreachable ({type(exc).__name__}: {exc}); not {node}'s fault: passing",
            file=sys.stderr,
        )
        return 0
    replies = app.control.ping(destination=[node], timeout=args.timeout)
    if any(node in reply for reply in replies):
        return 0
    print(
        f"{node} did not answer a ping within {args.timeout:g} s while the broker did",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
