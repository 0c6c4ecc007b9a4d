"""Claim latency as the queue grows, for bridge on PostgreSQL and Redis.

Runs ``benchmarks.claim_depth`` in a process of its own per backend. A
queue's claim must cost about the same at 1M items as at 1k: the claim
walks an index from its head (PostgreSQL) or pops a sorted set's head
(Redis), and neither grows with the queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import ROOT, Logs, child_env
from benchmarks.services import Services

FULL_DEPTHS = (1000, 100_000, 1_000_000)
QUICK_DEPTHS = (1000, 10_000)


@dataclass
class Depth:
    family: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def growth(self) -> float | None:
        """Median claim time at the deepest queue over that at the shallowest."""
        if len(self.rows) < 2:
            return None
        return float(self.rows[-1]["median_ms"] / self.rows[0]["median_ms"])


def run(services: Services, quick: bool, logs: Logs, families: list[str]) -> list[Depth]:
    results = []
    for family in ("postgresql", "redis"):
        if family not in families:
            continue
        services.prepare(family)
        depths = QUICK_DEPTHS if quick else FULL_DEPTHS
        result = Depth(family)
        results.append(result)
        with logs.open(f"bridge:{family}", "depth") as log:
            command = [
                sys.executable,
                "-m",
                "benchmarks.claim_depth",
                "--json",
                "--url",
                services.url(family),
                "--claims",
                "200" if quick else "2000",
                "--depths",
                *map(str, depths),
            ]
            done = subprocess.run(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=child_env(),
                cwd=ROOT,
                timeout=1800,
                check=False,
            )
            if done.returncode:
                result.error = f"claim_depth exited with {done.returncode}\n{Logs.tail(log)}"
            else:
                result.rows = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
        print(
            f"  depth {family}: "
            + ", ".join(f"{row['depth']}: {row['median_ms']:.3f} ms" for row in result.rows),
            file=sys.stderr,
            flush=True,
        )
    return results
