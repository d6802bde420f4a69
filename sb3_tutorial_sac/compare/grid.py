"""``compare()``: the grid of runs (every environment x variant x seed), run or resumed, and its report."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import pandas as pd

from sb3_tutorial_sac.compare.backends import run_all
from sb3_tutorial_sac.compare.report import aggregate_section, collect, method_paragraph, write_report
from sb3_tutorial_sac.compare.specs import REFERENCE, SCHEDULES, Variant, make_specs
from sb3_tutorial_sac.compare.stats import SCORE_LAST
from sb3_tutorial_sac.zoo import ALGO


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
    last: int = SCORE_LAST,
    schedule: str = "budget",
    engine: str = "auto",
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
    :param last: evaluation points a run's score averages (the last ones common to all runs)
    :param schedule: how the zoo's ``lin_`` schedules meet a budget below its ``n_timesteps`` (``RunSpec.schedule``)
    :param engine: ``TutorialSAC(engine=...)`` of the TutorialSAC rows (``RunSpec.engine``; default: bit for bit)
    :return: the report's markdown and the table of runs (one row per run, with its status and error)
    """
    specs = make_specs(variants, envs, seeds, budget, eval_freq, eval_episodes, log_folder, schedule=schedule, engine=engine)
    records = run_all(specs, backend=backend, jobs=jobs, address=address, progress=progress, report_only=report_only)
    evaluations, runs = collect(specs, records)
    title = "Ablation: one tutorial quirk switched to SB3's choice at a time" if name.startswith("ablation") else "Comparison"
    protocol = protocol_note(budget, eval_freq, eval_episodes, seeds, schedule, engine)
    overrides = [f"- `{v.label}`: {v.description or plain_description(v.algo)} {v.overrides or ''}".rstrip() for v in variants]
    notes = [protocol, "\n".join(overrides), *notes]
    report = write_report(evaluations, runs, log_folder, name, thresholds, REFERENCE, title, notes, last)
    return report, runs


def plain_description(algo: str) -> str:
    """The report's line for a row without overrides (``--algos``): what it trains; where its hyperparameters come
    from is said per task (``report._provenance``)."""
    where = 'which one: "Hyperparameters, where they come from" under each task'
    if algo == ALGO:
        return f"TutorialSAC with the task's `tutorial_sac.yml` entry ({where})"
    return f"rl-zoo3's `{algo}` with its `{algo}.yml` entry for the task, or its defaults where there is none ({where})"


def protocol_note(
    budget: int, eval_freq: int, eval_episodes: int, seeds: Sequence[int], schedule: str = "budget", engine: str = "auto"
) -> str:
    """The report's ``Protocol:`` line: what every run of the grid shared (``make_specs``' arguments)."""
    steps = "zoo n_timesteps" if not budget else f"{budget:,}"
    protocol = (
        f"Protocol: {steps} env steps per run, training stopped at that step for every algorithm (runs recorded before "
        f"this rule are named under their task); every {eval_freq:,} env steps, {eval_episodes} episodes with the "
        f"deterministic and {eval_episodes} with the stochastic policy; seeds {', '.join(map(str, seeds))}; each "
        f"algorithm with its rl-zoo3 hyperparameters ({SCHEDULES[schedule]}; each run's config.yml says what it used)."
    )
    if engine != "auto":
        protocol += f" TutorialSAC's rows train with `engine={engine!r}` (each run's provenance names the engine it used)."
    return protocol


def aggregate_folders(
    folders: Sequence[pathlib.Path], out_dir: pathlib.Path, name: str = "aggregate", last: int = SCORE_LAST
) -> str:
    """The across-task section (``report.aggregate_section``) of several comparisons' evaluation tables
    (``<folder>/compare_evaluations.csv``, as ``write_report`` writes them, or an ablation's
    ``ablation_evaluations.csv``), written to ``<out_dir>/<name>.md``.

    :param folders: log folders of finished comparisons or ablations (one or more environments each)
    :param out_dir: where the report and its figures go
    :param name: the files' stem
    :param last: evaluation points a run's score averages
    :return: the markdown
    """
    tables, paths = [], []
    for folder in folders:
        # a comparison's table, else an ablation's (a task whose grid is its ablation with SAC beside it)
        found = [pathlib.Path(folder) / f"{stem}_evaluations.csv" for stem in ("compare", "ablation")]
        path = next((candidate for candidate in found if candidate.is_file()), found[0])
        if not path.is_file():
            raise ValueError(f"--aggregate: {path} does not exist (run the comparison or its --report-only first)")
        tables.append(pd.read_csv(path))
        paths.append(path)
    evaluations = pd.concat(tables, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = ", ".join(f"`{path.parent.name}/{path.name}`" for path in paths)
    parts = ["# Across tasks", "", f"From the evaluation tables {sources}.", ""]
    parts += aggregate_section(evaluations, out_dir, name, last)[2:]
    parts += [method_paragraph(REFERENCE, last), ""]
    text = "\n".join(parts)
    (out_dir / f"{name}.md").write_text(text)
    return text
