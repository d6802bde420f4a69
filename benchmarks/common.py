"""What every benchmark script shares: one pinned core and one thread, alternating order, the median and its interval.

- **One core.** :func:`pin_from_argv` pins the process to the core ``--core`` names before the script imports numpy,
  torch or JAX, so that every thread they start inherits it (``os.sched_setaffinity`` holds the calling thread only:
  threads started before it keep their cores). A script calls it first, then imports them. Child processes inherit the
  core: :func:`run_pinned` starts one already pinned, so it imports torch on that core too. ``--core -1`` leaves the
  process unpinned.
- **One thread.** :func:`one_thread` sets torch's threads; :func:`xla_single_thread` sets XLA's (before JAX is
  imported).
- **Alternation.** :func:`alternate`: the order of the models (or trees, packages) of a round, reversed every other
  round, so that machine drift cancels between them.
- **The median and its interval.** :func:`median_interval` (order statistics, ``scipy.stats.quantile_test``: no
  assumption on the distribution) and :func:`describe_ratio` (the median of paired ratios, its interval, and whether it
  lies above or below a line).

Nothing here imports numpy, torch or JAX at module level: importing this module does not start their threads.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------------------------
# One core, one thread
# ---------------------------------------------------------------------------------------------------------------


def allowed_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def resolve_core(value: int | str | None) -> int | None:
    """The core ``value`` names: ``"last"`` the last allowed core, None or -1 none (unpinned); checked to be allowed."""
    if value is None:
        return None
    if value == "last":
        return allowed_cores()[-1]
    allowed = allowed_cores()
    if not str(value).lstrip("-").isdigit() or (int(value) != -1 and int(value) not in allowed):
        raise ValueError(f"--core must be one of the cores this process may run on {allowed} or -1, got {value!r}")
    return None if int(value) == -1 else int(value)


def pin(core: int | None) -> int | None:
    """Pin this process (its calling thread, and every thread and child it starts after this) to ``core``; None: leave it.

    :return: the core, or None when not pinned
    """
    if core is not None:
        os.sched_setaffinity(0, {core})
    return core


def core_from_argv(default: int | str | None, argv: Sequence[str] | None = None) -> int | None:
    """The core ``--core N`` (or ``--core=N``) names on the command line, read before argparse runs (so before the
    script imports torch); ``default`` when it names none (``"last"``, a core, or None: unpinned)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    values = [arg.partition("=")[2] for arg in argv if arg.startswith("--core=")]
    values += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--core"]
    return resolve_core(values[-1] if values else default)


def pin_from_argv(default: int | str | None) -> int | None:
    """:func:`pin` to :func:`core_from_argv`: call it before importing numpy, torch or JAX.

    :return: the core, or None when not pinned
    """
    return pin(core_from_argv(default))


def add_core_argument(parser: argparse.ArgumentParser, default: int | str | None) -> None:
    """The ``--core`` option :func:`pin_from_argv` has already read (argparse checks and documents it)."""
    shown = "the last core" if default == "last" else "not pinned" if default is None else f"core {default}"
    parser.add_argument(
        "--core", default=default, help=f"the core to pin the process to, before torch is imported ({shown}; -1: not pinned)"
    )


def one_thread(threads: int = 1) -> None:
    """torch's CPU threads (intra-op) set to ``threads``."""
    import torch as th

    th.set_num_threads(threads)


def xla_single_thread() -> None:
    """XLA's CPU backend on one thread (single-threaded Eigen, one intra-op thread): call before JAX is imported."""
    flags = " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + flags).strip()


def run_pinned(command: list[str], core: int | None, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(command)`` with the child pinned to ``core`` from its start (None: not pinned), so that the
    threads it starts on importing torch are held to that core as well."""
    preexec = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    return subprocess.run(command, preexec_fn=preexec, **kwargs)  # the core set in the child, before exec


def pinned_as(core: int | None) -> str:
    """``"pinned to core N"`` or ``"not pinned"``, for the lines a script prints about its machine."""
    return f"pinned to core {core}" if core is not None else "not pinned"


# ---------------------------------------------------------------------------------------------------------------
# Clocks and alternation
# ---------------------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """This process's CPU time (user and system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def alternate(items: Sequence[T], round_: int) -> list[T]:
    """``items`` in their order on even rounds, reversed on odd ones: each pair of rounds sees every item first once."""
    return list(items) if round_ % 2 == 0 else list(reversed(items))


def timed(function: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean wall time of one of ``calls`` calls, in µs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------------------------
# The median and its interval
# ---------------------------------------------------------------------------------------------------------------


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """
    The distribution-free interval of the median at ``level`` (order statistics: ``scipy.stats.quantile_test``); NaN
    where there are too few values for one (fewer than 6 for 95%: the whole range of 5 covers the median 94%).
    """
    from scipy import stats

    interval = stats.quantile_test(list(values), q=0, p=0.5).confidence_interval(level)
    return float(interval.low), float(interval.high)


def describe_median(values: Sequence[float], level: float = 0.95, digits: int = 3) -> str:
    """``median [low, high]`` (:func:`median_interval`), or ``median (no interval: n values)`` with too few values."""
    low, high = median_interval(values, level)
    median = statistics.median(values)
    if math.isnan(low):
        return f"{median:.{digits}f} (no {level:.0%} interval: {len(values)} values)"
    return f"{median:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def describe_ratio(ratios: Sequence[float], line: float, level: float = 0.95) -> str:
    """``median [interval]`` of paired ratios, and whether the interval lies above ``line``, below it, or includes it
    (inconclusive); with too few values for a ``level`` interval, no verdict."""
    low, high = median_interval(ratios, level)
    if math.isnan(low):
        return f"{statistics.median(ratios):.3f}, no verdict ({len(ratios)} values: too few for a {level:.0%} interval)"
    if low > line:
        verdict = f"above {line:g}"
    elif high < line:
        verdict = f"below {line:g}"
    else:
        verdict = f"inconclusive at {line:g}"
    return f"{statistics.median(ratios):.3f} [{low:.3f}, {high:.3f}] {verdict}"


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Each figure over the one measured next to it (the same repeat or round)."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


# ---------------------------------------------------------------------------------------------------------------
# The compiled engine's loop, alone (profiling.py compiled-loop and ab_trees.py --packages)
# ---------------------------------------------------------------------------------------------------------------


def warmed_up_compiled_model(sb3_sizes: bool = False) -> Any:
    """A TutorialSAC model on Pendulum-v1 with ``engine="compiled"`` (SB3's default sizes with ``sb3_sizes``: networks
    256x256, batch 256) warmed up with ``learn(500)``, its compiled engine checked to be in use; one torch thread."""
    import warnings

    from stable_baselines3.common.logger import Logger

    from sb3_tutorial_sac import TutorialSAC
    from sb3_tutorial_sac.engines import CompiledEngine

    one_thread()
    warnings.simplefilter("ignore", UserWarning)
    sizes: dict[str, Any] = dict(policy_kwargs=dict(net_arch=[256, 256]), batch_size=256) if sb3_sizes else {}
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled", **sizes)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(500)
    engine = model.update_engine
    why = getattr(engine, "unavailable", type(engine).__name__)
    assert isinstance(engine, CompiledEngine) and engine.unavailable is None, f"the compiled engine is not in use: {why}"
    return model


def compiled_loop_inputs(model: Any, steps: int) -> tuple[list[Any], int, int]:
    """The minibatches (copies), steps and target update interval of the compiled loop's call in ``train(steps)``."""
    engine = model.update_engine
    kept: dict[str, Any] = {}
    run_loop = engine._run_loop

    def keep(stacked, steps, stats, target_update_interval):  # the engine's call, recorded once
        kept.setdefault("inputs", ([column.clone() for column in stacked], steps, target_update_interval))
        return run_loop(stacked, steps, stats, target_update_interval)

    engine._run_loop = keep
    try:
        model.train(steps, model.batch_size)
    finally:
        del engine._run_loop
    assert "inputs" in kept, "the compiled loop is not in use"
    return kept["inputs"]
