"""A/B of two source trees (e.g. a refactor against the commit before it): their engines' throughput, or their compiled
loops in one process.

**Trees** (the default). Each measurement is a fresh process importing ``sb3_tutorial_sac`` from one tree
(``PYTHONPATH`` and the working folder), started pinned to ``--core`` (``common.run_pinned``: torch's threads start on
that core), one torch thread: a model on Pendulum-v1 with the tutorial's defaults is warmed up with ``learn(400)`` (the
compiled engine compiles or loads its step there), then ``learn(--learn-steps)`` env steps and ``train(--train-steps)``
gradient steps are timed. The trees alternate within each repeat (A B, then B A), so that machine drift cancels; figures
are medians over ``--repeats``, and B's over A's paired by repeat with the median's distribution-free 95% interval.
``--clock cpu`` times the process's CPU seconds instead of wall-clock seconds, for a machine that other work shares.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_trees.py /tmp/before . --engines auto compiled --repeats 5

**Packages** (``--packages``): two compiled loop packages (``.pt2``) against each other in one process, on the same
inputs. A compiled-engine model is warmed up with ``learn(500)`` (which compiles or loads this tree's package, and loads
the AVX-512 kernel where the step uses it); the inputs of one ``train(--steps)`` call's compiled loop are kept
(``--sb3-sizes``: SB3's default sizes, networks 256x256 and batch 256); then both packages run on their own copies of
those inputs, ``--rounds`` times in alternating order, CPU time per gradient step. Printed: the largest difference
between the two packages' statistics from the same inputs, each package's median µs per step, and A's time over B's,
paired by round: the median and its distribution-free 95% interval.

    ls -t "$(python -c 'from sb3_tutorial_sac.engines.compiled.engine import cache_folder; print(cache_folder())')"
    python benchmarks/ab_trees.py --packages OLD.pt2 NEW.pt2 --rounds 40

A package compiled by another tree of the same step (``profiling.py compiled-loop`` run from that tree, with
``PYTHONPATH`` set to it) lies in the same cache folder under its own key. Both packages call the AVX-512 kernel this
tree built and loaded (one symbol per process): two kernel sources are compared as trees instead.
"""

import argparse
import json
import os
import statistics
import sys
import time

from common import (
    add_core_argument,
    alternate,
    compiled_loop_inputs,
    describe_median,
    paired_ratios,
    pin_from_argv,
    resolve_core,
    run_pinned,
    warmed_up_compiled_model,
)

CHILD = """
import json, statistics, sys, time, warnings
import torch as th
th.set_num_threads(1)
from stable_baselines3.common.logger import Logger
from sb3_tutorial_sac import TutorialSAC
warnings.simplefilter("ignore")
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=sys.argv[1])
model.set_logger(Logger(folder=None, output_formats=[]))
model.learn(400)
clock = time.process_time if sys.argv[4] == "cpu" else time.perf_counter
start = clock()
model.learn(int(sys.argv[2]), reset_num_timesteps=False)
learn = int(sys.argv[2]) / (clock() - start)
rates = []
for _ in range(3):
    start = clock()
    model.train(int(sys.argv[3]), 64)
    rates.append(int(sys.argv[3]) / (clock() - start))
import sb3_tutorial_sac
print(json.dumps({"learn": learn, "train": statistics.median(rates), "package": sb3_tutorial_sac.__file__}))
"""


def measure(tree: str, engine: str, learn_steps: int, train_steps: int, core: int | None, clock: str) -> dict:
    """One fresh process's figures, ``sb3_tutorial_sac`` imported from ``tree``, pinned to ``core``."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    result = run_pinned(
        [sys.executable, "-c", CHILD, engine, str(learn_steps), str(train_steps), clock], core,
        env=env, cwd=os.path.abspath(tree), capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["package"].startswith(os.path.abspath(tree)), f"imported {figures['package']}, not from {tree}"
    return figures


def compare_trees(args: argparse.Namespace, core: int | None) -> None:
    trees = {"A": args.before, "B": args.after}
    results: dict[tuple[str, str], list[dict]] = {(tree, engine): [] for tree in trees for engine in args.engines}
    for repeat in range(args.repeats):
        for engine in args.engines:
            for tree in alternate(list(trees), repeat):
                run = measure(trees[tree], engine, args.learn_steps, args.train_steps, core, args.clock)
                results[(tree, engine)].append(run)
        print(f"repeat {repeat + 1} of {args.repeats} done", file=sys.stderr, flush=True)
    where = f"core {core}" if core is not None else "not pinned"
    print(f"A = {args.before}, B = {args.after}; {where}, one thread, {args.clock} clock; medians of {args.repeats}")
    print(f"{'engine':10s} {'tree':4s} {'learn() env steps/s':>20s} {'train() grad steps/s':>21s}")
    for engine in args.engines:
        for tree in trees:
            runs = results[(tree, engine)]
            learn, train = statistics.median(r["learn"] for r in runs), statistics.median(r["train"] for r in runs)
            print(f"{engine:10s} {tree:4s} {learn:20.0f} {train:21.0f}")
        ratios = {
            key: paired_ratios([r[key] for r in results[("B", engine)]], [r[key] for r in results[("A", engine)]])
            for key in ("learn", "train")
        }
        print(
            f"{engine:10s} B/A paired by repeat: learn() {describe_median(ratios['learn'])}, "
            f"train() {describe_median(ratios['train'])}"
        )


def compare_packages(args: argparse.Namespace) -> None:
    from sb3_tutorial_sac.engines.compiled.engine import _load_package

    model = warmed_up_compiled_model(args.sb3_sizes)
    engine = model.update_engine
    stacked, steps, interval = compiled_loop_inputs(model, args.steps)
    with engine.loop():  # the loop's other inputs, as the engine makes them for a call
        noise = engine._noise_block(steps, stacked[1].shape[1:])
        scalars = engine._scalars_of_steps(steps, interval)
        kept = [*stacked, noise, scalars, *(t.clone() for t in engine._persistent)]
    runners = [_load_package(path).boxed_run for path in (args.before, args.after)]
    first = [runner([t.clone() for t in kept])[0] for runner in runners]
    print(f"largest difference of the statistics from the same inputs: {(first[0] - first[1]).abs().max().item()}")
    copies = [[t.clone() for t in kept] for _ in runners]
    times: list[list[float]] = [[], []]
    for k in range(args.rounds):
        for i in alternate([0, 1], k):
            start = time.process_time()
            runners[i](list(copies[i]))
            times[i].append((time.process_time() - start) / args.steps * 1e6)
    print(
        f"A {statistics.median(times[0]):.1f} µs, B {statistics.median(times[1]):.1f} µs per step (medians); "
        f"A/B time paired by round {describe_median(paired_ratios(times[0], times[1]))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="the tree measured first (A); with --packages, package A (.pt2)")
    parser.add_argument("after", help="the tree measured against it (B); with --packages, package B (.pt2)")
    parser.add_argument("--packages", action="store_true", help="compare two compiled loop packages in this process")
    add_core_argument(parser, "last")
    trees = parser.add_argument_group("trees")
    trees.add_argument("--engines", nargs="+", default=["auto", "compiled"])
    trees.add_argument("--repeats", type=int, default=5)
    trees.add_argument("--learn-steps", type=int, default=2000)
    trees.add_argument("--train-steps", type=int, default=1000)
    trees.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall-clock seconds, or the process's CPU seconds (less sensitive to other load on the core)",
    )  # fmt: skip
    packages = parser.add_argument_group("--packages")
    packages.add_argument("--rounds", type=int, default=40, help="alternating rounds")
    packages.add_argument("--steps", type=int, default=200, help="gradient steps of the kept train() call")
    packages.add_argument("--sb3-sizes", action="store_true", help="SB3's default sizes: networks 256x256, batch 256")
    args = parser.parse_args()
    if args.packages:
        pin_from_argv("last")  # this process runs both packages: pinned before torch is imported
        compare_packages(args)
    else:
        compare_trees(args, resolve_core(args.core))


if __name__ == "__main__":
    main()
