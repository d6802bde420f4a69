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
``PYTHONPATH`` set to it) lies in the same cache folder under its own key. Both packages call the AVX-512 kernel this
tree built and loaded (one symbol per process): two kernel sources are compared in fresh processes instead
(``compiled_loop.py`` from each tree, or ``throughput.py``).
"""

import argparse
import statistics
import time

from compiled_loop import add_arguments, loop_inputs, warmed_up_model

from sb3_tutorial_sac.engines.compiled import _load_package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs=2, help="the two .pt2 packages, A and B")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds")
    add_arguments(parser)
    args = parser.parse_args()
    model = warmed_up_model(args)
    engine = model.update_engine
    stacked, steps, interval = loop_inputs(model, args.steps)
    with engine.loop():  # the loop's other inputs, as the engine makes them for a call
        noise = engine._noise_block(steps, stacked[1].shape[1:])
        scalars = engine._scalars_of_steps(steps, interval)
        kept = [*stacked, noise, scalars, *(t.clone() for t in engine._persistent)]
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
