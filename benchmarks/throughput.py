"""Throughput of TutorialSAC against SB3's SAC and SBX's SAC (SB3's JAX port) configured for the same work, in one process.

All run on Pendulum-v1 with the tutorial's work: one 200-step episode, then 200 gradient steps on minibatches of
64, actor [128], critics [128, 128], buffer 100,000, no warm-up. One rule for every model: it is built, warmed up
with ``learn(--warmup-steps)`` (which holds SBX's JIT compilation and TutorialSAC's compiled engine's one-off
compile; both are printed), then timed. Repeats alternate the order of the models so that machine drift cancels;
figures are medians. One thread each: torch's ``set_num_threads`` and XLA's single-threaded Eigen (``XLA_FLAGS``,
set before JAX is imported).

SBX is optional (``pip install -e ".[bench]"``); without it the script says so and measures the others.

    python benchmarks/throughput.py                 # full run (about 5 minutes on one thread)
    python benchmarks/throughput.py --repeats 3 --no-time-to-threshold
    python benchmarks/throughput.py --engines auto reference   # TutorialSAC engines to measure (default: auto compiled)

The last lines printed are the ratios of each TutorialSAC engine to SBX's SAC and to SB3's SAC, of ``learn()``
env steps per second and of ``train()`` gradient steps per second.
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import sb3_tutorial_sac
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.engines import ENGINE_NAMES

ENV_ID = "Pendulum-v1"
# The tutorial's networks and work for the SB3 and SBX peers (their own losses, init and alpha rules otherwise)
PEER_KWARGS: dict[str, Any] = dict(
    policy_kwargs=dict(net_arch=dict(pi=[128], qf=[128, 128])),
    batch_size=64,
    buffer_size=100_000,
    train_freq=(1, "episode"),
    gradient_steps=-1,
    learning_starts=0,
)


def make_tutorial_sac(seed: int, engine: str = "auto") -> TutorialSAC:
    """TutorialSAC with every default (the tutorial's setup), with the given engine."""
    return TutorialSAC("MlpPolicy", ENV_ID, seed=seed, device="cpu", engine=engine)


def make_sac(seed: int) -> SAC:
    """SB3's SAC set to the tutorial's work."""
    return SAC("MlpPolicy", ENV_ID, seed=seed, device="cpu", **PEER_KWARGS)


def import_sbx(threads: int) -> Any:
    """SBX's SAC class, or None when ``sbx-rl`` is not installed. XLA's threads are set before JAX is imported."""
    if threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()
    try:
        from sbx import SAC as SBXSAC
    except ImportError:
        return None
    return SBXSAC


def make_sbx_sac(sbx_sac: Any, seed: int) -> Any:
    """SBX's SAC (JAX, CPU) set to the tutorial's work."""
    return sbx_sac("MlpPolicy", ENV_ID, seed=seed, **PEER_KWARGS)


class Timings:
    """One model's measurements: its warm-up, ``learn()`` env steps/s and ``train()`` gradient steps/s."""

    def __init__(self) -> None:
        self.warmup: list[float] = []
        self.learn: list[float] = []
        self.train: list[float] = []


def measure(make: Callable[[int], Any], seed: int, warmup_steps: int, learn_steps: int, train_steps: int, timings: Timings):
    """
    Build a model, warm it up with ``learn(warmup_steps)`` (timed apart: compilation happens here), then time
    ``learn(learn_steps)``; then ``train(train_steps)`` once untimed (SBX compiles its loop for each number of
    gradient steps) and once timed.
    """
    model = make(seed)
    start = time.perf_counter()
    model.learn(warmup_steps)
    timings.warmup.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.learn(learn_steps, reset_num_timesteps=False)
    timings.learn.append(learn_steps / (time.perf_counter() - start))
    model.train(gradient_steps=train_steps, batch_size=64)
    start = time.perf_counter()
    model.train(gradient_steps=train_steps, batch_size=64)
    timings.train.append(train_steps / (time.perf_counter() - start))


class TimeToThreshold(BaseCallback):
    """Stops learn() when the mean stochastic return of ``n_episodes`` reaches ``threshold``.

    Evaluations run every ``eval_every`` env steps and their own time is excluded from the clock.
    """

    def __init__(self, threshold: float, eval_every: int, n_episodes: int, seed: int):
        super().__init__()
        self.threshold, self.eval_every, self.n_episodes = threshold, eval_every, n_episodes
        self.eval_env = Monitor(gym.make(ENV_ID))
        self.eval_env.reset(seed=seed + 1000)
        self.eval_seconds = 0.0
        self.reached_at: tuple[int, float] | None = None
        self.start = 0.0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.eval_every:
            return True
        eval_start = time.perf_counter()
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=False)
        self.eval_seconds += time.perf_counter() - eval_start
        if mean >= self.threshold:
            self.reached_at = (self.num_timesteps, time.perf_counter() - self.start - self.eval_seconds)
            return False
        return True


def time_to_threshold(engine: str, seeds: int) -> None:
    """Training seconds (model construction and learn(), evaluations excluded) until the mean stochastic return of
    10 episodes reaches -200, from a fresh model per seed (a compiled engine's one-off compile counts, once)."""
    times, steps = [], []
    for seed in range(seeds):
        callback = TimeToThreshold(threshold=-200.0, eval_every=1000, n_episodes=10, seed=seed)
        start = time.perf_counter()
        model = make_tutorial_sac(seed, engine)
        setup = time.perf_counter() - start
        model.learn(20_000, callback=callback)
        if callback.reached_at is not None:
            steps.append(callback.reached_at[0])
            times.append(callback.reached_at[1] + setup)
        print(f"seed {seed}: mean stochastic return of 10 episodes >= -200 at {callback.reached_at} (setup {setup:.2f} s)")
    if times:
        print(
            f"TutorialSAC[{engine}] time to -200 (training seconds, evaluations excluded): median {np.median(times):.1f} s, "
            f"median {int(np.median(steps))} env steps, {len(times)}/{seeds} seeds reached it"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each measurement (median reported)")
    parser.add_argument("--warmup-steps", type=int, default=400, help="env steps of each model's untimed warm-up learn()")
    parser.add_argument("--learn-steps", type=int, default=2000, help="env steps of each learn() measurement")
    parser.add_argument("--train-steps", type=int, default=1000, help="gradient steps of each train() measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads and XLA's (default 1)")
    parser.add_argument(
        "--engines", nargs="+", default=["auto", "compiled"], choices=[n for n in ENGINE_NAMES],
        help="TutorialSAC engines to measure (TutorialSAC(engine=...))",
    )  # fmt: skip
    parser.add_argument("--no-sac", action="store_true", help="leave SB3's SAC out")
    parser.add_argument("--seeds-to-threshold", type=int, default=3, help="seeds for the time-to--200 measurement")
    parser.add_argument("--no-time-to-threshold", action="store_true", help="skip the time-to--200 measurement")
    args = parser.parse_args()
    sbx_sac = import_sbx(args.threads)
    th.set_num_threads(args.threads)

    makers: dict[str, Callable[[int], Any]] = {
        f"TutorialSAC[{engine}]": partial(make_tutorial_sac, engine=engine) for engine in args.engines
    }
    if sbx_sac is not None:
        makers["SBX SAC"] = partial(make_sbx_sac, sbx_sac)
    if not args.no_sac:
        makers["SB3 SAC"] = make_sac

    print(f"machine: {platform.processor() or platform.machine()}, {th.get_num_threads()} torch thread(s)")
    versions = (
        f"versions: python {platform.python_version()}, torch {th.__version__}, stable-baselines3 "
        f"{stable_baselines3.__version__}, sb3-tutorial-sac {sb3_tutorial_sac.__version__}"
    )
    if sbx_sac is not None:
        import jax
        import sbx

        versions += f", sbx-rl {sbx.__version__}, jax {jax.__version__} ({jax.default_backend()})"
    print(versions)
    if sbx_sac is None:
        print(
            'SBX is not installed: pip install -e ".[bench]" (sbx-rl and CPU jax) to measure SBX\'s SAC too', file=sys.stderr
        )

    timings = {name: Timings() for name in makers}
    for repeat in range(args.repeats):
        order = list(makers) if repeat % 2 == 0 else list(reversed(makers))
        for name in order:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                measure(makers[name], repeat, args.warmup_steps, args.learn_steps, args.train_steps, timings[name])

    print(
        f"\n{'':<22} {'learn() env steps/s':>20} {'train() grad steps/s':>21} {'warm-up learn() s':>18}"
        f"   (median of {args.repeats}; warm-up: first / median)"
    )
    for name, timing in timings.items():
        warmup = f"{timing.warmup[0]:.2f} / {statistics.median(timing.warmup):.2f}"
        print(f"{name:<22} {statistics.median(timing.learn):>20.0f} {statistics.median(timing.train):>21.0f} {warmup:>18}")

    if not args.no_time_to_threshold:
        for engine in args.engines:
            time_to_threshold(engine, args.seeds_to_threshold)

    print()
    peers = [name for name in ("SBX SAC", "SB3 SAC") if name in timings]
    for name in timings:
        if not name.startswith("TutorialSAC"):
            continue
        for peer in peers:
            learn_ratio = statistics.median(timings[name].learn) / statistics.median(timings[peer].learn)
            train_ratio = statistics.median(timings[name].train) / statistics.median(timings[peer].train)
            print(f"{name} / {peer}: learn() {learn_ratio:.2f}, train() {train_ratio:.2f}")


if __name__ == "__main__":
    main()
