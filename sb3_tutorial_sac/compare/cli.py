"""The ``compare`` command: ``sb3-tutorial-sac compare ...`` and ``python -m sb3_tutorial_sac.compare ...``."""

from __future__ import annotations

import argparse
import os
import pathlib
from collections.abc import Sequence

from sb3_tutorial_sac.compare.grid import aggregate_folders, compare
from sb3_tutorial_sac.compare.paired import min_seeds
from sb3_tutorial_sac.compare.records import discover, other_cpus, verify
from sb3_tutorial_sac.compare.specs import ABLATION_NOTE, ABLATIONS, SCHEDULES, VARIANTS, Variant, make_specs
from sb3_tutorial_sac.compare.stats import SCORE_LAST
from sb3_tutorial_sac.engines import engine_names

# The command's description (sb3_tutorial_sac.cli lists the command with the same words; it imports this module only
# when the command runs, and this module does not import it)
DESCRIPTION = "compare tutorial_sac with SB3's SAC (and other rl-zoo3 algorithms) over many seeds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument(
        "--algos",
        nargs="+",
        default=None,
        help="rl-zoo3 algorithm keys (default: tutorial_sac sac); with --ablation, rows added to the ablation (e.g. sac)",
    )
    parser.add_argument("--envs", nargs="+", default=None, help="environment ids (default: Pendulum-v1)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"number of seeds, the same for every row (default: 3); a verdict needs at least {min_seeds()} paired seeds",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--budget", type=int, default=None, help="env steps per run (default: 0 = the zoo's n_timesteps)")
    parser.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        default=None,
        help="a budget below the zoo's n_timesteps: 'budget' scales its lin_ schedules to the budget, 'zoo' runs them "
        "over the zoo's n_timesteps and stops at the budget (default: budget)",
    )
    parser.add_argument(
        "--engine",
        choices=list(engine_names()),
        default=None,
        help="TutorialSAC(engine=...) of the tutorial_sac rows (default: auto, bit for bit the tutorial's update); "
        "'compiled' is the same algorithm rounded differently, faster at SB3's network sizes",
    )
    parser.add_argument("--eval-freq", type=int, default=None, help="evaluate every N env steps (default: 1000)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation and mode (default: 10)")
    parser.add_argument(
        "--log-folder", type=pathlib.Path, default=pathlib.Path("logs/compare"), help="runs and report (default: logs/compare)"
    )
    parser.add_argument(
        "--name", default=None, help="file names of the report, <name>.md, ... (default: compare; ablation with --ablation)"
    )
    parser.add_argument(
        "--ablation",
        nargs="?",
        const="pendulum",
        default=None,
        choices=list(ABLATIONS),
        help="tutorial_sac with each quirk switched to SB3's choice: 'pendulum' (the default) on Pendulum-v1; 'yml' "
        "around the yml entry of each of --envs (each fix it makes switched back, each rule it keeps switched alone)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help="with --ablation: the ablation rows to run (default: every row); without it: named rows added after "
        f"--algos ({', '.join(VARIANTS)})",
    )
    parser.add_argument("--backend", choices=["local", "ray"], default="local", help="where runs go (default: local)")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="parallel local runs")
    parser.add_argument("--address", default=None, help="Ray cluster address (e.g. ray://host:10001 or auto)")
    parser.add_argument("--threshold", type=float, default=None, help="return threshold for all envs (default: per env)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: report the runs that have finished; the grid (rows, seeds, protocol) is read from the "
        "records, and --algos/--variants select a subset (reported under its own file names)",
    )
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="re-run N finished seeds of every row on this code and compare the evaluations (verify.json), then "
        "report: runs of several code versions are pooled only after it found them identical",
    )
    parser.add_argument(
        "--score-last",
        type=int,
        default=SCORE_LAST,
        help=f"a run's score: its mean return over its last N evaluation points common to all runs (default: {SCORE_LAST})",
    )
    parser.add_argument(
        "--committed",
        type=pathlib.Path,
        default=None,
        metavar="FOLDER",
        help="after the report, print the verdicts of a committed grid's report (FOLDER/compare.md) beside it, e.g. "
        "benchmarks/runs/Pendulum-v1",
    )
    parser.add_argument(
        "--aggregate",
        nargs="+",
        type=pathlib.Path,
        default=None,
        help="train nothing: the across-task report of these log folders' <name>_evaluations.csv, written to --log-folder",
    )


def _rows(args: argparse.Namespace) -> tuple[list[Variant], list[str], str, list[str]]:
    """The rows, environments, report name and notes the options ask for."""
    envs = args.envs or ["Pendulum-v1"]
    if args.ablation:
        rows = ABLATIONS[args.ablation]
        if args.ablation == "yml" and not args.envs:
            raise SystemExit("--ablation yml needs --envs: the tasks whose yml entries it ablates (e.g. Hopper-v5)")
        envs = ["Pendulum-v1"] if args.ablation == "pendulum" else envs
        variants, name, notes = list(rows), "ablation", [ABLATION_NOTE]
        if args.variants is not None:
            names = [variant.label for variant in rows]
            unknown = [row for row in args.variants if row not in names]
            if unknown:
                raise SystemExit(f"--variants: unknown ablation rows {unknown}; the rows are {names}")
            variants = [variant for variant in rows if variant.label in args.variants]
        # --algos adds plain algorithms (e.g. SAC) after the reference: one grid of paired seeds on the task
        plain = [Variant(a, a) for a in dict.fromkeys(args.algos or []) if a not in {v.label for v in variants}]
        variants = variants[:1] + plain + variants[1:]
        return variants, envs, name, notes
    algos = args.algos or ["tutorial_sac", "sac"]
    variants = [Variant(a, a) for a in dict.fromkeys(algos)]
    if args.variants is not None:
        unknown = [row for row in args.variants if row not in VARIANTS]
        if unknown:
            raise SystemExit(f"--variants: unknown rows {unknown}; the rows are {list(VARIANTS)}")
        variants += [VARIANTS[row] for row in dict.fromkeys(args.variants)]
    return variants, envs, "compare", []


def _from_records(args: argparse.Namespace) -> tuple[list[Variant], list[str], str, list[str], list[int]]:
    """The grid of the finished runs in the log folder (``--report-only`` / ``--verify`` without a grid's flags);
    a subset of its rows (``--algos``/``--variants``) is reported under its own names."""
    labels = None
    if args.algos is not None or args.variants is not None:
        labels = [*(args.algos or []), *(args.variants or [])]
    ablation = args.ablation or (args.log_folder / "ablation.md").is_file()
    try:
        grid = discover(args.log_folder, labels, ablation)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    base = "ablation" if ablation else "compare"
    name = args.name or (base if labels is None else f"{base}_{'_'.join(labels)}")
    notes = [ABLATION_NOTE] if ablation else []
    args.budget, args.eval_freq, args.eval_episodes = grid.budget, grid.eval_freq, grid.eval_episodes
    args.schedule = grid.schedule
    args.engine = grid.engine
    return grid.variants, grid.envs, name, notes, grid.seeds


def run(args: argparse.Namespace) -> int:
    """Run the grid the options describe, print the report; exit code 1 when a run failed."""
    if args.aggregate is not None:
        if args.score_last <= 0:
            raise SystemExit("--score-last must be a positive number of evaluation points")
        report = aggregate_folders(args.aggregate, args.log_folder, args.name or "aggregate", args.score_last)
        print(report)
        return 0
    grid_flags = (args.seeds, args.envs, args.budget, args.eval_freq, args.eval_episodes, args.schedule, args.engine)
    from_records = (args.report_only or args.verify) and all(flag is None for flag in grid_flags)
    if from_records:
        variants, envs, name, notes, seeds = _from_records(args)
    else:
        variants, envs, name, notes = _rows(args)
        name = args.name or name
        args.seeds = 3 if args.seeds is None else args.seeds
        args.budget = 0 if args.budget is None else args.budget
        args.eval_freq = 1000 if args.eval_freq is None else args.eval_freq
        args.eval_episodes = 10 if args.eval_episodes is None else args.eval_episodes
        args.schedule = args.schedule or "budget"
        args.engine = args.engine or "auto"
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if (args.seeds is not None and args.seeds <= 0) or args.jobs <= 0 or args.eval_freq <= 0 or args.eval_episodes <= 0:
        raise SystemExit("--seeds, --jobs, --eval-freq and --eval-episodes must be positive, --budget >= 0")
    if args.budget < 0 or args.verify < 0:
        raise SystemExit("--budget and --verify must be >= 0")
    if args.score_last <= 0:
        raise SystemExit("--score-last must be a positive number of evaluation points")
    # The grid's protocol, the same for the replay and the report
    protocol = dict(
        budget=args.budget,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        log_folder=args.log_folder,
        schedule=args.schedule,
        engine=args.engine,
    )
    if args.verify:
        specs = make_specs(variants, envs, seeds, **protocol)
        try:
            result = verify(specs, args.verify, jobs=args.jobs, progress=not args.no_progress)
        except ValueError as error:
            raise SystemExit(str(error)) from error
        checked = [entry for entries in result["rows"].values() for entry in entries]
        same = sum(entry["identical"] for entry in checked)
        print(f"Replayed {len(checked)} runs ({args.verify} seeds per row): {same} identical; {args.log_folder}/verify.json")
        elsewhere = other_cpus(result)
        if elsewhere:
            print(
                f"Runs that differ were recorded on another CPU model ({'; '.join(elsewhere)}; this one: "
                f"{result['verified_on']['cpu']}): a replay is bit-identical only on the model that recorded the run, "
                "so verify them there."
            )
    thresholds = dict.fromkeys(envs, args.threshold) if args.threshold is not None else None
    try:
        report, runs = compare(
            variants,
            envs,
            seeds,
            **protocol,
            backend=args.backend,
            jobs=args.jobs,
            address=args.address,
            name=name,
            progress=not args.no_progress,
            thresholds=thresholds,
            notes=notes,
            report_only=args.report_only or bool(args.verify),
            last=args.score_last,
        )
    except ValueError as error:  # e.g. runs of several code versions that no replay verified
        raise SystemExit(str(error)) from error
    print(report)
    print(f"Report, CSVs and plots in {args.log_folder}/{name}*")
    print(conclusions(args.log_folder / f"{name}_verdicts.csv"))
    if args.committed is not None:
        print(committed_verdicts(args.committed))
    return 1 if (runs["status"] == "failed").any() else 0


def conclusions(path: pathlib.Path) -> str:
    """What the report's verdicts (``<name>_verdicts.csv``) can and cannot conclude, in one paragraph."""
    import pandas as pd

    from sb3_tutorial_sac.compare.paired import smallest_p
    from sb3_tutorial_sac.compare.verdicts import ALPHA

    table = pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()
    if not len(table):
        return "What this run can conclude: nothing (no two rows with finished runs to compare)."
    differences = table[table["kind"] == "difference"]
    equivalences = table[table["kind"] == "equivalence"]
    decided = int((differences["p_holm"] < ALPHA).sum())
    equivalent = int((equivalences["p_holm"] < ALPHA).sum())
    n = int(differences["n"].map(lambda pair: int(str(pair).strip("()[]").split(",")[0])).min())
    return (
        f"What this run can conclude: {decided} of {len(differences)} tests found a difference and {equivalent} of "
        f"{len(equivalences)} an equivalence (Holm, level {ALPHA}); the rest are inconclusive. At {n} paired seeds the "
        f"exact test's smallest two-sided p is {smallest_p(n):.3g}"
        + (", so only a contrast where every seed agrees can be decided" if 2 * smallest_p(n) >= ALPHA else "")
        + "; each inconclusive line says how many seeds would decide at the effect it saw."
    )


def committed_verdicts(folder: pathlib.Path, name: str = "compare") -> str:
    """The verdicts section of a committed report (``<folder>/<name>.md``), to print beside a small live run."""
    path = folder / f"{name}.md"
    if not path.is_file():
        return f"No committed report at {path}."
    lines = path.read_text().splitlines()
    protocol = next((line for line in lines if line.startswith("Protocol:")), "")
    start = next((i for i, line in enumerate(lines) if line == "Verdicts:"), None)
    if start is None:
        return f"{path} has no verdicts section."
    end = next((i for i in range(start + 2, len(lines)) if not lines[i].startswith("- ")), len(lines))
    return "\n".join([f"The committed result ({path}):", protocol, "", *lines[start + 2 : end]])


def main(argv: Sequence[str] | None = None, prog: str = "python -m sb3_tutorial_sac.compare") -> int:
    """Parse the command's options (``argv``, default ``sys.argv[1:]``) and run it."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
