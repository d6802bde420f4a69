"""Provenance of one run: the code (commit, dirty tree), the packages, the machine, the threads and the engine
that produced it, written into every run's ``compare_run.json`` so a report can say what it pooled."""

from __future__ import annotations

import functools
import importlib.metadata
import pathlib
import platform
import subprocess
from typing import Any

# Packages whose versions every record names (the distribution names)
PACKAGES = (
    "sb3-tutorial-sac",
    "stable-baselines3",
    "sb3-contrib",
    "rl-zoo3",
    "torch",
    "gymnasium",
    "numpy",
    "mujoco",
    "box2d",
)
# What the commit's dirty flag looks at: the code and hyperparameters a run executes (not the records a grid
# writes into the same checkout)
SOURCE_PATHS = ("sb3_tutorial_sac", "hyperparams", "pyproject.toml")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(root: pathlib.Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@functools.cache
def code_provenance() -> dict[str, Any]:
    """The commit of the checkout this package is imported from and whether its source differs from it.

    ``commit`` is None for an installed copy that is not a git checkout; ``dirty`` is None then too.
    """
    root = pathlib.Path(__file__).resolve().parents[2]
    commit = _git(root, "rev-parse", "HEAD") if (root / "sb3_tutorial_sac").is_dir() else None
    status = _git(root, "status", "--porcelain", "--", *SOURCE_PATHS) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status), "source": str(root)}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_provenance(model: Any, threads: int) -> dict[str, Any]:
    """Everything a record needs to say what produced it.

    :param model: the trained model (its engine is named where it has one: TutorialSAC)
    :param threads: torch CPU threads of the run
    """
    engine = getattr(model, "update_engine", None)
    return {
        **code_provenance(),
        "versions": {package: _version(package) for package in PACKAGES},
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "threads": threads,
        "engine": type(engine).__name__ if engine is not None else None,
        "engine_setting": getattr(model, "engine", None),
    }
