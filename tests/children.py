"""Child processes the backend tests kill: a claimer SIGKILLed while it holds an item."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from typing import Any

CLAIMER = textwrap.dedent("""
    import json, sys, time
    import bridge

    spec, name = json.loads(sys.argv[1]), sys.argv[2]
    queue = bridge.QueueFactory(default=spec).get(name)
    item = queue.claim_item(lease_time=float(sys.argv[3]))
    print(json.dumps(item.item_id if item else None), flush=True)
    time.sleep(600)
""")


def claim_in_a_process_and_kill_it(spec: dict[str, Any], name: str, lease: float) -> Any:
    """A child process claims one item and is SIGKILLed holding it; the item id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, json.dumps(spec), name, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read().decode() if child.stderr else "no output"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        return json.loads(line)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
