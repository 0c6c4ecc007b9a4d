"""Tables of one run: absolute figures, then bridge/peer ratios against the targets.

A ratio compares bridge and a peer at the same number of consumer
processes. ``batch`` is the claim batch: where a peer has no batched claim,
its batched column is its unbatched figure (what its users can get), and the
ratio says so with "(b1)".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.celery_path import CeleryPath
from benchmarks.depth import Depth
from benchmarks.harness import Cell
from benchmarks.systems import FAMILIES

DRAIN_COLUMNS = ((1, 1), (4, 1), (1, 100), (4, 100))  # (consumers, batch)
OVERHEAD_FLOOR = 1 / 1.2  # bridge within 20% of the raw loop of its backend


@dataclass(frozen=True)
class Target:
    family: str
    peer: str
    minimum: float
    batch: int  # bridge's claim batch; the peer's is the same, or its best below
    consumers: tuple[int, ...] = (1, 4)
    why: str = ""


ONE_ROUND_TRIP = "issue 13: one round trip per job, the raw loop two"
STREAMING = "issue 13: streaming claims"
BATCHED_REDIS = "issue 13: batched claims near the raw script"

TARGETS = (
    Target("postgresql", "pgqueuer", 1.5, 100),
    Target("postgresql", "pgqueuer", 1.0, 1),
    Target("postgresql", "procrastinate", 10.0, 100, why="procrastinate has no batched fetch"),
    Target("postgresql", "celery:postgresql", 20.0, 100),
    Target("postgresql", "raw:postgresql", 0.5, 100),
    Target("redis", "rq", 10.0, 1),
    Target("redis", "celery:redis", 3.0, 1),
    Target("redis", "raw:redis", 0.9, 100, why=BATCHED_REDIS),
    Target("rabbitmq", "raw:rabbitmq", 0.8, 1),
    Target("rabbitmq", "raw:rabbitmq", 0.8, 100),
    Target("rabbitmq", "celery:rabbitmq", 1.2, 1, why=STREAMING),
    Target("rabbitmq", "kombu-consumer:rabbitmq", 0.8, 1, why=STREAMING),
    Target("sqlite", "celery:sqlite", 10.0, 1),
    Target("sqlite", "huey:sqlite", 1.3, 1, why="issue 13: one commit per job"),
    Target("sqlite", "raw:sqlite", 0.9, 1, consumers=(4,), why="issue 13: scales with consumers"),
    # One round trip per job (settle_and_claim) against the raw loop's two.
    Target("postgresql", "raw:postgresql", 1.6, 1, why=ONE_ROUND_TRIP),
    Target("sqlite", "raw:sqlite", 1.6, 1, why=ONE_ROUND_TRIP),
    Target("mariadb", "raw:mariadb", 1.5, 1, why=ONE_ROUND_TRIP),
    Target("redis", "raw:redis", 1.6, 1, why=ONE_ROUND_TRIP),
    *(
        Target(family, f"raw:{family}", OVERHEAD_FLOOR, batch, why="facade overhead < 20%")
        for family in FAMILIES
        for batch in (1, 100)
    ),
)


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate / 1000:.1f}k" if rate >= 10_000 else f"{rate:,.0f}"


def _drain(cells: Iterable[Cell], system: str, consumers: int, batch: int) -> Cell | None:
    for cell in cells:
        if (cell.system, cell.scenario, cell.consumers, cell.batch) == (
            system,
            "drain",
            consumers,
            batch,
        ):
            return cell
    return None


def _best(cells: list[Cell], system: str, consumers: int, batch: int) -> tuple[float, int] | None:
    """The system's rate at ``batch``, or at its largest smaller batch: (rate, batch used)."""
    for used in sorted({c.batch for c in cells if c.system == system}, reverse=True):
        if used <= batch:
            cell = _drain(cells, system, consumers, used)
            if cell is not None and cell.rate is not None:
                return cell.rate, used
    return None


@dataclass
class Judged:
    target: Target
    consumers: int
    ratio: float | None
    note: str

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "not measured"
        return "met" if self.ratio >= self.target.minimum else "MISSED"


def judge(cells: list[Cell]) -> list[Judged]:
    judged = []
    for target in TARGETS:
        for consumers in target.consumers:
            ours = _drain(cells, f"bridge:{target.family}", consumers, target.batch)
            theirs = _best(cells, target.peer, consumers, target.batch)
            if ours is None and theirs is None:
                continue
            if ours is None or ours.rate is None or theirs is None:
                judged.append(Judged(target, consumers, None, "a cell is missing or failed"))
                continue
            rate, used = theirs
            note = f"(b{used})" if used != target.batch else ""
            judged.append(Judged(target, consumers, ours.rate / rate, note))
    return judged


def _systems(cells: list[Cell], family: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for cell in cells:
        if cell.family == family:
            seen.setdefault(cell.system, cell.label)
    return list(seen.items())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _throughput_tables(cells: list[Cell]) -> list[str]:
    lines: list[str] = []
    header = [
        "system",
        *(f"drain {c}x b{b}" for c, b in DRAIN_COLUMNS),
        "enqueue 1 by 1",
        "enqueue b100",
    ]
    for family in FAMILIES:
        systems = _systems(cells, family)
        if not systems:
            continue
        rows = []
        for key, label in systems:
            row = [f"{label} (`{key}`)"]
            for consumers, batch in DRAIN_COLUMNS:
                cell = _drain(cells, key, consumers, batch)
                row.append(
                    "failed" if cell and cell.error else rate_text(cell.rate if cell else None)
                )
            for batch in (1, 100):
                found = [
                    c for c in cells if (c.system, c.scenario, c.batch) == (key, "enqueue", batch)
                ]
                row.append(rate_text(found[0].rate) if found else "-")
            rows.append(row)
        lines += [f"### {family}", "", *_table(header, rows), ""]
    return lines


def _ratio_table(cells: list[Cell]) -> list[str]:
    rows = []
    for judged in judge(cells):
        target = judged.target
        ratio = "-" if judged.ratio is None else f"{judged.ratio:.2f}x {judged.note}".strip()
        rows.append(
            [
                target.family,
                f"`{target.peer}`",
                f"{judged.consumers}x b{target.batch}",
                ratio,
                f">= {target.minimum:.2f}x",
                judged.verdict,
                target.why,
            ]
        )
    return _table(["family", "peer", "cell", "bridge / peer", "target", "verdict", "note"], rows)


def _depth_table(depths: list[Depth]) -> list[str]:
    rows = []
    for result in depths:
        if result.error:
            rows.append([result.family, "failed", "", "", ""])
        for row in result.rows:
            rows.append(
                [
                    result.family,
                    f"{row['depth']:,}",
                    f"{row['median_ms']:.3f}",
                    f"{row['p95_ms']:.3f}",
                    f"{row['mean_ms']:.3f}",
                ]
            )
        if result.growth is not None:
            rows.append(
                [
                    result.family,
                    "deepest / shallowest",
                    f"{result.growth:.2f}x",
                    "target <= 1.50x",
                    "met" if result.growth <= 1.5 else "MISSED",
                ]
            )
    return _table(["backend", "queue depth", "median ms", "p95 ms", "mean ms"], rows)


def _celery_table(celery: list[CeleryPath]) -> list[str]:
    rows = []
    for result in celery:
        if result.error or result.celery is None or result.direct is None:
            rows.append([result.family, "failed", "", ""])
            continue
        rows.append(
            [
                result.family,
                rate_text(result.celery),
                rate_text(result.direct),
                f"{result.celery / result.direct:.2f}x",
            ]
        )
    return _table(
        [
            "queue backend",
            "bridge.process_queue under Celery",
            "process_queue called directly",
            "Celery / direct",
        ],
        rows,
    )


def text(cells: list[Cell], depths: list[Depth], celery: list[CeleryPath] | None) -> str:
    lines = [
        "## Throughput (completed jobs/s; median of the repetitions)",
        "",
        *_throughput_tables(cells),
        "## bridge / peer",
        "",
        *_ratio_table(cells),
        "",
    ]
    if depths:
        lines += ["## Claim latency by queue depth", "", *_depth_table(depths), ""]
    if celery:
        lines += ["## The Celery path (jobs/s)", "", *_celery_table(celery), ""]
    failed = [cell for cell in cells if cell.error]
    if failed:
        lines += ["## Failed cells", ""]
        lines += [
            f"- `{cell.system}` {cell.consumers}x b{cell.batch}: {cell.error.splitlines()[0]}"
            for cell in failed
        ]
    return "\n".join(lines)


def markdown(
    cells: list[Cell],
    depths: list[Depth],
    celery: list[CeleryPath] | None,
    machine: dict[str, Any],
    settings: dict[str, str],
    *,
    quick: bool,
    elapsed: float,
) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    about = [f"- **{key}**: {value}" for key, value in machine.items() if key != "packages"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks --write docs/benchmarks.md`"
        f"{' --quick (smoke sizes: not figures to quote)' if quick else ''}"
        f"{f' in {elapsed / 60:.0f} minutes' if elapsed else ''}. How the harness works, "
        "what each scenario times and why the comparisons are fair: "
        "[benchmarking.md](benchmarking.md).",
        "",
        "## Machine and services",
        "",
        *about,
        f"- **packages**: {packages}",
        "",
        text(cells, depths, celery),
        "",
        "## Settings of every system",
        "",
        *(f"- `{key}`: {line}" for key, line in settings.items()),
        "",
    ]
    return "\n".join(lines)


def as_json(
    cells: list[Cell],
    depths: list[Depth],
    celery: list[CeleryPath] | None,
    machine: dict[str, Any],
    settings: dict[str, str],
    *,
    quick: bool,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "quick": quick,
        "elapsed": elapsed,
        "machine": machine,
        "settings": settings,
        "cells": [{**asdict(cell), "rate": cell.rate} for cell in cells],
        "ratios": [
            {
                "family": j.target.family,
                "peer": j.target.peer,
                "batch": j.target.batch,
                "consumers": j.consumers,
                "ratio": j.ratio,
                "minimum": j.target.minimum,
                "verdict": j.verdict,
            }
            for j in judge(cells)
        ],
        "depth": [asdict(result) for result in depths],
        "celery": [asdict(result) for result in celery or []],
    }


def from_json(saved: dict[str, Any]) -> tuple[list[Cell], list[Depth], list[CeleryPath]]:
    """The figures of an ``as_json`` file, to judge and render again (``--from-json``)."""
    cells = [
        Cell(**{key: value for key, value in cell.items() if key != "rate"})
        for cell in saved["cells"]
    ]
    depths = [Depth(**result) for result in saved.get("depth", [])]
    celery = [CeleryPath(**result) for result in saved.get("celery", [])]
    return cells, depths, celery
