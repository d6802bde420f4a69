"""Throughput of TutorialSAC against SB3's SAC and SBX's SAC (SB3's JAX port) configured for the same work, in one process.

All run on Pendulum-v1 with the tutorial's work: one 200-step episode, then 200 gradient steps on minibatches of
64, actor [128], critics [128, 128], buffer 100,000, no warm-up. One rule for every model: it is built, warmed up
with ``learn(--warmup-steps)`` (which holds SBX's JIT compilation and TutorialSAC's compiled engine's one-off
compile; both are printed), then timed. Repeats alternate the order of the models so that machine drift cancels;
figures are medians. One core for all: the process is pinned to ``--core`` (``os.sched_setaffinity``, before torch and
JAX are imported, so that every thread either library starts is held to that core), with one thread each (torch's
``set_num_threads``, XLA's single-threaded Eigen through ``XLA_FLAGS``). For each peer the table gives the cores it
actually used (process CPU time over wall time during its timed calls: 1.00 at most when pinned, less when the core
is shared with other work).

The GFLOP/s line: the floating-point operations one gradient step needs (the matrix products of the networks, counted
from their sizes, :func:`step_flops`; the same count for every peer, the arithmetic the algorithm cannot avoid) times
the ``train()`` grad steps/s, against the core's measured peak: the best large product any library reaches on the
pinned core (torch's ``mm``, oneDNN's linear, JAX's ``dot``, 2048x2048).

``--sb3-sizes`` measures at SB3's default sizes instead (actor and critics 256x256, batch 256).

SBX is optional (``pip install -e ".[bench]"``); without it the script says so and measures the others.

    python benchmarks/throughput.py                 # full run, pinned to the last core
    python benchmarks/throughput.py --core 1 --sb3-sizes   # SB3's default sizes, on core 1
    python benchmarks/throughput.py --repeats 3 --no-time-to-threshold
    python benchmarks/throughput.py --engines auto reference   # TutorialSAC engines to measure (default: auto compiled)

The last lines printed are the ratios of each TutorialSAC engine to SBX's SAC and to SB3's SAC, of ``learn()``
env steps per second and of ``train()`` gradient steps per second: paired by repeat (each model against the peer
measured next to it), their median over the repeats with a distribution-free 95% interval, and whether that interval
lies above or below the line the ratio is read against (``learn()`` 1.3x, ``train()`` 1.0x) or includes it
(inconclusive). 5 repeats are too few for a 95% interval (no verdict); ``--repeats 9`` gives the 2nd to 8th values.
Before them, ``train()`` and ``learn()`` are measured once more with SBX, models built once and their calls
alternating (``--paired-rounds``, CPU clock): the ratio of neighbouring calls, the tightest figure this machine gives.
"""

import argparse
import copy
import itertools
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from common import (  # the shared harness: imports neither torch nor JAX
    add_core_argument,
    alternate,
    cpu_seconds,
    describe_ratio,
    median_interval,
    paired_ratios,
    pin_from_argv,
    pinned_as,
    xla_single_thread,
)

# pinned before torch and JAX are imported, so that every thread they start is held to the core
CORE = pin_from_argv("last") if __name__ == "__main__" else None

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import stable_baselines3  # noqa: E402
import torch as th  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

import sb3_tutorial_sac  # noqa: E402
from sb3_tutorial_sac import TutorialSAC  # noqa: E402
from sb3_tutorial_sac.engines import ENGINE_NAMES  # noqa: E402

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
# SB3's default sizes (--sb3-sizes): actor and critics 256x256, batch 256; for every peer, TutorialSAC included
SB3_SIZES: dict[str, Any] = dict(policy_kwargs=dict(net_arch=dict(pi=[256, 256], qf=[256, 256])), batch_size=256)


def make_tutorial_sac(seed: int, engine: str = "auto", sizes: dict[str, Any] | None = None) -> TutorialSAC:
    """TutorialSAC with every default (the tutorial's setup), with the given engine (and ``sizes``: SB3's sizes)."""
    return TutorialSAC("MlpPolicy", ENV_ID, seed=seed, device="cpu", engine=engine, **copy.deepcopy(sizes or {}))


def make_sac(seed: int, sizes: dict[str, Any] | None = None) -> SAC:
    """SB3's SAC set to the tutorial's work."""
    # copies: SB3 adds its own entries to the policy_kwargs it is given (use_sde)
    return SAC("MlpPolicy", ENV_ID, seed=seed, device="cpu", **copy.deepcopy({**PEER_KWARGS, **(sizes or {})}))


def import_sbx(threads: int) -> Any:
    """SBX's SAC class, or None when ``sbx-rl`` is not installed. XLA's threads are set before JAX is imported."""
    if threads == 1:
        xla_single_thread()
    try:
        from sbx import SAC as SBXSAC
    except ImportError:
        return None
    return SBXSAC


def make_sbx_sac(sbx_sac: Any, seed: int, sizes: dict[str, Any] | None = None) -> Any:
    """SBX's SAC (JAX, CPU) set to the tutorial's work."""
    return sbx_sac("MlpPolicy", ENV_ID, seed=seed, **copy.deepcopy({**PEER_KWARGS, **(sizes or {})}))


def step_flops(obs_dim: int, act_dim: int, actor: list[int], critic: list[int], batch: int, n_critics: int = 2) -> int:
    """
    The floating-point operations of the matrix products one SAC gradient step needs, counted from the network sizes
    (``2 * m * k * n`` per product): the arithmetic no implementation avoids, the same count for every peer.

    - the target: the actor's forward pass at ``s'`` (trunk and the two heads), each target critic's forward pass;
    - the critics' update: each critic's forward pass and its backward pass (weight gradients of every layer, input
      gradients of every layer but the first);
    - the actor's update: the actor's forward pass at ``s`` and its backward pass (weight gradients, input gradients
      but the first layer's), each critic's forward pass and its backward pass to the action columns of its input.

    :param obs_dim: observation size
    :param act_dim: action size
    :param actor: widths of the actor's trunk
    :param critic: widths of each critic's hidden layers
    :param batch: minibatch size
    :param n_critics: number of critics (and of target critics)
    :return: the operations of one gradient step
    """

    def products(sizes: list[tuple[int, int]]) -> int:
        return sum(2 * batch * n_in * n_out for n_in, n_out in sizes)

    trunk_dims = [obs_dim, *actor]
    trunk = list(itertools.pairwise(trunk_dims))
    heads = [(trunk_dims[-1], act_dim)] * 2
    critic_dims = [obs_dim + act_dim, *critic, 1]
    layers = list(itertools.pairwise(critic_dims))
    actor_forward = products(trunk + heads)
    # backward: weight gradients of every layer, input gradients of every layer after the first
    actor_backward = products(trunk + heads) + products(trunk[1:] + heads)
    critic_forward = products(layers)
    critic_backward = products(layers) + products(layers[1:])
    # to the action columns: the deeper layers' input gradients, then the first layer's product with the action columns
    critic_to_action = products(layers[1:]) + 2 * batch * critic_dims[1] * act_dim
    target = actor_forward + n_critics * critic_forward
    critics = n_critics * (critic_forward + critic_backward)
    actor_update = actor_forward + actor_backward + n_critics * (critic_forward + critic_to_action)
    return target + critics + actor_update


def peak_gflops(size: int = 2048, sbx: bool = False) -> dict[str, float]:
    """
    The core's measured peak: GFLOP/s of one ``size`` x ``size`` product, best of 5, by torch's ``mm`` (the BLAS it
    was built with), oneDNN's linear (``torch.ops.mkldnn._linear_pointwise`` with a prepacked weight) and, where SBX
    is installed, JAX's ``dot`` (XLA).
    """
    a, b = th.randn(size, size), th.randn(size, size)
    flops = 2 * size**3
    candidates: dict[str, Callable[[], Any]] = {"torch mm": lambda: a.mm(b)}
    with th.no_grad():
        try:
            packed = th.ops.mkldnn._reorder_linear_weight(b, size)
            candidates["oneDNN linear"] = lambda: th.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
        except (AttributeError, RuntimeError):
            pass
        if sbx:
            import jax
            import jax.numpy as jnp

            ja, jb = jnp.asarray(a.numpy()), jnp.asarray(b.numpy())
            dot = jax.jit(lambda x, y: x @ y)
            candidates["jax dot"] = lambda: dot(ja, jb).block_until_ready()
        result = {}
        for name, product in candidates.items():
            product()
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - start)
            result[name] = flops / best / 1e9
    return result


# The lines the issue reads the ratios against (issue 22): learn() 1.3x SBX's, train() 1.0x
LEARN_LINE = 1.3


class Timings:
    """One model's measurements: its warm-up, ``learn()`` env steps/s, ``train()`` gradient steps/s, and the cores it
    used during each (CPU time over wall time)."""

    def __init__(self) -> None:
        self.warmup: list[float] = []
        self.learn: list[float] = []
        self.train: list[float] = []
        self.learn_cores: list[float] = []
        self.train_cores: list[float] = []


def measure(
    make: Callable[[int], Any], seed: int, warmup_steps: int, learn_steps: int, train_steps: int, batch_size: int,
    timings: Timings, train_calls: int = 3,
):  # fmt: skip
    """
    Build a model, warm it up with ``learn(warmup_steps)`` (timed apart: compilation happens here), then time
    ``learn(learn_steps)``; then ``train(train_steps)`` once untimed (SBX compiles its loop for each number of
    gradient steps) and ``train_calls`` times timed (their median is this repeat's figure).
    """
    model = make(seed)
    start = time.perf_counter()
    model.learn(warmup_steps)
    timings.warmup.append(time.perf_counter() - start)
    start, cpu = time.perf_counter(), cpu_seconds()
    model.learn(learn_steps, reset_num_timesteps=False)
    wall = time.perf_counter() - start
    timings.learn.append(learn_steps / wall)
    timings.learn_cores.append((cpu_seconds() - cpu) / wall)
    model.train(gradient_steps=train_steps, batch_size=batch_size)
    rates, cores = [], []
    for _ in range(train_calls):
        start, cpu = time.perf_counter(), cpu_seconds()
        model.train(gradient_steps=train_steps, batch_size=batch_size)
        wall = time.perf_counter() - start
        rates.append(train_steps / wall)
        cores.append((cpu_seconds() - cpu) / wall)
    timings.train.append(statistics.median(rates))
    timings.train_cores.append(statistics.median(cores))


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


def paired_rounds(
    makers: dict[str, Callable[[int], Any]], rounds: int, method: str, steps: int, batch_size: int
) -> dict[str, list[float]]:
    """
    ``train()`` (or ``learn()``) of every model in alternation, the models built once: each is warmed up
    (``learn(600)`` and one untimed call), then ``rounds`` rounds of one call each, in alternating order, timed by
    the process's CPU clock. Neighbouring calls see the same machine, so the per-round ratios are tighter than those
    of whole repeats.

    :param method: ``"train"``: ``train(steps)`` gradient steps; ``"learn"``: ``learn(steps)`` env steps, continued
    :return: steps per CPU second of each model, per round
    """

    def call(model: Any) -> None:
        if method == "train":
            model.train(gradient_steps=steps, batch_size=batch_size)
        else:
            model.learn(steps, reset_num_timesteps=False)

    models = {name: make(0) for name, make in makers.items()}
    for model in models.values():
        model.learn(600)
        call(model)
    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(rounds):
        for name in alternate(list(models), round_):
            start = time.process_time()
            call(models[name])
            rates[name].append(steps / (time.process_time() - start))
    return rates


def report_paired(makers: dict[str, Callable[[int], Any]], rounds: int, method: str, steps: int, batch_size: int) -> None:
    """Print :func:`paired_rounds` of every model but SB3's SAC, and each TutorialSAC engine's paired ratio to SBX
    (read against 1.3 for ``learn()``, 1.0 for ``train()``)."""
    makers = {name: make for name, make in makers.items() if name != "SB3 SAC"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rates = paired_rounds(makers, rounds, method, steps, batch_size)
    unit = "grad steps" if method == "train" else "env steps"
    print(
        f"\n{method}() in alternation, the models built once: {rounds} rounds of {method}({steps}) each, CPU clock; "
        f"{unit} per CPU second, median [distribution-free 95% interval]"
    )
    for name, values in rates.items():
        low, high = median_interval(values)
        print(f"  {name:<22} {statistics.median(values):7.0f} [{low:.0f}, {high:.0f}]")
    line = 1.0 if method == "train" else LEARN_LINE
    for name in rates:
        if name.startswith("TutorialSAC"):
            ratios = paired_ratios(rates[name], rates["SBX SAC"])
            print(f"  {name} / SBX SAC, paired by round: {method}() {describe_ratio(ratios, line)}")


def report_ratios(timings: dict[str, Timings], repeats: int) -> None:
    """Print each TutorialSAC engine's ratios to SBX's and SB3's SAC, paired by repeat (:func:`describe_ratio`)."""
    print(
        "\nRatios: per repeat, each model's figure over the peer's from the same repeat (measured next to each other), "
        f"then their median over the {repeats} repeats and its distribution-free 95% interval (order statistics); "
        "a ratio is called above or below a line only where the interval excludes it"
    )
    peers = [name for name in ("SBX SAC", "SB3 SAC") if name in timings]
    for name in timings:
        if not name.startswith("TutorialSAC"):
            continue
        for peer in peers:
            parts = []
            for key, line in (("learn", LEARN_LINE), ("train", 1.0)):
                ratios = paired_ratios(getattr(timings[name], key), getattr(timings[peer], key))
                parts.append(f"{key}() {describe_ratio(ratios, line)}")
            print(f"{name} / {peer}: " + "; ".join(parts))


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
    add_core_argument(parser, "last")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each measurement (median reported)")
    parser.add_argument("--warmup-steps", type=int, default=400, help="env steps of each model's untimed warm-up learn()")
    parser.add_argument("--learn-steps", type=int, default=2000, help="env steps of each learn() measurement")
    parser.add_argument("--train-steps", type=int, default=1000, help="gradient steps of each train() measurement")
    parser.add_argument("--train-calls", type=int, default=3, help="timed train() calls per repeat (their median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads and XLA's (default 1)")
    parser.add_argument("--sb3-sizes", action="store_true", help="SB3's default sizes: networks 256x256, batch 256")
    parser.add_argument(
        "--engines", nargs="+", default=["auto", "compiled"], choices=[n for n in ENGINE_NAMES],
        help="TutorialSAC engines to measure (TutorialSAC(engine=...))",
    )  # fmt: skip
    parser.add_argument("--no-sac", action="store_true", help="leave SB3's SAC out")
    parser.add_argument("--seeds-to-threshold", type=int, default=3, help="seeds for the time-to--200 measurement")
    parser.add_argument("--no-time-to-threshold", action="store_true", help="skip the time-to--200 measurement")
    parser.add_argument("--paired-rounds", type=int, default=31, help="rounds of train() in alternation (0: none)")
    parser.add_argument("--paired-steps", type=int, default=300, help="gradient steps per train() call in those rounds")
    parser.add_argument(
        "--paired-learn-steps", type=int, default=1000, help="env steps per learn() call in those rounds (0: none)"
    )
    args = parser.parse_args()
    sbx_sac = import_sbx(args.threads)
    th.set_num_threads(args.threads)
    sizes = SB3_SIZES if args.sb3_sizes else None
    batch_size = (sizes or PEER_KWARGS)["batch_size"]
    net_arch = (sizes or PEER_KWARGS)["policy_kwargs"]["net_arch"]

    makers: dict[str, Callable[[int], Any]] = {
        f"TutorialSAC[{engine}]": partial(make_tutorial_sac, engine=engine, sizes=sizes) for engine in args.engines
    }
    if sbx_sac is not None:
        makers["SBX SAC"] = partial(make_sbx_sac, sbx_sac, sizes=sizes)
    if not args.no_sac:
        makers["SB3 SAC"] = partial(make_sac, sizes=sizes)

    pinned = pinned_as(CORE)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {pinned}, "
        f"{th.get_num_threads()} torch thread(s); networks {net_arch}, batch {batch_size}"
    )
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
    peaks = peak_gflops(sbx=sbx_sac is not None)
    print("one 2048x2048 product on this core: " + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items()))

    timings = {name: Timings() for name in makers}
    for repeat in range(args.repeats):
        for name in alternate(list(makers), repeat):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                measure(makers[name], repeat, args.warmup_steps, args.learn_steps, args.train_steps, batch_size,
                        timings[name], args.train_calls)  # fmt: skip

    print(
        f"\n{'':<22} {'learn() env steps/s':>20} {'train() grad steps/s':>21} {'warm-up learn() s':>18} {'cores used':>16}"
        f"   (median of {args.repeats}; warm-up: first / median; cores: CPU time / wall time in learn() / train())"
    )
    for name, timing in timings.items():
        warmup = f"{timing.warmup[0]:.2f} / {statistics.median(timing.warmup):.2f}"
        cores = f"{statistics.median(timing.learn_cores):.2f} / {statistics.median(timing.train_cores):.2f}"
        print(
            f"{name:<22} {statistics.median(timing.learn):>20.0f} {statistics.median(timing.train):>21.0f} {warmup:>18}"
            f" {cores:>16}"
        )

    env = gym.make(ENV_ID)
    obs_dim, act_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))  # type: ignore[arg-type]
    flops = step_flops(obs_dim, act_dim, net_arch["pi"], net_arch["qf"], batch_size)
    peak_name = max(peaks, key=peaks.__getitem__)
    peak = peaks[peak_name]
    print(
        f"\nGFLOP/s in train(): {flops / 1e6:.1f} MFLOP per gradient step (the networks' matrix products) x grad steps/s, "
        f"against the core's peak {peak:.0f} GFLOP/s ({peak_name}, 2048x2048)"
    )
    for name, timing in timings.items():
        achieved = flops * statistics.median(timing.train) / 1e9
        print(f"  {name:<22} {achieved:6.1f} GFLOP/s = {achieved / peak:5.1%} of the peak")

    if args.paired_rounds and "SBX SAC" in makers:
        report_paired(makers, args.paired_rounds, "train", args.paired_steps, batch_size)
        if args.paired_learn_steps:
            report_paired(makers, args.paired_rounds, "learn", args.paired_learn_steps, batch_size)

    if not args.no_time_to_threshold:
        for engine in args.engines:
            time_to_threshold(engine, args.seeds_to_threshold)

    report_ratios(timings, args.repeats)


if __name__ == "__main__":
    main()
