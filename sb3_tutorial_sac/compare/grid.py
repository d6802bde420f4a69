"""``compare()``: the grid of runs (every environment x variant x seed), run or resumed, and its report."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import pandas as pd

from sb3_tutorial_sac.compare.backends import run_all
from sb3_tutorial_sac.compare.report import collect, write_report
from sb3_tutorial_sac.compare.specs import REFERENCE, Variant, make_specs


def compare(
    variants: Sequence[Variant],
    envs: Sequence[str] = ("Pendulum-v1",),
    seeds: Sequence[int] = (0, 1, 2),
    budget: int = 0,
    eval_freq: int = 1000,
    eval_episodes: int = 10,
    log_folder: pathlib.Path = pathlib.Path("logs/compare"),
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    name: str = "compare",
    progress: bool = True,
    thresholds: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    report_only: bool = False,
) -> tuple[str, pd.DataFrame]:
    """Run (or resume) the grid and write the report into ``log_folder``.

    :param variants: the algorithms (rows of the tables)
    :param envs: environment ids
    :param seeds: seeds of every variant and environment
    :param budget: env steps per run (0: the zoo's ``n_timesteps``)
    :param eval_freq: evaluate every this many env steps
    :param eval_episodes: episodes per evaluation and policy mode
    :param log_folder: runs (rl-zoo3's layout) and report
    :param backend: ``local`` (worker processes) or ``ray``
    :param jobs: parallel runs of the local backend
    :param address: Ray cluster address
    :param name: file names of the report (``<name>.md``, ``<name>_evaluations.csv``, ...)
    :param progress: live progress display
    :param thresholds: return threshold per environment (otherwise the defaults)
    :param notes: paragraphs appended to the report
    :param report_only: train nothing; report what has finished
    :return: the report's markdown and the table of runs (one row per run, with its status and error)
    """
    specs = make_specs(variants, envs, seeds, budget, eval_freq, eval_episodes, log_folder)
    records = run_all(specs, backend=backend, jobs=jobs, address=address, progress=progress, report_only=report_only)
    evaluations, runs = collect(specs, records)
    title = "Ablation: one tutorial quirk switched to SB3's choice at a time" if name == "ablation" else "Comparison"
    protocol = (
        f"Protocol: {'zoo n_timesteps' if not budget else f'{budget}'} env steps per run; every {eval_freq} env steps, "
        f"{eval_episodes} episodes with the deterministic and {eval_episodes} with the stochastic policy; seeds "
        f"{', '.join(map(str, seeds))}; each algorithm with its rl-zoo3 hyperparameters."
    )
    overrides = [f"- `{v.label}`: {v.description or v.algo} {v.overrides or ''}".rstrip() for v in variants]
    report = write_report(
        evaluations, runs, log_folder, name, thresholds, REFERENCE, title, [protocol, "\n".join(overrides), *notes]
    )
    return report, runs
