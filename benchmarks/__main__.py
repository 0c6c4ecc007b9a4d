"""``python -m benchmarks``: bridge and its peers side by side, in one run.

    python -m benchmarks --quick                 # CI smoke: every system, tiny cells
    python -m benchmarks --write docs/benchmarks.md --json results.json
    python -m benchmarks --systems bridge:redis,raw:redis,rq

Prints the tables (absolute jobs/s, then bridge/peer ratios against the
targets) and, with ``--write``, the same as Markdown with the machine, the
versions and every system's settings. ``--quick`` runs each system once on a
few hundred jobs: it checks that every adapter works, not how fast it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from benchmarks import celery_path, depth, report
from benchmarks.harness import Cell, CellFailed, Control, Logs, drain_once, enqueue_once
from benchmarks.machine import describe_machine
from benchmarks.services import Services
from benchmarks.systems import FAMILIES, SYSTEMS


class Plan:
    """How big and how many: the quick smoke or the full run."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.consumers = (1,) if quick else (1, 4)
        self.repetitions = 1 if quick else 3
        self.cell_seconds = 3.0  # the full run sizes each cell to last about this long
        self.quick_jobs = 200

    def jobs_for(self, rate: float) -> int:
        return int(min(100_000, max(500, rate * self.cell_seconds)))


def run_system(
    key: str,
    family: str,
    url: str,
    plan: Plan,
    logs: Logs,
    cells: list[Cell],
    settings: dict[str, str],
    services: Services,
) -> None:
    settle = partial(services.settle, family)
    control = Control(key, url, logs)
    try:
        info = control.call(120, "describe")
        label = info["label"]
        settings[key] = f"{label}: {info['settings']}"
        batches = [b for b in (1, 100) if b in info["batches"]]
        single = Cell(family, key, label, "enqueue", 1, 1, plan.quick_jobs)
        bulk = Cell(family, key, label, "enqueue", 1, 100, 0)
        cells += [single, bulk]
        try:
            single.rates.append(enqueue_once(control, batch=1, jobs=plan.quick_jobs, timeout=300))
        except CellFailed as exc:
            single.error = str(exc)
        for batch in batches:
            jobs = plan.quick_jobs
            if not plan.quick:
                try:
                    _, rate = drain_once(
                        key,
                        url,
                        control,
                        logs,
                        consumers=1,
                        batch=batch,
                        jobs=500,
                        timeout=600,
                        settle=settle,
                    )
                    jobs = plan.jobs_for(rate)
                except CellFailed as exc:
                    print(f"  {key}: calibration failed: {exc}", file=sys.stderr)
            for consumers in plan.consumers:
                cell = Cell(family, key, label, "drain", consumers, batch, jobs)
                cells.append(cell)
                for _ in range(plan.repetitions):
                    try:
                        filled, rate = drain_once(
                            key,
                            url,
                            control,
                            logs,
                            consumers=consumers,
                            batch=batch,
                            jobs=jobs,
                            timeout=900,
                            settle=settle,
                        )
                    except CellFailed as exc:
                        cell.error = str(exc)
                        break
                    cell.rates.append(rate)
                    bulk.rates.append(filled)
                    bulk.jobs = max(bulk.jobs, jobs)
                print(
                    f"  {key:28} {consumers} x batch {batch:<3} "
                    f"{report.rate_text(cell.rate) if cell.rate else 'FAILED'} jobs/s",
                    file=sys.stderr,
                    flush=True,
                )
                if cell.error:
                    print(f"    {cell.error}", file=sys.stderr)
    except CellFailed as exc:
        cells.append(Cell(family, key, key, "drain", 1, 1, 0, error=str(exc)))
        print(f"  {key}: {exc}", file=sys.stderr)
    finally:
        control.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke: tiny cells, one each")
    parser.add_argument("--systems", help="comma-separated system keys (default: all)")
    parser.add_argument("--families", help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: systems, depth, celery"
    )
    parser.add_argument("--write", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="run nothing: judge and render the figures of an earlier --json file again",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return _render_saved(args.from_json, args.write)

    plan = Plan(args.quick)
    skip = set(filter(None, args.skip.split(",")))
    families = args.families.split(",") if args.families else list(FAMILIES)
    keys = args.systems.split(",") if args.systems else list(SYSTEMS)
    unknown = [key for key in keys if key not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")

    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    logs = Logs(scratch / "logs")
    services = Services(scratch)
    print(f"benchmarks: logs in {logs.directory}", file=sys.stderr)
    machine = describe_machine(services)
    cells: list[Cell] = []
    settings: dict[str, str] = {}
    if "systems" not in skip:
        for family in families:
            for key in [k for k in keys if services.family_of(k) == family]:
                services.prepare(family)
                run_system(
                    key, family, services.url(family, key), plan, logs, cells, settings, services
                )
    depths = [] if "depth" in skip else depth.run(services, plan.quick, logs, families)
    celery = [] if "celery" in skip else celery_path.run(services, plan.quick, logs)
    elapsed = time.monotonic() - started

    print(report.text(cells, depths, celery))
    print(f"benchmarks: {elapsed:.0f} s", file=sys.stderr)
    if args.write:
        args.write.write_text(
            report.markdown(
                cells, depths, celery, machine, settings, quick=plan.quick, elapsed=elapsed
            )
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                report.as_json(
                    cells, depths, celery, machine, settings, quick=plan.quick, elapsed=elapsed
                ),
                indent=1,
            )
        )
    failed = [cell for cell in cells if cell.error]
    if failed:
        print(f"benchmarks: {len(failed)} cells failed", file=sys.stderr)
    broken = [d.family for d in depths if d.error] + [c.family for c in celery if c.error]
    return 1 if failed or broken else 0


def _render_saved(path: Path, write: Path | None) -> int:
    """``--from-json``: the report of a saved run, under today's targets."""
    try:
        saved = json.loads(path.read_text())
        cells, depths, celery = report.from_json(saved)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"benchmarks: {path} is not a --json file of this harness: {exc}", file=sys.stderr)
        return 2
    print(report.text(cells, depths, celery))
    if write:
        write.write_text(
            report.markdown(
                cells,
                depths,
                celery,
                saved["machine"],
                saved["settings"],
                quick=bool(saved.get("quick", False)),
                elapsed=float(saved.get("elapsed", 0.0)),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
