"""What the compiled engine costs a user, end to end: fresh processes, an empty and a filled compile cache.

Each measurement is one new Python process that builds ``TutorialSAC("MlpPolicy", "Pendulum-v1")`` with the given
engine and runs ``learn(steps)`` on one torch thread; the time printed is the whole process (imports, construction,
compilation or loading, training), as a user running a script sees it. The cache is Inductor's folder
(``TORCHINDUCTOR_CACHE_DIR``): first an empty one (the compiled engine compiles its step, once per configuration,
machine and torch version), then the same folder again (it loads the package).

    python benchmarks/compile_cost.py                       # learn(2000) and learn(20000), about 3 minutes
    python benchmarks/compile_cost.py --steps 2000 20000 100000
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys, time
start = time.perf_counter()
import torch as th
th.set_num_threads(1)
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import CompiledEngine
CompiledEngine.looped = sys.argv[3] == "loop"
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=sys.argv[1])
model.learn(int(sys.argv[2]))
engine = model.update_engine
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "engine": type(engine).__name__,
    "compile_seconds": getattr(engine, "compile_seconds", None),
    "loaded_from_cache": getattr(engine, "loaded_from_cache", None),
    "unavailable": getattr(engine, "unavailable", None),
}))
"""


def run(engine: str, steps: int, cache: str, compiled: str = "loop") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(steps), compiled],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "TORCHINDUCTOR_CACHE_DIR": cache},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[2000, 20000], help="learn() lengths")
    parser.add_argument(
        "--compiled",
        choices=["loop", "step"],
        default="loop",
        help="compile all steps of a train() call as one loop (the default) or one step (CompiledEngine.looped)",
    )
    args = parser.parse_args()
    print(f"{'learn()':>8} {'engine':>9} {'cache':>6} {'process s':>10} {'compile/load s':>15}")
    for steps in args.steps:
        cache = tempfile.mkdtemp(prefix="inductor-cache-")
        for engine, state in (("fast", "-"), ("compiled", "empty"), ("compiled", "filled")):
            start = time.perf_counter()
            result = run(engine, steps, cache, args.compiled)
            compile_seconds = result["compile_seconds"]
            shown = f"{compile_seconds:.2f}" if compile_seconds is not None else "-"
            note = f"  UNAVAILABLE: {result['unavailable']}" if result["unavailable"] else ""
            print(f"{steps:>8} {engine:>9} {state:>6} {result['seconds']:>10.1f} {shown:>15}{note}", flush=True)
            assert time.perf_counter() - start >= result["seconds"]


if __name__ == "__main__":
    main()
