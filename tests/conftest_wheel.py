"""The project's wheel, built once per test session for the tests that check what it ships."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# pip's words when it cannot reach a registry for the build backend.
_OFFLINE_HINTS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of this checkout (10-20 s, once): the path of the one .whl it made.

    Skips when the build backend cannot be fetched (an offline registry); fails on any
    other build error.
    """
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--retries", "0", "--timeout", "20"]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.append("--no-build-isolation")  # no registry needed
    cmd += ["-w", str(out), str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        if any(hint in log for hint in _OFFLINE_HINTS):
            pytest.skip("cannot fetch hatchling to build the wheel (offline registry)")
        pytest.fail(f"pip wheel failed:\n{log[-3000:]}")
    wheels = list(out.glob("fluxcompose-*.whl"))
    assert len(wheels) == 1
    return wheels[0]
