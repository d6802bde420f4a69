"""A/B throughput of TutorialSAC's engines between two source trees (e.g. a refactor against the commit before it).

Each measurement is a fresh process importing ``sb3_tutorial_sac`` from one tree (``PYTHONPATH``), pinned to one core
(``os.sched_setaffinity``), one torch thread: a model on Pendulum-v1 with the tutorial's defaults is warmed up with
``learn(400)`` (the compiled engine compiles or loads its step there), then ``learn(--learn-steps)`` env steps and
``train(--train-steps)`` gradient steps are timed. The trees alternate within each repeat (A B, then B A), so that
machine drift cancels; figures are medians over ``--repeats``. ``--clock cpu`` times the process's CPU seconds instead of
wall-clock seconds, for a machine that other work shares.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_trees.py /tmp/before . --engines auto compiled --repeats 5
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, os, statistics, sys, time, warnings
os.sched_setaffinity(0, {int(sys.argv[4])})
import torch as th
th.set_num_threads(1)
from stable_baselines3.common.logger import Logger
from sb3_tutorial_sac import TutorialSAC
warnings.simplefilter("ignore")
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=sys.argv[1])
model.set_logger(Logger(folder=None, output_formats=[]))
model.learn(400)
clock = time.process_time if sys.argv[5] == "cpu" else time.perf_counter
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


def measure(tree: str, engine: str, learn_steps: int, train_steps: int, core: int, clock: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(learn_steps), str(train_steps), str(core), clock],
        env=env, cwd=os.path.abspath(tree), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="the tree measured first (A)")
    parser.add_argument("after", help="the tree measured against it (B)")
    parser.add_argument("--engines", nargs="+", default=["auto", "compiled"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--learn-steps", type=int, default=2000)
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)), help="the core every run is pinned to")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall-clock seconds, or the process's CPU seconds (less sensitive to other load on the core)",
    )  # fmt: skip
    args = parser.parse_args()
    trees = {"A": args.before, "B": args.after}
    results: dict[tuple[str, str], list[dict]] = {(tree, engine): [] for tree in trees for engine in args.engines}
    for repeat in range(args.repeats):
        order = ["A", "B"] if repeat % 2 == 0 else ["B", "A"]
        for engine in args.engines:
            for tree in order:
                run = measure(trees[tree], engine, args.learn_steps, args.train_steps, args.core, args.clock)
                results[(tree, engine)].append(run)
        print(f"repeat {repeat + 1} of {args.repeats} done", file=sys.stderr, flush=True)
    print(f"A = {args.before}, B = {args.after}; core {args.core}, one thread, {args.clock} clock; medians of {args.repeats}")
    print(f"{'engine':10s} {'tree':4s} {'learn() env steps/s':>20s} {'train() grad steps/s':>21s}")
    for engine in args.engines:
        for tree in trees:
            runs = results[(tree, engine)]
            learn, train = statistics.median(r["learn"] for r in runs), statistics.median(r["train"] for r in runs)
            print(f"{engine:10s} {tree:4s} {learn:20.0f} {train:21.0f}")
        medians = {tree: {key: statistics.median(r[key] for r in results[(tree, engine)]) for key in ("learn", "train")}
                   for tree in trees}  # fmt: skip
        ratios = {key: medians["B"][key] / medians["A"][key] for key in ("learn", "train")}
        print(f"{engine:10s} B/A  learn() {ratios['learn']:.3f}, train() {ratios['train']:.3f}")


if __name__ == "__main__":
    main()
