"""The report of a comparison: the runs' ``evaluations.npz`` read into two tables (``collect``), the headline
sentence and the markdown table of each environment, the learning curves, and the files (``write_report``)."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
import pandas as pd

from sb3_tutorial_sac.compare.plots import plot_curves
from sb3_tutorial_sac.compare.runs import Record
from sb3_tutorial_sac.compare.specs import MODES, REFERENCE, RunSpec
from sb3_tutorial_sac.compare.stats import Summary, summarise

# Threshold on the mean evaluation return used for "env steps to reach" (otherwise the env's reward_threshold)
DEFAULT_THRESHOLDS: dict[str, float] = {"Pendulum-v1": -200.0}
# The policy mode of the headline sentence (SB3's way; the table has both)
HEADLINE_MODE = "deterministic"
EVALUATION_COLUMNS = [
    "env", "algorithm", "seed", "timesteps", "train_seconds", "train_cpu_seconds", "mode", "return_mean", "return_std",
    "episodes", "returns",
]  # fmt: skip


def collect(specs: Sequence[RunSpec], records: Mapping[str, Record]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read every run's ``evaluations.npz`` into two tables.

    :return: ``(evaluations, runs)``: one row per run, evaluation point and mode
        (``env, algorithm, seed, timesteps, train_seconds, mode, return_mean, return_std, episodes, returns``;
        ``train_seconds``: training seconds at the evaluation point, NaN for a run written before they were
        recorded), and one row per run (``env, algorithm, algo, seed, status, error, env_steps, wall_seconds,
        train_seconds, eval_seconds, steps_per_second``)
    """
    eval_rows, run_rows = [], []
    for spec in specs:
        record = records.get(spec.key, {"status": "missing"})
        run_rows.append(
            {
                "env": spec.env,
                "algorithm": spec.variant.label,
                "algo": spec.variant.algo,
                "seed": spec.seed,
                "status": record.get("status"),
                "error": record.get("error", ""),
                **{
                    k: record.get(k, np.nan)
                    for k in (
                        "env_steps",
                        "wall_seconds",
                        "train_seconds",
                        "train_cpu_seconds",
                        "eval_seconds",
                        "steps_per_second",
                    )
                },
            }
        )
        npz = spec.run_dir() / "evaluations.npz"
        if record.get("status") != "ok" or not npz.is_file():
            continue
        with np.load(npz) as data:
            timesteps = data["timesteps"]
            seconds = data["train_seconds"] if "train_seconds" in data.files else np.full(len(timesteps), np.nan)
            cpu = data["train_cpu_seconds"] if "train_cpu_seconds" in data.files else np.full(len(timesteps), np.nan)
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


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _fmt_ci(ci: tuple[float, float] | None, digits: int = 1) -> str:
    if ci is None or any(v != v for v in ci):  # NaN: fewer than two runs
        return ""
    return f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def _to_threshold_cell(row: Summary, kind: str) -> str:
    """``steps`` or ``seconds`` to the threshold, both modes: ``median (reached/runs)`` / ``not reached``."""
    cells = []
    for mode in MODES:
        if f"{kind}_to_threshold_{mode}" not in row:
            cells.append("n/a")
            continue
        median = row[f"{kind}_to_threshold_{mode}"]
        reached = f"{row[f'reached_{mode}']}/{row[f'n_{mode}']}"
        if median == math.inf:
            cells.append(f"not reached ({reached})" if kind == "steps" else "not reached")
        else:
            cells.append(f"{median:.0f} ({reached})" if kind == "steps" else _fmt(median))
    return " / ".join(cells)


def markdown_table(rows: Sequence[Summary], threshold: float | None, reference: str = REFERENCE) -> str:
    """The markdown table of one environment (from ``summarise``)."""
    target = _fmt(threshold, 0) if threshold is not None else "threshold"
    header = ["algorithm", "runs"]
    for mode in MODES:
        header += [f"final return, {mode[:5]}. (mean +/- std)", f"IQM {mode[:5]}. [95% CI]"]
    header += [
        f"median steps to {target} (det. / stoch.)",
        f"median train s to {target} (det. / stoch.)",
        "s per run (train / total)",
        "env steps/s",
        f"P({reference} > row), det. [95% CI]",
        f"P({reference} > row), stoch. [95% CI]",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        not_ok = [f"{row[k]} {k}" for k in ("failed", "missing") if row.get(k)]
        cells = [row["algorithm"], f"{row['runs']}" + (f" ({', '.join(not_ok)})" if not_ok else "")]
        for mode in MODES:
            cells.append(f"{_fmt(row[f'mean_{mode}'])} +/- {_fmt(row[f'std_{mode}'])}")
            cells.append(f"{_fmt(row[f'iqm_{mode}'])}{_fmt_ci(row[f'iqm_{mode}_ci'])}")
        cells.append(_to_threshold_cell(row, "steps"))
        cells.append(_to_threshold_cell(row, "seconds"))
        cells.append(f"{_fmt(row['train_seconds'])} / {_fmt(row['wall_seconds'])}")
        cells.append(_fmt(row["steps_per_second"], 0))
        for mode in MODES:
            if f"p_improvement_{mode}" in row:
                cells.append(f"{row[f'p_improvement_{mode}']:.2f}{_fmt_ci(row[f'p_improvement_{mode}_ci'], 2)}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fewer(names: tuple[str, str], values: tuple[float, float]) -> tuple[str | None, float, float]:
    """The one of the two with the lower value (None for a tie), its value and the other's."""
    (winner, best), (_, worst) = sorted(zip(names, values), key=lambda item: item[1])
    return (None if best == worst else winner), best, worst


def _threshold_clause(ref: Summary, other: Summary, threshold: float | None) -> str:
    """Which of the two reaches the threshold in fewer env steps and in fewer training seconds (medians over runs)."""
    mode = HEADLINE_MODE
    if threshold is None or f"steps_to_threshold_{mode}" not in ref or f"steps_to_threshold_{mode}" not in other:
        return "there is no return threshold to reach on this task"
    target, pair = _fmt(threshold, 0), (ref, other)
    names = (ref["algorithm"], other["algorithm"])
    steps = (ref[f"steps_to_threshold_{mode}"], other[f"steps_to_threshold_{mode}"])
    seconds = (ref[f"seconds_to_threshold_{mode}"], other[f"seconds_to_threshold_{mode}"])
    reached = [f"{row['algorithm']}: {row[f'reached_{mode}']} of {row[f'n_{mode}']} runs" for row in pair]
    finite = [math.isfinite(s) for s in steps]
    if not any(finite):
        return f"neither reaches {target} in more than half of its runs ({', '.join(reached)})"
    if not all(finite):
        i = finite.index(True)
        to_seconds = f", {seconds[i]:.1f} training seconds" if not math.isnan(seconds[i]) else ""
        return (
            f"only {names[i]} reaches {target} in more than half of its runs (median {steps[i]:,.0f} env steps{to_seconds}; "
            f"{reached[1 - i]})"
        )
    winner, best, worst = _fewer(names, steps)
    if winner is None:
        clause = f"both reach {target} in a median {best:,.0f} env steps"
    else:
        clause = f"{winner} reaches {target} in fewer env steps (median {best:,.0f} against {worst:,.0f})"
    if any(math.isnan(s) for s in seconds):
        return clause + " (training seconds to it not recorded)"
    seconds_winner, best, worst = _fewer(names, seconds)
    if seconds_winner is None:
        return clause + f"{' and' if winner is None else ', both in'} a median {best:.1f} training seconds"
    if seconds_winner == winner:
        return clause + f" and in fewer training seconds (median {best:.1f} s against {worst:.1f} s)"
    return clause + f", {seconds_winner} in fewer training seconds (median {best:.1f} s against {worst:.1f} s)"


def _versus(ref: Summary, other: Summary, threshold: float | None) -> str:
    """The headline sentence of the reference against one other algorithm."""
    mode = HEADLINE_MODE
    for row in (ref, other):
        if not row[f"n_{mode}"]:
            return f"{row['algorithm']} has no finished run to compare ({ref['algorithm']} against {other['algorithm']})."
    names = (ref["algorithm"], other["algorithm"])
    finals = (ref[f"iqm_{mode}"], other[f"iqm_{mode}"])
    if finals[0] == finals[1]:
        final = f"{names[0]} and {names[1]} end level (final return, IQM over runs: {finals[0]:.1f} each)"
    else:
        (winner, high), (loser, low) = sorted(zip(names, finals), key=lambda item: -item[1])
        final = f"{winner} ends higher than {loser} (final return, IQM over runs: {high:.1f} against {low:.1f})"
    return f"With the {mode} policy, {final}; {_threshold_clause(ref, other, threshold)}."


def headline_from_rows(rows: Sequence[Summary], threshold: float | None, reference: str = REFERENCE) -> str:
    """The headline of one environment from ``summarise``'s rows: one sentence per algorithm other than the
    reference (a list when there are several); empty when the reference is not in the rows."""
    ref = next((row for row in rows if row["algorithm"] == reference), None)
    if ref is None:
        return ""
    sentences = [_versus(ref, row, threshold) for row in rows if row["algorithm"] != reference]
    return sentences[0] if len(sentences) == 1 else "\n".join(f"- {sentence}" for sentence in sentences)


def headline(evaluations: pd.DataFrame, runs: pd.DataFrame, threshold: float | None = None, reference: str = REFERENCE) -> str:
    """The answer first: for one environment, which algorithm ends higher (final deterministic return, IQM over
    runs) and which reaches ``threshold`` in fewer env steps and in fewer training seconds (medians over runs),
    the reference against each other algorithm; a side that does not reach the threshold in more than half of its
    runs is named as such.

    :param evaluations: the evaluations table of one environment (``collect``)
    :param runs: the runs table of the same environment
    :param threshold: the return to reach (None: the sentence says there is none)
    :param reference: the algorithm compared with each other one
    """
    return headline_from_rows(summarise(evaluations, runs, threshold, reference), threshold, reference)


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


def write_report(
    evaluations: pd.DataFrame,
    runs: pd.DataFrame,
    out_dir: pathlib.Path,
    name: str = "compare",
    thresholds: Mapping[str, float] | None = None,
    reference: str = REFERENCE,
    title: str = "Comparison",
    notes: Sequence[str] = (),
) -> str:
    """Write ``<name>_evaluations.csv``, ``<name>_runs.csv``, ``<name>_<env>.png`` and ``<name>.md``; return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluations.to_csv(out_dir / f"{name}_evaluations.csv", index=False)
    runs.to_csv(out_dir / f"{name}_runs.csv", index=False)
    parts = [f"# {title}", ""]
    for env in dict.fromkeys(runs["env"]):
        env_evaluations = evaluations[evaluations["env"] == env]
        env_runs = runs[runs["env"] == env]
        threshold = threshold_for(env, thresholds)
        rows = summarise(env_evaluations, env_runs, threshold, reference)
        parts += [f"## {env}", ""]
        sentence = headline_from_rows(rows, threshold, reference)
        if sentence:
            parts += [sentence, ""]
        parts += [markdown_table(rows, threshold, reference), ""]
        if len(env_evaluations):
            figure = out_dir / f"{name}_{env}.png"
            plot_curves(env_evaluations, env, figure, threshold)
            parts += [f"![learning curves on {env}]({figure.name})", ""]
        failed = env_runs[env_runs["status"] == "failed"]
        for _, run in failed.iterrows():
            parts.append(f"- {run['algorithm']} seed {run['seed']}: **failed**: {run['error']}")
        missing = env_runs[env_runs["status"] == "missing"]
        for algorithm, group in missing.groupby("algorithm", sort=False):
            parts.append(f"- {algorithm}: **missing** (not run yet) seeds {', '.join(map(str, group['seed']))}")
        if len(failed) or len(missing):
            parts.append("")
    parts += [
        "Final return: mean evaluation return at the last evaluation point of each run (raw env rewards); mean +/- "
        "std (ddof=0) over runs; IQM = mean of the middle 50% of runs; CIs: 95% percentile bootstrap over runs. "
        f"P({reference} > row): probability that a run of {reference} scores higher than a run of the row's "
        "algorithm (ties count half). Steps to threshold: median over runs of the first evaluation step whose "
        "mean return reaches it; train s to threshold: median over runs of the training seconds (evaluation "
        "excluded) at that step. Seconds per run: training (evaluation excluded) / total; env steps/s: training. "
        f"The sentence under each heading reads the {HEADLINE_MODE} columns. Curves: mean over runs with a 95% "
        "bootstrap band, against env steps and against training seconds; runs are evaluated at the same env steps, "
        "not at the same seconds, so each point of a seconds curve is the mean return over runs at one evaluation "
        "step, placed at the mean training seconds over runs at that step.",
        "",
    ]
    parts += [f"{note}\n" for note in notes]
    text = "\n".join(parts)
    (out_dir / f"{name}.md").write_text(text)
    return text
