"""The verdicts of a report: which contrasts are tested, paired by seed where the rows share seeds, corrected for
multiplicity (Holm within each family), with an equivalence test before any "cannot be told apart" and the seeds a
verdict would need.

A contrast compares two rows of one task on one measure: the final score (each policy mode), the env steps to the
threshold and the training CPU seconds to it (the deterministic policy). A family is one measure, one mode and one
kind of test (difference or equivalence) over the contrasts of one task; Holm's step-down correction keeps its
family-wise error at ``ALPHA``. The contrasts are every pair of rows when a task has at most ``ALL_PAIRS_UP_TO``
rows; otherwise (the ablation) the reference against every other row and ``all_fixes`` against each of its
leave-one-out rows.

Sentences:

* "X ends higher than Y" (or "reaches the threshold in fewer ..."): the Holm-adjusted p of the test (paired:
  the exact signed-rank test of the per-seed differences; unpaired: the exact rank-sum test) is below ``ALPHA``;
* "X and Y cannot be told apart within +/- m": the Holm-adjusted equivalence test (TOST) is below ``ALPHA``, with
  the margin m = ``EQUIVALENCE_FRACTION`` of the task's random-to-reference range (``aggregate.TASK_SCORES``);
  said beside a difference when both hold (a difference too small to matter);
* otherwise "inconclusive", with the seeds a verdict would need at the observed effect (80% power at ``ALPHA / m``
  for a family of m tests, the level of Holm's strictest step: enough for the corrected verdict).

A run that TutorialSAC's guard stopped (status ``diverged``) has no score, so the contrasts above pair only the seeds
where both rows have one. Where some seed diverged in one row of a contrast and not in the other, the contrast is
also tested on that: "X diverges at more seeds than Y" when the exact McNemar test (two-sided binomial test of the
seeds where exactly one of the two rows diverged) is below ``ALPHA`` after Holm over its own family (``divergence``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sb3_tutorial_sac.compare import paired
from sb3_tutorial_sac.compare.aggregate import TASK_SCORES
from sb3_tutorial_sac.compare.specs import REFERENCE
from sb3_tutorial_sac.compare.stats import SCORE_LAST, first_reaching, scores, seconds_column

ALPHA = paired.ALPHA
# Every pair of rows is a contrast up to this many rows; above (the ablation), the reference against each row
ALL_PAIRS_UP_TO = 5
# The equivalence margin: this fraction of the task's random-to-reference range (TASK_SCORES)
EQUIVALENCE_FRACTION = 0.05
# The measures, in the order sentences give them: (measure, mode)
MEASURES = (("score", "deterministic"), ("score", "stochastic"), ("steps", "deterministic"), ("seconds", "deterministic"))


@dataclasses.dataclass
class Result:
    """One test of one contrast."""

    x: str
    y: str
    measure: str
    mode: str
    kind: str  # "difference" or "equivalence"
    paired: bool
    n: tuple[int, int]
    difference: float  # mean of x - y (paired: per seed; unpaired: of the means), in the measure's units
    ci: tuple[float, float]
    wins: int  # seeds where x is better (paired): higher score, fewer steps or seconds
    p: float
    test: str
    seeds_needed: float  # at ALPHA / family_size (Holm's strictest step), set by analyse
    margin: float = math.nan
    p_holm: float = math.nan
    effect: float = math.nan  # standardised: d_z paired, Cohen's d unpaired (paired.effect_size)
    family_size: int = 1
    anchor: str = "every pair"  # the contrasts' common row where a task has more than ALL_PAIRS_UP_TO rows

    @property
    def family(self) -> tuple[str, str, str, str]:
        return self.measure, self.mode, self.kind, self.anchor


def contrasts(labels: Sequence[str], reference: str = REFERENCE) -> list[tuple[str, str]]:
    """The pairs of rows a task's report tests, in the rows' order."""
    labels = list(dict.fromkeys(labels))
    if len(labels) <= ALL_PAIRS_UP_TO:
        return [(x, y) for i, x in enumerate(labels) for y in labels[i + 1 :]]
    leave_one_out = [label for label in labels if label.startswith("all_fixes_but_")]
    pairs = [(reference, label) for label in labels if label not in (reference, *leave_one_out)] if reference in labels else []
    if "all_fixes" in labels:
        pairs += [("all_fixes", label) for label in leave_one_out]
    return pairs


def margin_for(env: str) -> float:
    """The equivalence margin of ``env`` (NaN where ``TASK_SCORES`` has no entry: no equivalence test)."""
    task = TASK_SCORES.get(env)
    return EQUIVALENCE_FRACTION * abs(task.span) if task is not None else math.nan


def _by_seed(series: pd.Series, algorithm: str, mode: str) -> pd.Series:
    index = series.index
    part = series[(index.get_level_values("algorithm") == algorithm) & (index.get_level_values("mode") == mode)]
    return pd.Series(part.to_numpy(dtype=float), index=part.index.get_level_values("seed")).sort_index()


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times to a threshold with "never" (inf) replaced by a value above every time reached (both never: a tie)."""
    both = np.concatenate([x, y])
    finite = both[np.isfinite(both)]
    cap = (finite.max() * 2 + 1) if len(finite) else 1.0
    return np.where(np.isfinite(x), x, cap), np.where(np.isfinite(y), y, cap)


def _test(x_series: pd.Series, y_series: pd.Series, x: str, y: str, measure: str, mode: str, margin: float) -> list[Result]:
    common = x_series.index.intersection(y_series.index)
    is_paired = len(common) > 0
    if is_paired:
        a, b = x_series.loc[common].to_numpy(), y_series.loc[common].to_numpy()
    else:
        a, b = x_series.to_numpy(), y_series.to_numpy()
    if measure != "score":  # fewer steps or seconds is better: the difference is y - x
        a, b = _finite(a, b)
        a, b = -a, -b
    n = (len(a), len(b))
    if not (len(a) and len(b)):
        return []
    if is_paired:
        d = a - b
        difference = float(np.mean(d))
        ci = paired.paired_ci(a, b)
        wins = int((d > 0).sum())
        p = paired.signed_rank_test(d)
        test = "signed-rank"
    else:
        from sb3_tutorial_sac.compare.stats import bootstrap_ci

        difference = float(np.mean(a) - np.mean(b))

        def mean_difference(u: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
            return np.asarray(np.mean(u, axis=axis) - np.mean(v, axis=axis), dtype=float)

        low, high = bootstrap_ci(mean_difference, a, b)
        ci, wins = (float(low), float(high)), 0
        from sb3_tutorial_sac.compare.stats import rank_test

        p, test = rank_test(a, b)
        test = "rank-sum" if test == "exact U" else "rank-sum permutation"
    effect = paired.effect_size(a, b, paired=is_paired)
    needed = math.nan  # analyse sizes it at its family's level, once the families are known
    if measure != "score":  # back to the measure's units: x - y steps or seconds (negative: x reaches it first)
        # + 0.0: a tie is 0, not -0 (printed "-0")
        difference, ci = -difference + 0.0, (-ci[1] + 0.0, -ci[0] + 0.0)
    results = [Result(x, y, measure, mode, "difference", is_paired, n, difference, ci, wins, p, test, needed, effect=effect)]
    if measure == "score" and np.isfinite(margin):
        p_equivalent = paired.tost(a, b, margin, paired=is_paired)
        results.append(dataclasses.replace(results[0], kind="equivalence", p=p_equivalent, test="TOST", margin=margin))
    return results


def reached(evaluations: pd.DataFrame, threshold: float) -> bool:
    """Whether some run reaches ``threshold`` with the deterministic policy (the time-to-threshold measures' mode).
    Where none does, every time to it is "never" and every contrast on it a tie that cannot reject: ``analyse``
    tests nothing on it and the report says so (``unreached_note``)."""
    steps = first_reaching(evaluations, threshold, "timesteps")
    return bool(np.isfinite(steps[steps.index.get_level_values("mode") == "deterministic"]).any())


def unreached_note(evaluations: pd.DataFrame, threshold: float | None) -> str:
    """The report's line for a task whose runs never reach its threshold (else empty)."""
    if threshold is None or not len(evaluations) or reached(evaluations, threshold):
        return ""
    return (
        f"No run reaches {threshold:,.0f} with the deterministic policy within the budget, so there is no time-to-"
        "threshold verdict (every contrast on it would be a tie)."
    )


def analyse(
    evaluations: pd.DataFrame,
    labels: Sequence[str],
    env: str,
    threshold: float | None,
    reference: str = REFERENCE,
    last: int = SCORE_LAST,
) -> list[Result]:
    """Every test of one task's contrasts, with Holm-adjusted p-values within each family."""
    if not len(evaluations):
        return []
    score = scores(evaluations, last)
    tables: dict[str, pd.Series] = {"score": score}
    if threshold is not None and reached(evaluations, threshold):
        tables["steps"] = first_reaching(evaluations, threshold, "timesteps")
        column = seconds_column(evaluations)
        if column == "train_cpu_seconds":  # only CPU seconds are compared (wall clock depends on the machine's load)
            tables["seconds"] = first_reaching(evaluations, threshold, column)
    margin = margin_for(env)
    present = [label for label in labels if label in set(score.index.get_level_values("algorithm"))]
    results: list[Result] = []
    for x, y in contrasts(present, reference):
        for measure, mode in MEASURES:
            if measure not in tables:
                continue
            table = tables[measure]
            tests = _test(_by_seed(table, x, mode), _by_seed(table, y, mode), x, y, measure, mode, margin)
            for test in tests:
                test.anchor = "every pair" if len(present) <= ALL_PAIRS_UP_TO else x
            results += tests
    families: dict[tuple[str, str, str, str], list[Result]] = {}
    for result in results:
        families.setdefault(result.family, []).append(result)
    for members in families.values():
        for result, adjusted in zip(members, paired.holm([r.p for r in members])):
            result.p_holm = adjusted
            # The seeds a verdict needs after Holm: sized at ALPHA / m, the level of Holm's strictest step, so a
            # printed count is enough for the corrected test and not only for the uncorrected one
            result.family_size = len(members)
            result.seeds_needed = paired.seeds_for_effect(result.effect, result.paired, ALPHA / len(members))
    return results


def divergence(runs: pd.DataFrame, labels: Sequence[str], reference: str = REFERENCE) -> list[Result]:
    """The divergence contrasts of one task: per contrast (``contrasts``), the seeds where both rows finished (status
    ``ok`` or ``diverged``, ``specs.FINISHED``), tested by the exact McNemar test: under "both rows diverge equally
    often", each seed where exactly one row diverged is that row's with probability 1/2 (a two-sided binomial test
    of those discordant seeds). Holm within its own family (measure ``diverged``).

    Only contrasts with a discordant seed enter the family: one with none cannot reject at any level, and leaving such
    tests out of the correction keeps its family-wise error (Tarone, 1990). ``difference`` is the share of the paired
    seeds where x diverged less the share where y did, ``wins`` the seeds where only y diverged, ``seeds_needed``
    the discordant seeds, all in one row, that reject at ``ALPHA / m``.

    :param runs: ``collect``'s runs table of one environment
    :param labels: the rows, in order
    :param reference: the row compared with every other one when there are many rows
    """
    from scipy.stats import binomtest

    from sb3_tutorial_sac.compare.specs import FINISHED

    finished = runs[runs["status"].isin(FINISHED)]
    diverged = {
        label: pd.Series((group["status"] == "diverged").to_numpy(), index=group["seed"].to_numpy())
        for label, group in finished.groupby("algorithm", sort=False)
    }
    present = [label for label in labels if label in diverged]
    results: list[Result] = []
    for x, y in contrasts(present, reference):
        common = diverged[x].index.intersection(diverged[y].index)
        a, b = diverged[x].loc[common].to_numpy(), diverged[y].loc[common].to_numpy()
        only_x, only_y = int((a & ~b).sum()), int((b & ~a).sum())
        if only_x + only_y == 0:
            continue
        p = float(binomtest(only_x, only_x + only_y, 0.5).pvalue)
        n = len(common)
        anchor = "every pair" if len(present) <= ALL_PAIRS_UP_TO else x
        share = float(a.mean() - b.mean())
        result = Result(x, y, "diverged", "training", "difference", True, (n, n), share, (math.nan, math.nan), only_y, p,
                        test="McNemar", seeds_needed=math.nan, anchor=anchor)  # fmt: skip
        results.append(result)
    families: dict[tuple[str, str, str, str], list[Result]] = {}
    for result in results:
        families.setdefault(result.family, []).append(result)
    for members in families.values():
        for result, adjusted in zip(members, paired.holm([r.p for r in members])):
            result.p_holm, result.family_size = adjusted, len(members)
            # The fewest discordant seeds, all in one row, whose exact p is below Holm's strictest level
            result.seeds_needed = float(paired.min_seeds(ALPHA / len(members)))
    return results


def _divergence_sentence(result: Result) -> str:
    """The sentence of a divergence contrast (``divergence``)."""
    n = result.n[0]
    only_y = result.wins
    only_x = only_y + round(result.difference * n)  # x's diverged seeds less y's = only x's less only y's
    level = f"{ALPHA:g}/{result.family_size}" if result.family_size > 1 else f"{ALPHA:g}"
    seeds = f"{n} paired seed{'s' if n != 1 else ''}"
    evidence = (
        f"of {seeds}, {only_x} diverged in {result.x} only and {only_y} in {result.y} only; exact McNemar p = "
        f"{_p(result.p)}, Holm p = {_p(result.p_holm)}"
    )
    if result.p_holm < ALPHA:
        more, fewer = (result.x, result.y) if only_x > only_y else (result.y, result.x)
        text = f"{more} diverges at more seeds than {fewer} ({evidence})"
    else:
        need = int(result.seeds_needed)
        text = f"inconclusive ({evidence}; {need} such seeds, all in one row, would decide at level {level})"
    return f"- {result.x} vs {result.y}, runs that diverge: {text}."


def family_sizes(results: Sequence[Result]) -> dict[tuple[str, str, str, str], int]:
    sizes: dict[tuple[str, str, str, str], int] = {}
    for result in results:
        sizes[result.family] = sizes.get(result.family, 0) + 1
    return sizes


def too_few_seeds(results: Sequence[Result]) -> str:
    """The report's first line when no test of it can reach a verdict at its seeds (else empty): the smallest
    Holm-adjusted p that the exact tests can give is not below ``ALPHA``."""
    if not results:
        return ""
    sizes = family_sizes(results)
    for result in results:
        m = sizes[result.family]
        smallest = paired.smallest_p(result.n[0], result.paired, result.n[1])
        if result.kind == "equivalence":
            smallest /= 2  # one-sided
        if m * smallest < ALPHA:
            return ""
    n = max(max(r.n) for r in results)
    m = max(sizes.values())
    need = 1
    while m * paired.smallest_p(need) >= ALPHA:
        need += 1
    return (
        f"**Too few seeds for any verdict**: at {n} seed{'s' if n != 1 else ''} per row the exact tests cannot give a "
        f"p below {ALPHA} (after Holm over up to {m} tests per family); a verdict needs at least {need} paired seeds per "
        "row. Every sentence below is inconclusive by construction; read the figures as a description."
    )


def _p(p: float) -> str:
    return "n/a" if p != p else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _seeds(result: Result, kind: str = "decide") -> str:
    """The seeds line of a sentence: how many seeds decide at the observed effect (80% power at the level of Holm's
    strictest step in the result's family), or give that power to a decided one."""
    unit = "paired seeds" if result.paired else "seeds per row"
    needed = result.seeds_needed
    if math.isinf(needed):
        return "no effect to detect"
    level = f"{ALPHA:g}/{result.family_size}" if result.family_size > 1 else f"{ALPHA:g}"
    if kind == "power":
        return f"about {int(needed)} {unit} give 80% power at this effect at level {level}"
    return f"about {int(needed)} {unit} would decide at this effect, 80% power at level {level}"


def _unit(measure: str) -> str:
    return {"score": "return", "steps": "env steps", "seconds": "CPU s"}[measure]


def _evidence(result: Result) -> str:
    digits = 0 if result.measure == "steps" else 1
    n = (
        f"{result.n[0]} paired seed{'s' if result.n[0] != 1 else ''}, {result.x} better in {result.wins}"
        if result.paired
        else f"{result.n[0]} and {result.n[1]} runs"
    )
    ci = "n/a" if math.isnan(result.ci[0]) else f"{result.ci[0]:,.{digits}f}, {result.ci[1]:,.{digits}f}"
    return (
        f"difference {result.difference:+,.{digits}f} {_unit(result.measure)} [{ci}] ({n}), {result.test} p = "
        f"{_p(result.p)}, Holm p = {_p(result.p_holm)}"
    )


def sentences(results: Sequence[Result], threshold: float | None) -> list[str]:
    """One sentence per contrast and measure, in order."""
    lines = []
    by_key: dict[tuple[str, str, str, str], dict[str, Result]] = {}
    for result in results:
        by_key.setdefault((result.x, result.y, result.measure, result.mode), {})[result.kind] = result
    target = f"{threshold:,.0f}" if threshold is not None else ""
    for (x, y, measure, mode), kinds in by_key.items():
        test = kinds["difference"]
        if measure == "diverged":
            lines.append(_divergence_sentence(test))
            continue
        what = {
            "score": f"final score, {mode}",
            "steps": f"env steps to {target}, {mode}",
            "seconds": f"CPU s to {target}, {mode}",
        }[measure]
        verb = "ends higher than" if measure == "score" else f"reaches {target} in fewer {_unit(measure)} than"
        equivalence = kinds.get("equivalence")
        margin = equivalence.margin if equivalence is not None else math.nan
        equivalent = equivalence is not None and equivalence.p_holm < ALPHA
        better = test.difference if measure == "score" else -test.difference  # > 0: x is better
        if test.p_holm < ALPHA and better != 0:
            winner, loser = (x, y) if better > 0 else (y, x)
            text = f"{winner} {verb} {loser} ({_evidence(test)}; {_seeds(test, 'power')})"
            if equivalent and equivalence is not None:
                text += f"; a difference within the equivalence margin +/- {margin:,.1f} (TOST Holm p = "
                text += f"{_p(equivalence.p_holm)})"
        elif equivalent and equivalence is not None:
            text = (
                f"{x} and {y} cannot be told apart within +/- {margin:,.1f} ({_evidence(test)}; TOST p = "
                f"{_p(equivalence.p)}, Holm p = {_p(equivalence.p_holm)}; {_seeds(test, 'power')})"
            )
        else:
            tost = (
                f"; not shown equivalent within +/- {margin:,.1f} (TOST Holm p = {_p(equivalence.p_holm)})"
                if equivalence is not None
                else ""
            )
            text = f"inconclusive ({_evidence(test)}{tost}; {_seeds(test)})"
        lines.append(f"- {x} vs {y}, {what}: {text}.")
    return lines


def family_note(results: Sequence[Result], env: str) -> str:
    """The sentence that names the families and the margin."""
    sizes = family_sizes(results)
    names = {
        "score": "final score",
        "steps": "env steps to the threshold",
        "seconds": "CPU seconds to the threshold",
        "diverged": "runs that diverge",
    }
    parts = [
        f"{names[measure]} ({mode}, {kind}{'' if anchor == 'every pair' else f', {anchor} against each row'}): {m}"
        for (measure, mode, kind, anchor), m in sizes.items()
    ]
    margin = margin_for(env)
    task = TASK_SCORES.get(env)
    equivalence = (
        f"Equivalence margin +/- {margin:,.1f} = {EQUIVALENCE_FRACTION:g} x (reference {task.reference:,.1f} - random "
        f"{task.random:,.1f}), `aggregate.TASK_SCORES`."
        if task is not None
        else f"No equivalence test: no random and reference scores for {env}."
    )
    paired_any = any(r.paired for r in results)
    design = (
        "Rows share seeds, so each contrast is paired by seed (the same evaluation start states): exact two-sided "
        "Wilcoxon signed-rank test of the per-seed differences, 95% paired bootstrap interval of their mean."
        if paired_any
        else "Rows share no seeds: exact two-sided rank-sum test, 95% stratified bootstrap interval of the difference."
    )
    if any(r.measure == "diverged" for r in results):
        design += (
            " Runs that diverge: exact McNemar test (two-sided binomial test of the seeds where exactly one of the two "
            "rows diverged), tested only for contrasts with such a seed (one with none cannot reject: Tarone, 1990)."
        )
    return (
        f"{design} Holm's correction within each family (a measure, a policy mode and a kind of test over this task's "
        f"contrasts, or, beyond {ALL_PAIRS_UP_TO} rows, over the contrasts of one row against the others; tests per "
        f"family: {'; '.join(parts)}), level {ALPHA}. The seeds a verdict would need: 80% power of the exact test at "
        f"level {ALPHA}/m for a family of m tests (Holm's strictest step), from the t-test's n at the observed "
        f"standardised effect divided by the rank test's efficiency 3/pi. {equivalence} Steps and seconds: fewer is "
        "better, and a run that never reaches the threshold counts as more than any run that does (its difference, "
        "and so the interval, counts it as twice the largest time reached plus one)."
    )


def as_records(results: Sequence[Result]) -> list[dict[str, Any]]:
    """The results as plain rows (for a CSV)."""
    return [dataclasses.asdict(result) for result in results]
