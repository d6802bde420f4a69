"""Two compiled loop packages (the same inputs, ``LOOP_INPUTS``) against each other in one process, alternating.

A TutorialSAC model on Pendulum-v1 with ``engine="compiled"`` is warmed up with ``learn(500)`` (which compiles or
loads this tree's package, and loads the AVX-512 kernel where the step uses it); the inputs of one ``train(200)``
call's compiled loop are kept (``--sb3-sizes``: SB3's default sizes, networks 256x256 and batch 256); then both
packages run on their own copies of those inputs, ``--rounds`` times in alternating order, CPU time per gradient step.
Printed: the largest difference between the two packages' statistics from the same inputs, each package's median µs
per step, and the median of A's time over B's, paired by round, with its quartiles.

    ls -t "$(python -c 'from sb3_tutorial_sac.engines.compiled import cache_folder; print(cache_folder())')"
    python benchmarks/ab_packages.py OLD.pt2 NEW.pt2 --rounds 40

A package compiled by another tree of the same step (``compiled_loop.py`` run from that tree, with
``PYTHONPATH`` set to it) lies in the same cache folder under its own key.
"""

import argparse
import os
import statistics
import time
import warnings

import torch as th
from stable_baselines3.common.logger import Logger

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines.compiled import _load_package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs=2, help="the two .pt2 packages, A and B")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per call")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: not pinned)")
    parser.add_argument("--sb3-sizes", action="store_true", help="SB3's default sizes: networks 256x256, batch 256")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    th.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    sizes = dict(policy_kwargs=dict(net_arch=[256, 256]), batch_size=256) if args.sb3_sizes else {}
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled", **sizes)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(500)
    engine = model.update_engine
    kept: list[th.Tensor] = []
    run_loop = engine._run_loop

    def keep(stacked, steps, stats, interval):  # the engine's call, its inputs recorded once
        noise = engine._noise_block(steps, stacked[1].shape[1:])
        scalars = engine._scalars_of_steps(steps, interval)
        if not kept:
            kept.extend([*(c.clone() for c in stacked), noise, scalars, *(t.clone() for t in engine._persistent)])
        return run_loop(stacked, steps, stats, interval)

    engine._run_loop = keep  # type: ignore[method-assign]
    model.train(args.steps, model.batch_size)
    assert kept, "the compiled loop is not in use"
    runners = [_load_package(path).boxed_run for path in args.packages]
    first = [runner([t.clone() for t in kept])[0] for runner in runners]
    print(f"largest difference of the statistics from the same inputs: {(first[0] - first[1]).abs().max().item()}")
    copies = [[t.clone() for t in kept] for _ in runners]
    times: list[list[float]] = [[], []]
    for k in range(args.rounds):
        for i in (0, 1) if k % 2 == 0 else (1, 0):
            start = time.process_time()
            runners[i](list(copies[i]))
            times[i].append((time.process_time() - start) / args.steps * 1e6)
    ratios = sorted(a / b for a, b in zip(*times))
    quartiles = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    print(
        f"A {statistics.median(times[0]):.1f} µs, B {statistics.median(times[1]):.1f} µs per step (medians); "
        f"A/B time {statistics.median(ratios):.3f} [quartiles {quartiles[0]:.3f}, {quartiles[1]:.3f}]"
    )


if __name__ == "__main__":
    main()
