"""The compiled engine's loop of gradient steps called again and again, alone, for a profiler: ``perf record -p <pid>``.

A TutorialSAC model on Pendulum-v1 with the tutorial's defaults and ``engine="compiled"`` is warmed up with
``learn(500)``; the minibatches of one ``train(--steps)`` call are kept, and the engine's compiled loop
(``CompiledEngine._run_loop``: the noise and scalars of every step, then one call of the compiled package for all steps)
is run ``--calls`` times on them (the parameters move, as in training); ``--sb3-sizes``: SB3's default sizes (networks
256x256, batch 256). The process prints ``start`` before the calls, so a profiler can attach then, and the mean µs per
gradient step at the end. ``ab_packages.py`` builds on its setup.

    python benchmarks/compiled_loop.py --calls 150 &
    perf record -F 4000 -p $(pgrep -f compiled_loop.py) -o perf.data -- sleep 8   # after "start"
    perf report -i perf.data --no-children --sort dso,symbol
"""

import argparse
import os
import time
import warnings

import torch as th
from stable_baselines3.common.logger import Logger

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import CompiledEngine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every script built on :func:`warmed_up_model` takes."""
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per call")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: not pinned)")
    parser.add_argument("--sb3-sizes", action="store_true", help="SB3's default sizes: networks 256x256, batch 256")


def warmed_up_model(args: argparse.Namespace) -> TutorialSAC:
    """The process pinned to ``args.core`` with one torch thread; a compiled-engine model (SB3's sizes with
    ``args.sb3_sizes``) warmed up with ``learn(500)``, its compiled loop checked to be in use."""
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    th.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)
    sizes = dict(policy_kwargs=dict(net_arch=[256, 256]), batch_size=256) if args.sb3_sizes else {}
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled", **sizes)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(500)
    engine = model.update_engine
    why = getattr(engine, "unavailable", type(engine).__name__)
    assert isinstance(engine, CompiledEngine) and engine.unavailable is None, f"the compiled engine is not in use: {why}"
    return model


def loop_inputs(model: TutorialSAC, steps: int) -> tuple[list[th.Tensor], int, int]:
    """The minibatches (copies), steps and target update interval of the compiled loop's call in ``train(steps)``."""
    engine = model.update_engine
    assert isinstance(engine, CompiledEngine)
    kept = {}
    run_loop = engine._run_loop

    def keep(stacked, steps, stats, target_update_interval):  # the engine's call, recorded once
        kept.setdefault("inputs", ([column.clone() for column in stacked], steps, target_update_interval))
        return run_loop(stacked, steps, stats, target_update_interval)

    engine._run_loop = keep  # type: ignore[method-assign]
    try:
        model.train(steps, model.batch_size)
    finally:
        del engine._run_loop
    assert "inputs" in kept, "the compiled loop is not in use"
    return kept["inputs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=15, help="calls of the compiled loop")
    add_arguments(parser)
    args = parser.parse_args()
    model = warmed_up_model(args)
    engine = model.update_engine
    stacked, steps, interval = loop_inputs(model, args.steps)
    stats = th.zeros(steps, model.critic.n_critics + 4)
    with engine.loop():
        print("start", flush=True)
        start = time.perf_counter()
        for _ in range(args.calls):
            engine._run_loop(stacked, steps, stats, interval)
        seconds = time.perf_counter() - start
    print(f"{seconds / (args.calls * steps) * 1e6:.1f} µs per gradient step of the compiled loop")


if __name__ == "__main__":
    main()
