"""mypy holds every backend to the contract: drift fails the type check.

Each case copies a real backend module, changes one thing a careless edit
could change, and runs mypy on the copy. The unchanged copy must pass, so a
failure below is the edit's and not the set-up's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bridge.backends
from bridge.backends import BACKENDS, backend_class
from bridge.contract import Backend

BACKENDS_DIR = Path(bridge.backends.__file__).parent
MEMORY_SOURCE = (BACKENDS_DIR / "memory.py").read_text()


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "drifted_backend.py"
    module.write_text(source)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            str(module),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(BACKENDS_DIR.parent.parent)},
    )


def test_the_unchanged_backend_passes(tmp_path: Path) -> None:
    result = mypy(tmp_path, MEMORY_SOURCE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_method_fails_the_type_check(tmp_path: Path) -> None:
    drifted = MEMORY_SOURCE.replace("def claim_items(", "def claim(")
    assert drifted != MEMORY_SOURCE
    result = mypy(tmp_path, drifted)
    assert result.returncode != 0
    assert re.search(r'abstract attributes? .*"claim_items"', result.stdout), result.stdout


def test_a_changed_signature_fails_the_type_check(tmp_path: Path) -> None:
    drifted = MEMORY_SOURCE.replace(
        "def release_item(self, name: str, item: QueueItem) -> bool:",
        "def release_item(self, name: str, item: QueueItem, now: float) -> bool:",
    )
    assert drifted != MEMORY_SOURCE
    result = mypy(tmp_path, drifted)
    assert result.returncode != 0
    assert "incompatible with supertype" in result.stdout, result.stdout


def test_a_wrong_return_type_fails_the_type_check(tmp_path: Path) -> None:
    drifted = MEMORY_SOURCE.replace(
        "def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:",
        "def delete_items(self, name: str, items: Sequence[QueueItem]) -> bool:",
    )
    assert drifted != MEMORY_SOURCE
    result = mypy(tmp_path, drifted)
    assert result.returncode != 0


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_registered_backend_declares_the_contract(scheme: str) -> None:
    """The guard above holds only for final subclasses of Backend; so every backend is one."""
    cls = backend_class(f"{scheme}://")
    assert issubclass(cls, Backend), f"{cls.__qualname__} must subclass bridge.contract.Backend"
    assert getattr(cls, "__final__", False), f"{cls.__qualname__} must be @typing.final"
