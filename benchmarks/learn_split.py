"""Where one env step of ``learn()`` goes: microseconds per env step in each part of SB3's loop, for one engine.

A TutorialSAC model on Pendulum-v1 with the tutorial's defaults (one episode per rollout, as many gradient steps as
env steps) is warmed up with ``learn(1000)``; then ``learn(--steps)`` runs with a wall clock around ``train()`` (and,
inside it, the engine's steps and the minibatch sampling), ``policy.predict`` (the action of every env step),
``env.step`` and ``_store_transition``. The rest is SB3's loop itself (callbacks, counters, logging). One core, one
torch thread.

    python benchmarks/learn_split.py --engine compiled --steps 10000
"""

import argparse
import collections
import os
import time
import warnings
from collections.abc import Callable
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="compiled", help="TutorialSAC(engine=...)")
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of the timed learn()")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to (-1: not pinned)")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    import torch as th
    from stable_baselines3.common.logger import Logger

    from sb3_tutorial_sac import TutorialSAC

    th.set_num_threads(1)
    warnings.simplefilter("ignore")
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=args.engine)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(1000)
    seconds: collections.Counter = collections.Counter()

    def timed(owner: Any, name: str, part: str) -> None:
        function: Callable = getattr(owner, name)

        def wrapper(*call_args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*call_args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        setattr(owner, name, wrapper)  # an instance attribute: only this model's calls are timed

    timed(model, "train", "train()")
    timed(model.update_engine, "run_steps", "  the engine's steps")
    timed(model, "_sample_minibatches", "  sampling the minibatches")
    timed(model.policy, "predict", "predict()")
    timed(model.get_env(), "step", "env.step()")
    timed(model, "_store_transition", "_store_transition()")
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    total = time.perf_counter() - start
    print(f"engine {model.update_engine.name}: learn({args.steps}) {total / args.steps * 1e6:.0f} µs per env step")
    for part, value in seconds.items():
        print(f"  {part:28s} {value / args.steps * 1e6:7.1f} µs")
    outer = sum(value for part, value in seconds.items() if not part.startswith(" "))
    print(f"  {'the rest (SB3 loop)':28s} {(total - outer) / args.steps * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
