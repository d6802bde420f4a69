"""What the compiled engine costs a user, end to end: fresh processes, an empty and a filled compile cache.

Each measurement is one new Python process that builds ``TutorialSAC("MlpPolicy", "Pendulum-v1")`` with the given
engine and runs ``learn(steps)`` on one torch thread; the time printed is the whole process (imports, construction,
compilation or loading, training), as a user running a script sees it. The cache is Inductor's folder
(``TORCHINDUCTOR_CACHE_DIR``): first an empty one (the compiled engine compiles its step, once per configuration,
machine and torch version), then the same folder again (it loads the package).

    python benchmarks/compile_cost.py                       # learn(2000) and learn(20000)
    python benchmarks/compile_cost.py --steps 2000 20000 100000

``--trees`` compares source trees instead, in one sitting: for each tree in turn (the order reversed every other
round, ``--rounds``), the compiled engine into an empty cache and then from it, ``sb3_tutorial_sac`` imported from that
tree (``PYTHONPATH`` and the working folder, as ``ab_trees.py`` does):

    git worktree add /tmp/before <commit>
    python benchmarks/compile_cost.py --steps 2000 --trees /tmp/before . --rounds 3

``--core N`` starts every process pinned to core N (``common.run_pinned``); by default they are not pinned.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from common import add_core_argument, alternate, resolve_core, run_pinned

CHILD = """
import json, sys, time
start = time.perf_counter()
import torch as th
th.set_num_threads(1)
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import CompiledEngine
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=sys.argv[1])
model.learn(int(sys.argv[2]))
engine = model.update_engine
import sb3_tutorial_sac
print(json.dumps({
    "package": sb3_tutorial_sac.__file__,
    "seconds": time.perf_counter() - start,
    "engine": type(engine).__name__,
    "compile_seconds": getattr(engine, "compile_seconds", None),
    "loaded_from_cache": getattr(engine, "loaded_from_cache", None),
    "unavailable": getattr(engine, "unavailable", None),
}))
"""


def run(engine: str, steps: int, cache: str, tree: str | None = None, core: int | None = None) -> dict:
    """One process's figures; ``tree``: ``sb3_tutorial_sac`` imported from that source tree; ``core``: pinned to it."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    if tree is not None:
        env["PYTHONPATH"] = os.path.abspath(tree)
    result = run_pinned(
        [sys.executable, "-c", CHILD, engine, str(steps)],
        core,
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=os.path.abspath(tree) if tree is not None else None,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if tree is not None:
        assert figures["package"].startswith(os.path.abspath(tree)), f"imported {figures['package']}, not from {tree}"
    return figures


def compare_trees(trees: list[str], steps: int, rounds: int, core: int | None) -> None:
    """The compiled engine's cold and cached cost for each tree, alternating, each round in a new empty cache."""
    print(f"learn({steps}), compiled engine; process s and compile/load s; an empty cache, then the same cache filled")
    for k in range(rounds):
        for tree in alternate(trees, k):
            cache = tempfile.mkdtemp(prefix="inductor-cache-")
            figures = [run("compiled", steps, cache, tree, core) for _ in ("empty", "filled")]
            line = " | ".join(
                f"{state}: {r['seconds']:.1f} s, compile/load {r['compile_seconds']:.2f} s"
                + (f" UNAVAILABLE: {r['unavailable']}" if r["unavailable"] else "")
                for state, r in zip(("empty", "filled"), figures)
            )
            print(f"round {k + 1} {tree}: {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[2000, 20000], help="learn() lengths")
    parser.add_argument("--trees", nargs="+", help="source trees to compare (the compiled engine only)")
    parser.add_argument("--rounds", type=int, default=3, help="with --trees: alternations")
    add_core_argument(parser, None)
    args = parser.parse_args()
    core = resolve_core(args.core)
    if args.trees:
        for steps in args.steps:
            compare_trees(args.trees, steps, args.rounds, core)
        return
    print(f"{'learn()':>8} {'engine':>9} {'cache':>6} {'process s':>10} {'compile/load s':>15}")
    for steps in args.steps:
        cache = tempfile.mkdtemp(prefix="inductor-cache-")
        for engine, state in (("fast", "-"), ("compiled", "empty"), ("compiled", "filled")):
            start = time.perf_counter()
            result = run(engine, steps, cache, core=core)
            compile_seconds = result["compile_seconds"]
            shown = f"{compile_seconds:.2f}" if compile_seconds is not None else "-"
            note = f"  UNAVAILABLE: {result['unavailable']}" if result["unavailable"] else ""
            print(f"{steps:>8} {engine:>9} {state:>6} {result['seconds']:>10.1f} {shown:>15}{note}", flush=True)
            assert time.perf_counter() - start >= result["seconds"]


if __name__ == "__main__":
    main()
