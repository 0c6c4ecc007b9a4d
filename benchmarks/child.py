"""One role of one system, in a process of its own: ``python -m benchmarks.child``.

Two roles:

``control KEY URL``
    Reads one JSON command per line on stdin and answers one JSON line on
    stdout: ``{"op": "reset"}``, ``{"op": "enqueue", "count": n, "batch": b}``
    (answers the seconds the enqueue took), ``{"op": "remaining"}``,
    ``{"op": "describe"}`` (label, family, batch sizes, settings).
``drain KEY URL BATCH``
    Builds the system (connections opened, nothing claimed), prints
    ``{"ready": true}``, waits for one line on stdin, drains the queue and
    prints ``{"count": n, "last": monotonic}``.

Anything a system prints itself goes to stderr, so stdout carries only the
protocol. A failure prints ``{"error": "..."}`` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

from benchmarks.systems import load
from benchmarks.systems.base import System


def _reply(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _control(system: System, out: TextIO) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "describe":
            _reply(
                out,
                {
                    "label": system.label,
                    "family": system.family,
                    "batches": list(system.batches),
                    "settings": system.settings,
                },
            )
        elif op == "reset":
            system.reset()
            _reply(out, {"ok": True})
        elif op == "enqueue":
            started = time.perf_counter()
            system.enqueue(command["count"], command["batch"])
            _reply(out, {"elapsed": time.perf_counter() - started})
        elif op == "remaining":
            _reply(out, {"remaining": system.remaining()})
        elif op == "quit":
            return
        else:
            raise ValueError(f"unknown op {op!r}")


def _drain(system: System, batch: int, out: TextIO) -> None:
    _reply(out, {"ready": True})
    sys.stdin.readline()
    drained = system.drain(batch)
    _reply(out, {"count": drained.count, "last": drained.last})


def main(argv: list[str]) -> int:
    role, key, url, *rest = argv
    # The protocol owns the real stdout; a peer's prints and logs go to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    system = None
    try:
        system = load(key)(url)
        if role == "control":
            _control(system, out)
        elif role == "drain":
            _drain(system, int(rest[0]), out)
        else:
            raise ValueError(f"unknown role {role!r}")
    except BaseException as exc:  # report anything, even SystemExit from a peer
        traceback.print_exc()
        _reply(out, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        if system is not None:
            system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
