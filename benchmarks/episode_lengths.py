"""How long a grid's training episodes were: did any reach the environment's time limit?

A switch that changes what happens at the time limit (``timeouts_as_terminals``: the tutorial's rule, a truncated
episode stored as terminal) can only act where a training episode reached it. Per finished run of a grid's log folder
this prints the training episodes (the run's ``0.monitor.csv``, written by SB3's ``Monitor``), the longest, and how many
reached the limit (their length equals it: the TimeLimit truncated them, unless the task also terminated at that very
step, which the monitor file does not tell apart).

    python benchmarks/episode_lengths.py --log-folder benchmarks/runs/Hopper-v5-100k --row timeouts_as_terminals

It only reads the records (milliseconds a run).
"""

import argparse
import json
import pathlib
import sys

import gymnasium as gym
import pandas as pd
from stable_baselines3.common.monitor import load_results

from sb3_tutorial_sac.compare.specs import RUN_FILE


def episode_lengths(run_dir: pathlib.Path, limit: int) -> dict[str, int]:
    """The training episodes of one run folder (its ``*monitor.csv``, read by SB3's ``load_results``).

    :param run_dir: a grid run's folder
    :param limit: the environment's time limit (steps)
    :return: ``episodes``, ``longest`` (steps) and ``at_limit`` (episodes whose length equals ``limit``)
    """
    lengths = load_results(str(run_dir))["l"]
    return {"episodes": len(lengths), "longest": int(lengths.max()), "at_limit": int((lengths == limit).sum())}


def _registered_limit(env_id: str) -> int:
    """The time limit gymnasium registers for ``env_id`` (``max_episode_steps``).

    :raises ValueError: the id is not registered (a record of a task this installation lacks) or registers no limit
    """
    try:
        steps = gym.spec(env_id).max_episode_steps
    except gym.error.Error as error:
        raise ValueError(f"--limit: {env_id} is not a registered environment here ({error}); give the time limit") from error
    if steps is None:
        raise ValueError(f"--limit: {env_id} registers no max_episode_steps; give the time limit")
    return steps


def table(log_folder: pathlib.Path, rows: list[str] | None, limit: int | None) -> pd.DataFrame:
    """One line per finished run (``status`` ok or diverged) under ``log_folder``, in row, env, seed order.

    :param rows: only these rows (labels); None: every row
    :param limit: the time limit; None: each env's registered ``max_episode_steps``
    """
    lines = []
    for path in sorted(log_folder.rglob(RUN_FILE)):
        record = json.loads(path.read_text())
        protocol = record["protocol"]
        label = record.get("label", protocol["algo"])
        if record.get("status") not in ("ok", "diverged") or (rows is not None and label not in rows):
            continue
        steps = limit if limit is not None else _registered_limit(protocol["env"])
        counts = episode_lengths(path.parent, steps)
        lines.append({"row": label, "env": protocol["env"], "seed": int(protocol["seed"]), "limit": steps, **counts})
    if not lines:
        raise ValueError(f"{log_folder}: no finished run" + (f" of the rows {rows}" if rows else ""))
    return pd.DataFrame(lines).sort_values(["row", "env", "seed"], kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-folder", type=pathlib.Path, required=True, help="the grid's log folder (its records)")
    parser.add_argument("--row", nargs="+", default=None, help="only these rows (labels); default: every row")
    parser.add_argument("--limit", type=int, default=None, help="the time limit (default: the env's registered one)")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        sys.exit(f"--limit must be a positive number of steps, got {args.limit}")
    try:
        lines = table(args.log_folder, args.row, args.limit)
    except ValueError as error:
        sys.exit(str(error))
    print(f"{args.log_folder}: training episodes of each finished run (its 0.monitor.csv)")
    print("| row | env | seed | episodes | longest | limit | at the limit |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for line in lines.itertuples():
        counts = f"{line.episodes:,} | {line.longest:,} | {line.limit:,} | {line.at_limit}"
        print(f"| {line.row} | {line.env} | {line.seed} | {counts} |")


if __name__ == "__main__":
    main()
