"""What a log folder's records say: the grid they describe (``discover``: ``--report-only`` needs no flags), the
code versions they come from, and the replay that lets runs of several versions be pooled (``verify``).

Pooling rule: a report pools runs of one code version (one commit, from records that name it) as they are; runs of
several versions, or runs whose records name none (written before records carried provenance), are pooled only
after ``verify`` re-ran ``seeds`` committed seeds of every row on the code at hand and found every evaluation
identical (``verify.json`` beside the runs says which, on which commit).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from sb3_tutorial_sac.compare.record_provenance import code_provenance, cpu_model
from sb3_tutorial_sac.compare.specs import ABLATION, ENGINE_ALGOS, FINISHED, RUN_FILE, VARIANTS, YML_ABLATION, RunSpec, Variant

VERIFY_FILE = "verify.json"
# What a replay must reproduce exactly (evaluations.npz's arrays; the seconds differ from run to run)
REPLAYED = ("timesteps", "results", "results_stochastic", "ep_lengths", "ep_lengths_stochastic")
# The rows' order in a report rebuilt from records: the reference and SAC first, then the named rows as defined
# (an ablation's rows in its own order: the yml ablation's when every row is one of its rows)
_ORDER = ["tutorial_sac", "sac", *(v.label for v in ABLATION), *VARIANTS]
_YML_ORDER = ["tutorial_sac", "sac", *(v.label for v in YML_ABLATION), *VARIANTS]
_PROTOCOL = ("budget", "eval_freq", "eval_episodes", "schedule")


def _describe(label: str, algo: str, overrides: dict[str, Any], defaults: bool, ablation: bool) -> Variant:
    """The row a record names: the ablation's or a named row's own description, a plain algorithm as ``--algos``
    makes it."""
    if label == algo and not overrides and not defaults and not ablation:
        return Variant(label, algo)
    known = next((v for v in (*ABLATION, *YML_ABLATION) if v.label == label), None) if ablation else None
    known = known or VARIANTS.get(label)
    if known is not None and known.algo == algo and known.overrides == overrides and known.defaults == defaults:
        return known
    return Variant(label, algo, overrides, "", defaults)


@dataclasses.dataclass(frozen=True)
class Grid:
    """The grid a log folder's records describe."""

    variants: list[Variant]
    envs: list[str]
    seeds: list[int]
    budget: int
    eval_freq: int
    eval_episodes: int
    schedule: str
    engine: str = "auto"


def discover(log_folder: pathlib.Path, labels: Sequence[str] | None = None, ablation: bool = False) -> Grid:
    """The grid of the finished runs under ``log_folder`` (their ``compare_run.json``), for ``--report-only``.

    :param log_folder: a comparison's log folder
    :param labels: only these rows (a subset; None: every row found)
    :param ablation: the folder holds an ablation (its rows are described as the ablation's)
    :raises ValueError: no finished run, an unknown label, or runs of different protocols
    """
    found: dict[str, Variant] = {}
    envs: dict[str, None] = {}
    seeds: set[int] = set()
    protocols: set[tuple[Any, ...]] = set()
    engines: set[str] = set()  # of the TutorialSAC rows (the others have no engine)
    for path in sorted(pathlib.Path(log_folder).rglob(RUN_FILE)):
        record = json.loads(path.read_text())
        if record.get("status") not in FINISHED:
            continue
        protocol = record["protocol"]
        label = record.get("label", protocol["algo"])
        if labels is not None and label not in labels:
            continue
        variant = _describe(label, protocol["algo"], protocol["overrides"], bool(protocol.get("defaults", False)), ablation)
        found.setdefault(label, variant)
        envs[protocol["env"]] = None
        seeds.add(int(protocol["seed"]))
        protocols.add(tuple(protocol.get(key, "budget" if key == "schedule" else None) for key in _PROTOCOL))
        if protocol["algo"] in ENGINE_ALGOS:
            engines.add(str(protocol.get("engine", "auto")))
    if labels is not None:
        unknown = [label for label in labels if label not in found]
        if unknown:
            raise ValueError(f"{log_folder}: no finished run of the rows {unknown}; the folder has {sorted(found)}")
    if not found:
        raise ValueError(f"{log_folder}: no finished run (no {RUN_FILE}) to report")
    if len(protocols) > 1:
        raise ValueError(f"{log_folder}: the runs have different protocols {sorted(protocols)} (budget, eval_freq, ...)")
    if len(engines) > 1:
        raise ValueError(f"{log_folder}: the TutorialSAC runs have different engines {sorted(engines)}")
    (budget, eval_freq, eval_episodes, schedule) = protocols.pop()
    named = {label for label, variant in found.items() if variant != Variant(variant.algo, variant.algo)}
    yml = ablation and named <= {v.label for v in YML_ABLATION}
    order = {label: i for i, label in enumerate(dict.fromkeys(_YML_ORDER if yml else _ORDER))}
    variants = sorted(found.values(), key=lambda v: (order.get(v.label, len(order)), v.label))
    if labels is not None:
        variants = [found[label] for label in dict.fromkeys(labels)]
    engine = engines.pop() if engines else "auto"
    return Grid(variants, list(envs), sorted(seeds), int(budget), int(eval_freq), int(eval_episodes), str(schedule), engine)


def version_of(record: dict[str, Any]) -> str:
    """The code version a record names: its commit (``+dirty`` when the source differed), or ``unknown``."""
    provenance = record.get("provenance") or {}
    commit = provenance.get("commit")
    if not commit:
        return "unknown"
    return commit[:12] + ("+dirty" if provenance.get("dirty") else "")


def _spread(seeds: Sequence[int], count: int) -> list[int]:
    """``count`` seeds spread over ``seeds`` (the first and the last among them)."""
    ordered = sorted(seeds)
    if count >= len(ordered):
        return ordered
    indices = np.unique(np.round(np.linspace(0, len(ordered) - 1, count)).astype(int))
    return [ordered[i] for i in indices]


def verify(specs: Sequence[RunSpec], seeds_per_row: int, jobs: int = 1, progress: bool = False) -> dict[str, Any]:
    """Re-run ``seeds_per_row`` finished seeds of every row (spread over its seeds) on the code at hand, in a
    scratch folder, and compare their evaluations with the records'; write ``verify.json`` into the log folder.

    :param specs: the grid (the log folder is the specs')
    :param seeds_per_row: seeds re-run per row and environment
    :param jobs: parallel replays
    :return: what ``verify.json`` holds
    :raises ValueError: a row has no finished run to replay
    """
    from sb3_tutorial_sac.compare.backends import run_all
    from sb3_tutorial_sac.compare.runs import load_record

    if seeds_per_row <= 0:
        raise ValueError(f"--verify: a positive number of seeds per row, not {seeds_per_row}")
    chosen: list[RunSpec] = []
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for spec in specs:
        if load_record(spec) is not None:
            groups.setdefault((spec.variant.label, spec.env), []).append(spec)
    missing = sorted({(s.variant.label, s.env) for s in specs} - set(groups))
    if missing:
        raise ValueError(f"--verify: no finished run to replay for {missing}")
    for group in groups.values():
        picked = set(_spread([s.seed for s in group], seeds_per_row))
        chosen += [s for s in group if s.seed in picked]
    log_folder = pathlib.Path(specs[0].log_folder)
    with tempfile.TemporaryDirectory(prefix="sb3_tutorial_sac_verify_") as scratch:
        replays = [dataclasses.replace(s, log_folder=scratch) for s in chosen]
        records = run_all(replays, jobs=jobs, progress=progress)
        rows: dict[str, list[dict[str, Any]]] = {}
        for original, replay in zip(chosen, replays):
            committed = json.loads((original.run_dir() / RUN_FILE).read_text())
            record = records[replay.key]
            identical, differs, status = False, record.get("error", ""), record.get("status")
            if status in FINISHED and status != committed.get("status"):  # e.g. the record diverged, the replay did not
                differs = f"status {committed.get('status')} -> {status}"
            elif status in FINISHED:
                old_path, new_path = original.run_dir() / "evaluations.npz", replay.run_dir() / "evaluations.npz"
                with np.load(old_path) as old, np.load(new_path) as new:
                    differs = ", ".join(k for k in REPLAYED if k in old.files and not np.array_equal(old[k], new.get(k)))
                    identical = not differs
            # A replay is bit-identical only on the CPU model that recorded the run (float rounding differs between
            # models: a HalfCheetah record of an AMD EPYC replayed on an Intel Xeon differs from its first evaluation on)
            record_cpu = str((committed.get("provenance") or {}).get("cpu") or "")
            rows.setdefault(f"{original.variant.label} {original.env}", []).append(
                {
                    "seed": original.seed,
                    "record_version": version_of(committed),
                    "record_cpu": record_cpu,
                    "identical": identical,
                    "differs": differs,
                }
            )
    result = {
        "verified_on": {**code_provenance(), "cpu": cpu_model()},
        "seeds_per_row": seeds_per_row,
        "identical": all(entry["identical"] for entries in rows.values() for entry in entries),
        "rows": rows,
    }
    (log_folder / VERIFY_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def other_cpus(result: dict[str, Any]) -> list[str]:
    """The CPU models that recorded the runs whose replay differed, where they are not the replaying machine's: a
    replay there is expected to differ (``verify``), so such a result says nothing about the code."""
    here = str(result.get("verified_on", {}).get("cpu") or "")
    entries = [entry for entries in result.get("rows", {}).values() for entry in entries if not entry["identical"]]
    return list(dict.fromkeys(e["record_cpu"] for e in entries if e.get("record_cpu") and e["record_cpu"] != here))


def pooling(log_folder: pathlib.Path, versions: dict[str, dict[str, int]]) -> str:
    """The report's sentence on the code versions it pools, after the pooling rule (module docstring).

    :param log_folder: where ``verify.json`` lies
    :param versions: per row (``"<label> <env>"``), the runs of each code version
    :raises ValueError: several versions (or unknown ones) without a replay that found every row identical
    """
    every = {version: 0 for counts in versions.values() for version in counts}
    for counts in versions.values():
        for version, count in counts.items():
            every[version] += count
    listed = ", ".join(f"{version} ({count} runs)" for version, count in every.items())
    if len(every) == 1 and "unknown" not in every:
        return f"Code: every run from commit {listed}."
    path = pathlib.Path(log_folder) / VERIFY_FILE
    verified = json.loads(path.read_text()) if path.is_file() else None
    if verified is not None:
        rows = verified.get("rows", {})
        unchecked = [row for row in versions if not rows.get(row)]
        failed = [row for row, entries in rows.items() if row in versions and not all(e["identical"] for e in entries)]
        if not unchecked and not failed:
            on = verified["verified_on"]
            commit = (on.get("commit") or "unknown")[:12] + ("+dirty" if on.get("dirty") else "")
            replayed = sum(len(rows[row]) for row in versions)
            return (
                f"Code: the runs come from {listed}; pooled because a replay on commit {commit} re-ran "
                f"{verified['seeds_per_row']} committed seeds per row ({replayed} runs) and found every evaluation "
                f"identical (`{VERIFY_FILE}`)."
            )
        problem = f"rows not replayed: {unchecked}" if unchecked else f"rows whose replay differed: {failed}"
        raise ValueError(f"{log_folder}: runs of several code versions ({listed}) are not pooled: {VERIFY_FILE} has {problem}")
    raise ValueError(
        f"{log_folder}: runs of several code versions, or records without one ({listed}), are pooled only after a replay: "
        "run the same command with --verify N (N committed seeds per row re-run on this code; identical evaluations)"
    )
