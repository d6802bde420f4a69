"""The report of a comparison: the runs' ``evaluations.npz`` read into two tables (``collect``), the headline
sentences and the tables of each environment, the learning curves, the aggregate across environments, and the
files (``write_report``). Every figure in it is computed from the records alone (seeded bootstrap, no clock), so
``--report-only`` on the same records writes the same report."""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
import pandas as pd

from sb3_tutorial_sac.compare.aggregate import TASK_SCORES, aggregate_markdown, normalise, plot_profile
from sb3_tutorial_sac.compare.plots import plot_curves
from sb3_tutorial_sac.compare.provenance import origin
from sb3_tutorial_sac.compare.records import pooling, version_of
from sb3_tutorial_sac.compare.runs import Record
from sb3_tutorial_sac.compare.specs import FINISHED, MODES, REFERENCE, RunSpec
from sb3_tutorial_sac.compare.verdicts import (
    ALL_PAIRS_UP_TO,
    analyse,
    as_records,
    divergence,
    family_note,
    sentences,
    too_few_seeds,
    unreached_note,
)
from sb3_tutorial_sac.compare.stats import (
    ALPHA,
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    SCORE_LAST,
    Summary,
    common_steps,
    iqm_count,
    pairwise,
    scoring_steps,
    seconds_column,
    summarise,
)

# Threshold on the mean evaluation return used for "env steps to reach" (otherwise the env's reward_threshold)
DEFAULT_THRESHOLDS: dict[str, float] = {"Pendulum-v1": -200.0}
# The policy mode of the headline sentence (SB3's way; the table has both)
HEADLINE_MODE = "deterministic"
EVALUATION_COLUMNS = [
    "env", "algorithm", "seed", "timesteps", "train_seconds", "train_cpu_seconds", "mode", "return_mean", "return_std",
    "episodes", "returns",
]  # fmt: skip
RUN_COLUMNS = ("env_steps", "wall_seconds", "train_seconds", "train_cpu_seconds", "eval_seconds", "steps_per_second")


def collect(specs: Sequence[RunSpec], records: Mapping[str, Record]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every run's ``evaluations.npz`` into two tables.

    :return: ``(evaluations, runs)``: one row per run, evaluation point and mode (``EVALUATION_COLUMNS``;
        ``train_seconds`` / ``train_cpu_seconds``: wall-clock / process CPU training seconds at the evaluation
        point, NaN for a run written before they were recorded), and one row per run (``env, algorithm, algo,
        overrides, seed, status, error`` and ``RUN_COLUMNS``)
    """
    eval_rows, run_rows = [], []
    for spec in specs:
        record = records.get(spec.key, {"status": "missing"})
        run_rows.append(
            {
                "env": spec.env,
                "algorithm": spec.variant.label,
                "algo": spec.variant.algo,
                "overrides": json.dumps(spec.variant.overrides, sort_keys=True),
                **({"defaults": True} if spec.variant.defaults else {}),
                "seed": spec.seed,
                "status": record.get("status"),
                "error": record.get("error", ""),
                **{k: record.get(k, np.nan) for k in RUN_COLUMNS},
                **_provenance_columns(record),
            }
        )
        npz = spec.run_dir() / "evaluations.npz"
        if record.get("status") != "ok" or not npz.is_file():
            continue
        with np.load(npz) as data:
            timesteps = data["timesteps"]
            missing = np.full(len(timesteps), np.nan)
            seconds = data["train_seconds"] if "train_seconds" in data.files else missing
            cpu = data["train_cpu_seconds"] if "train_cpu_seconds" in data.files else missing
            for mode, key in (("deterministic", "results"), ("stochastic", "results_stochastic")):
                for steps, train_seconds, cpu_seconds, returns in zip(timesteps, seconds, cpu, data[key]):
                    eval_rows.append(
                        {
                            "env": spec.env,
                            "algorithm": spec.variant.label,
                            "seed": spec.seed,
                            "timesteps": int(steps),
                            "train_seconds": float(train_seconds),
                            "train_cpu_seconds": float(cpu_seconds),
                            "mode": mode,
                            "return_mean": float(np.mean(returns)),
                            "return_std": float(np.std(returns)),
                            "episodes": len(returns),
                            "returns": " ".join(repr(float(r)) for r in returns),
                        }
                    )
    return pd.DataFrame(eval_rows, columns=EVALUATION_COLUMNS), pd.DataFrame(run_rows)


def _provenance_columns(record: Record) -> dict[str, str]:
    """A run's code version and, in short, its packages, CPU and engine (``compare_run.json``'s provenance)."""
    provenance = record.get("provenance") or {}
    versions = provenance.get("versions") or {}
    packages = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    return {
        "version": version_of(record) if record.get("status") in FINISHED else "",
        "packages": packages,
        "cpu": str(provenance.get("cpu") or ""),
        "engine": str(provenance.get("engine") or ""),
    }


def _code_lines(runs: pd.DataFrame, env: str, log_folder: pathlib.Path) -> list[str]:
    """What the report pooled: code versions (after ``records.pooling``), packages, CPUs and engines (of the finished
    runs, the diverged ones included: they are the grid's runs too)."""
    ok = runs[runs["status"].isin(FINISHED)]
    if not len(ok) or "version" not in ok:
        return []
    versions: dict[str, dict[str, int]] = {}
    for (label, version), group in ok.groupby(["algorithm", "version"], sort=False):
        versions.setdefault(f"{label} {env}", {})[str(version)] = len(group)
    lines = [pooling(log_folder, versions)]
    for column, what in (("packages", "Packages"), ("cpu", "CPU"), ("engine", "TutorialSAC engine")):
        values = [str(v) for v in dict.fromkeys(ok[column].fillna("")) if str(v)]
        if column == "cpu" and len(values) > 1:
            lines.append(_cpu_line(ok))
        elif values:
            lines.append(f"{what}: {'; '.join(values)}.")
    compute = _compute_line(ok)
    if compute:
        lines.append(compute)
    return [" ".join(lines)]


def _cpu_line(ok: pd.DataFrame) -> str:
    """The CPU models of a grid run on several machines, with their run counts, and the seeds whose rows ran on
    different models: a paired difference of CPU seconds at such a seed compares two machines as well as two rows."""
    cpus = ok["cpu"].fillna("").astype(str)
    counts = cpus[cpus != ""].value_counts(sort=False)
    listed = "; ".join(f"{cpu} ({n} run{'s' if n != 1 else ''})" for cpu, n in counts.items())
    mixed = sorted(int(seed) for seed, group in cpus.groupby(ok["seed"]) if group.nunique() > 1)
    if not mixed:
        return f"CPU: {listed}; the rows of each seed ran on one model."
    seeds = ", ".join(map(str, mixed))
    return (
        f"CPU: {listed}; at seed{'s' if len(mixed) != 1 else ''} {seeds} the rows ran on different models, so the "
        "paired CPU-seconds differences of those seeds also compare two machines."
    )


def _diverged_lines(runs: pd.DataFrame) -> list[str]:
    """The runs whose training TutorialSAC's guard stopped at a NaN or an infinity (``specs.FINISHED``), and what that
    does to the verdicts: such a run has no score, so a contrast pairs the seeds where both rows have one."""
    diverged = runs[runs["status"] == "diverged"]
    if not len(diverged):
        return []
    lines = [
        "Diverged: training stopped by TutorialSAC's guard at a NaN or an infinity (`NonFiniteError`), so the run has "
        "no score (its evaluations up to there are in its folder). A contrast pairs the seeds where both rows have a "
        "score, so it leaves out the seeds where a row diverged: read a row's verdicts with its count of diverged runs "
        "(the table's runs column), and with the contrasts' \"runs that diverge\" lines where one row diverged at a "
        "seed where the other did not.",
        "",
    ]
    for _, run in diverged.iterrows():
        at = int(run["env_steps"])  # the env step at which training stopped (the record's diverged_at)
        what = str(run["error"]).split(". ", 1)[0]  # the guard's first sentence: the quantity and the step
        lines.append(f"- {run['algorithm']} seed {run['seed']}: **diverged** at env step {at:,}: {what}.")
    return [*lines, ""]


def _compute_line(ok: pd.DataFrame) -> str:
    """What the pooled runs cost, from their records (``RUN_COLUMNS``): training CPU hours (process CPU time),
    evaluation hours and the runs' wall hours (the records time evaluation by the wall clock only). Empty where no
    run recorded its CPU time."""
    timed = ok[ok["train_cpu_seconds"].notna()] if "train_cpu_seconds" in ok else ok.iloc[:0]
    if not len(timed):
        return ""
    train, evaluation, wall = (
        float(timed[c].fillna(0.0).sum()) / 3600 for c in ("train_cpu_seconds", "eval_seconds", "wall_seconds")
    )
    runs = f"{len(timed)} run{'s' if len(timed) != 1 else ''}"
    return (
        f"Compute ({runs} timed): training {train:.2f} CPU h, evaluation {evaluation:.2f} h (wall clock); "
        f"{wall:.2f} h of wall clock in all."
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == math.inf:
        return "never"
    return f"{value:,.{digits}f}"


def _fmt_ci(ci: tuple[float, float] | None, digits: int = 1) -> str:
    if ci is None or any(v != v for v in ci):  # NaN: fewer than two runs
        return ""
    return f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def _p_value(p: float) -> str:
    return "n/a" if p != p else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _seconds_name(column: str) -> str:
    return "CPU s" if column == "train_cpu_seconds" else "wall s"


def headline(
    evaluations: pd.DataFrame,
    runs: pd.DataFrame,
    threshold: float | None = None,
    reference: str = REFERENCE,
    last: int = SCORE_LAST,
) -> str:
    """The verdicts of one environment (``verdicts.analyse`` and ``verdicts.divergence``), one line per contrast and
    measure: paired by seed where the rows share seeds, Holm within each family, an equivalence test before "cannot be
    told apart", otherwise "inconclusive" with the seeds a verdict would need.

    :param evaluations: the evaluations table of one environment (``collect``)
    :param runs: the runs table of the same environment
    :param threshold: the return to reach (None: no sentence about reaching it)
    :param reference: the row compared with every other one when there are many rows
    :param last: evaluation points a score averages
    """
    env = str(runs["env"].iloc[0]) if len(runs) else ""
    labels = list(dict.fromkeys(runs["algorithm"]))
    results = analyse(evaluations, labels, env, threshold, reference, last) + divergence(runs, labels, reference)
    return "\n".join(sentences(results, threshold))


def markdown_table(
    rows: Sequence[Summary], threshold: float | None, reference: str = REFERENCE, seconds: str = "CPU s"
) -> str:
    """The markdown table of one environment (from ``summarise``)."""
    target = _fmt(threshold, 0) if threshold is not None else "threshold"
    header = ["algorithm", "runs"]
    for mode in MODES:
        header += [f"score, {mode[:5]}. (mean +/- std)", f"IQM {mode[:5]}. [95% CI]"]
    header += [
        f"median env steps to {target}, det. [95% CI] (runs reaching)",
        f"median training {seconds} to {target}, det. [95% CI]",
        "training CPU s per run",
        "training / total wall s per run",
        "env steps per CPU s",
        f"P({reference} > row), det. [95% CI], p",
        f"P({reference} > row), stoch. [95% CI], p",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    mode = HEADLINE_MODE
    for row in rows:
        not_ok = [f"{row[k]} {k}" for k in ("diverged", "failed", "missing") if row.get(k)]
        cells = [row["algorithm"], f"{row['runs']}" + (f" ({', '.join(not_ok)})" if not_ok else "")]
        for m in MODES:
            cells.append(f"{_fmt(row[f'mean_{m}'])} +/- {_fmt(row[f'std_{m}'])}")
            cells.append(f"{_fmt(row[f'iqm_{m}'])}{_fmt_ci(row[f'iqm_{m}_ci'])}")
        for kind in ("steps", "seconds"):
            key = f"{kind}_to_threshold_{mode}"
            if key not in row:
                cells.append("n/a")
                continue
            cell = f"{_fmt(row[key], 0 if kind == 'steps' else 1)}{_fmt_ci(row[f'{key}_ci'], 0 if kind == 'steps' else 1)}"
            cells.append(cell + (f" ({row[f'reached_{mode}']}/{row[f'n_{mode}']})" if kind == "steps" else ""))
        cells.append(_fmt(row["train_cpu_seconds"]))
        cells.append(f"{_fmt(row['train_seconds'])} / {_fmt(row['wall_seconds'])}")
        cells.append(_fmt(row["steps_per_cpu_second"], 0))
        for m in MODES:
            result = row.get(f"versus_{m}")
            cells.append(
                "-" if result is None else f"{result['p']:.2f}{_fmt_ci(result['ci'], 2)}, {_p_value(result['p_value'])}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pairwise_table(rows: Sequence[Summary]) -> str:
    """Every pair of algorithms, both modes, described without pairing: P(X > Y) with its stratified interval and the
    unpaired rank test's uncorrected p (a description: the verdicts are the paired, corrected tests above)."""
    lines = ["| X | Y | mode | P(X > Y) [95% CI] | unpaired rank test p (uncorrected) |", "|---|---|---|---:|---:|"]
    for mode in MODES:
        for pair in pairwise(rows, mode):
            lines.append(
                f"| {pair['x']} | {pair['y']} | {mode} | {pair['p']:.2f}{_fmt_ci(pair['ci'], 2)} | "
                f"{_p_value(pair['p_value'])} ({pair['test']}) |"
            )
    return "\n".join(lines)


def threshold_for(env: str, thresholds: Mapping[str, float] | None) -> float | None:
    """The return threshold of ``env``: given, this module's default, or the env's ``reward_threshold``."""
    if thresholds and env in thresholds:
        return thresholds[env]
    if env in DEFAULT_THRESHOLDS:
        return DEFAULT_THRESHOLDS[env]
    try:
        return gym.spec(env).reward_threshold
    except Exception:  # an env id that gymnasium does not know: no threshold
        return None


def _scoring_sentence(evaluations: pd.DataFrame, last: int) -> str:
    steps = scoring_steps(evaluations, last)
    episodes = sorted(set(int(e) for e in evaluations["episodes"]))
    per_run = ", ".join(str(e * len(steps)) for e in episodes)
    return (
        f"Score of a run: its mean evaluation return at env steps {', '.join(f'{s:,}' for s in steps)} (the last "
        f"{len(steps)} evaluation points that every run has; {'/'.join(map(str, episodes))} episodes each, so "
        f"{per_run} episodes per run and policy mode). The table, the curves and the sentences use these scores."
    )


def _past_budget(evaluations: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """A line per algorithm whose runs trained past the last common evaluation step (recorded before runs stopped
    at the budget): how far, and that the points past it are not scored."""
    if not len(evaluations):
        return []
    last_common = max(common_steps(evaluations), default=0)
    lines = []
    for algorithm, group in runs[runs["status"] == "ok"].groupby("algorithm", sort=False):
        past = group[group["env_steps"] > last_common]
        if len(past):
            low, high = int(past["env_steps"].min()), int(past["env_steps"].max())
            lines.append(
                f"{len(past)} of the {len(group)} `{algorithm}` runs were recorded before training stopped at the budget "
                f"and trained to {low:,}{'' if low == high else f'-{high:,}'} env steps; their evaluations past "
                f"{last_common:,} are in the CSV but not scored."
            )
    return lines


def _provenance(runs: pd.DataFrame, env: str) -> list[str]:
    lines = ["Hyperparameters, where they come from:"]
    if "overrides" not in runs:  # a runs table from before the column
        runs = runs.assign(overrides="{}")
    defaults = runs["defaults"].fillna(False).astype(bool) if "defaults" in runs else pd.Series(False, index=runs.index)
    for (algorithm, algo, overrides, default), _ in runs.assign(defaults=defaults).groupby(
        ["algorithm", "algo", "overrides", "defaults"], sort=False
    ):
        lines.append(f"- `{algorithm}`: {origin(str(algo), env, json.loads(str(overrides)), bool(default))}.")
    return lines


def method_paragraph(reference: str, last: int) -> str:
    """What every number of a report means (written under the tables)."""
    return (
        f"Score: each run's mean evaluation return (raw env rewards) over its last {last} evaluation points common to "
        "all runs of the task; mean +/- std (ddof=0) over runs. IQM: scipy.stats.trim_mean(scores, 0.25), rliable's "
        f"definition: the lowest and highest quarter of the runs, rounded down, are dropped (at 5 runs the mean of the "
        f"middle {iqm_count(5)}, at 10 of the middle {iqm_count(10)}). P(X > Y): probability that a run of X scores "
        "higher than a run of Y (ties count half), unpaired: a description beside the verdicts. Intervals of IQM and P: "
        f"95% percentile bootstrap, {BOOTSTRAP_REPS:,} resamples from seed {BOOTSTRAP_SEED}, each algorithm's runs "
        "resampled on their own (stratified); the unpaired rank test beside P is two-sided Mann-Whitney U, exact, or the "
        "exact permutation test of U when values are tied. Verdicts: see the paragraph under each task's verdicts "
        f"(paired by seed where rows share seeds, Holm within each family, level {ALPHA}; an equivalence test before "
        '"cannot be told apart"); otherwise a sentence says inconclusive. Steps to threshold: the first common '
        "evaluation step whose mean return reaches it (never: not within the budget); "
        "training seconds to it: the run's training seconds "
        "(evaluations excluded) at that step, process CPU time where every run recorded it (one torch thread per run; "
        "CPU time does not count waiting for a core on a shared machine), else wall clock; medians over runs with "
        "bootstrap intervals. Curves: mean over runs with a 95% bootstrap band (5,000 resamples), against env steps "
        "at the common evaluation points (the scoring points shaded) and against training seconds on a log-spaced "
        "time grid (each run's return at a time = its last evaluation at or before that time, its final return after its "
        "end; an algorithm's curve ends at its last evaluation)."
    )


def write_report(
    evaluations: pd.DataFrame,
    runs: pd.DataFrame,
    out_dir: pathlib.Path,
    name: str = "compare",
    thresholds: Mapping[str, float] | None = None,
    reference: str = REFERENCE,
    title: str = "Comparison",
    notes: Sequence[str] = (),
    last: int = SCORE_LAST,
) -> str:
    """Write ``<name>_evaluations.csv``, ``<name>_runs.csv``, ``<name>_<env>.png`` (and ``<name>_profile.png`` for
    several environments with ``sac``) and ``<name>.md``; return the markdown.

    :param evaluations: ``collect``'s evaluations table
    :param runs: ``collect``'s runs table
    :param out_dir: where the files go
    :param name: their names' stem
    :param thresholds: return threshold per environment (otherwise ``threshold_for``'s)
    :param reference: the algorithm each sentence compares with each other one
    :param title: the report's title
    :param notes: paragraphs under the title (protocol, variants)
    :param last: evaluation points a score averages
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluations.to_csv(out_dir / f"{name}_evaluations.csv", index=False)
    runs.to_csv(out_dir / f"{name}_runs.csv", index=False)
    parts = [f"# {title}", ""]
    parts += [f"{note}\n" for note in notes]
    all_results = []
    for env in dict.fromkeys(runs["env"]):
        env_evaluations = evaluations[evaluations["env"] == env]
        env_runs = runs[runs["env"] == env]
        threshold = threshold_for(env, thresholds)
        seconds = _seconds_name(seconds_column(env_evaluations))
        rows = summarise(env_evaluations, env_runs, threshold, reference, last)
        parts += [f"## {env}", ""]
        if len(env_evaluations):
            parts += [_scoring_sentence(env_evaluations, last), ""]
            parts += [f"{line}\n" for line in _past_budget(env_evaluations, env_runs)]
        labels = list(dict.fromkeys(env_runs["algorithm"]))
        results = analyse(env_evaluations, labels, env, threshold, reference, last)
        results += divergence(env_runs, labels, reference)
        all_results += [{"env": env, **record} for record in as_records(results)]
        if results:
            parts += ["Verdicts:", "", *sentences(results, threshold), "", family_note(results, env), ""]
            unreached = unreached_note(env_evaluations, threshold)
            parts += [unreached, ""] if unreached else []
            first_line = too_few_seeds(results)
            if first_line:
                parts[2:2] = [f"{first_line} ({env})", ""]
        parts += [markdown_table(rows, threshold, reference, seconds), ""]
        count = sum(1 for row in rows if row[f"n_{HEADLINE_MODE}"])
        if 2 < count <= ALL_PAIRS_UP_TO:
            parts += ["Every pair, described without pairing:", "", pairwise_table(rows), ""]
        parts += [*_provenance(env_runs, env), ""]
        parts += [f"{line}\n" for line in _code_lines(env_runs, env, out_dir)]
        if len(env_evaluations):
            figure = out_dir / f"{name}_{env}.png"
            plot_curves(env_evaluations, env, figure, threshold, scoring_steps(env_evaluations, last))
            parts += [f"![learning curves on {env}]({figure.name})", ""]
        parts += _diverged_lines(env_runs)
        failed = env_runs[env_runs["status"] == "failed"]
        for _, run in failed.iterrows():
            parts.append(f"- {run['algorithm']} seed {run['seed']}: **failed**: {run['error']}")
        missing = env_runs[env_runs["status"] == "missing"]
        for algorithm, group in missing.groupby("algorithm", sort=False):
            parts.append(f"- {algorithm}: **missing** (not run yet) seeds {', '.join(map(str, group['seed']))}")
        if len(failed) or len(missing):
            parts.append("")
    envs = list(dict.fromkeys(evaluations["env"]))
    if len(envs) > 1:
        parts += aggregate_section(evaluations, out_dir, name, last)
    parts += [method_paragraph(reference, last), ""]
    pd.DataFrame(all_results).to_csv(out_dir / f"{name}_verdicts.csv", index=False)
    text = "\n".join(parts)
    (out_dir / f"{name}.md").write_text(text)
    return text


def aggregate_section(evaluations: pd.DataFrame, out_dir: pathlib.Path, name: str, last: int = SCORE_LAST) -> list[str]:
    """The "Across tasks" section of a report on several environments (``aggregate``), both modes, and its
    performance-profile figures (``<name>_profile_<mode>.png``); a line saying why when it cannot be computed."""
    from sb3_tutorial_sac.compare.aggregate import read_scores

    parts = ["## Across tasks", ""]
    envs = list(dict.fromkeys(evaluations["env"]))
    unknown = [env for env in envs if env not in TASK_SCORES]
    if unknown:
        return [*parts, f"Not computed: no random and reference scores (`aggregate.TASK_SCORES`) for {unknown}.", ""]
    for mode in MODES:
        normalised = normalise(read_scores([evaluations], mode, last))
        figure = out_dir / f"{name}_profile_{mode}.png"
        plot_profile(normalised, figure, f"performance profile, {mode} policy")
        parts += [aggregate_markdown(normalised, mode), "", f"![performance profile, {mode}]({figure.name})", ""]
    parts += [
        "Intervals: stratified bootstrap (runs resampled within each task and algorithm). No exact test across tasks, "
        "so the aggregate P is not turned into a verdict: its interval is reported as above, below or including 0.5, "
        "and with few runs per task it collapses as a single task's does (read the per-task verdicts).",
        "",
    ]
    return parts
