"""Where a TutorialSAC gradient step spends its time, and the measurements behind the fast path's design choices.

Prints, on one CPU thread (medians of ``--repeats`` timings of ``--calls`` calls each):

- the operations of one eager gradient step of ``train()`` (the fast engine, in inference mode as ``train()`` runs
  it), by self time, from torch's profiler;
- ``predict()`` on one observation, and what SB3's per-call training-mode walk and device lookup would add to it;
- the time of one ``64x128 @ 128x128`` product (12 per gradient step), and its GFLOP/s in each layout the step uses,
  as the two critics' ``bmm`` ensemble and as oneDNN's linear, against a 2048x2048 product (the core's peak);
- drawing the minibatches of one ``train()`` call (200 of 64) without replacement, the tutorial's ``random.sample``
  (``sample_minibatches``), against SB3's draw with replacement, per gradient step, with 200, 1,000 and 100,000
  (full buffer) Pendulum transitions stored;
- two exactness checks that decided the design: MKL's matrix product written with ``out=`` into an unaligned view
  against a fresh tensor, and the two critics as one ``bmm`` ensemble against two ``F.linear`` calls;
- one whole gradient step of the fast engine against the compiled engine's (``engine="compiled"``: the step compiled
  once by AOTInductor, loaded from the cache when it is there), both called as ``train()`` calls them.

Usage: ``python benchmarks/step_parts.py`` (about a minute); ``--core N`` pins it to one core.
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import BaseModel

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.buffers import sample_minibatches
from sb3_tutorial_sac.engines import FastEngine, Minibatch


def timed(function: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of one call, in µs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def _batch(model: TutorialSAC) -> Minibatch:
    data = model.replay_buffer.sample(64)
    return Minibatch(
        data.observations.float(),
        data.actions,
        data.next_observations.float(),
        (data.rewards + model.reward_shift) * model.reward_scale,
        (1 - data.dones) * model.gamma,
    )


def step_parts(model: TutorialSAC, calls: int, repeats: int) -> None:
    """The operations of one eager gradient step (the fast engine), by self time (torch's profiler), and one matrix
    product of the step's largest size."""
    engine = model.update_engine
    assert isinstance(engine, FastEngine), f"the fast engine is needed, the model has {engine.name!r}"
    batch, stats = _batch(model), th.zeros(6)
    model.training_state.read(model)
    with engine.loop():
        for _ in range(10):
            engine.step(batch, stats, soft_update=True)
        with th.profiler.profile(activities=[th.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(calls // 10):
                engine.step(batch, stats, soft_update=True)
    print(f"the operations of one eager gradient step by self time (torch.profiler, {calls // 10} steps):")
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    hidden, weight = th.randn(64, 128).relu(), th.randn(128, 128)
    product = timed(lambda: hidden.mm(weight), calls, repeats)
    print(f"one 64x128 @ 128x128 product: {product:.1f} µs ({2 * 64 * 128 * 128 / product / 1e3:.0f} GFLOP/s)")


def product_rates(calls: int, repeats: int) -> None:
    """GFLOP/s of the step's large product (64x128 @ 128x128) in the layouts and calls the step can use, per product: the
    forward layer (``F.linear``: the weight transposed), the backward products (``grad @ W``, the weight gradient
    ``grad.t() @ h``), the two critics' layers as one ``bmm`` (the "ensemble" rewrite), oneDNN's linear with a prepacked
    weight (a new packing at every step, as the weights change, not counted), and 2048x2048 for the core's peak."""
    generator = th.Generator().manual_seed(0)
    hidden, grad = th.randn(64, 128, generator=generator), th.randn(64, 128, generator=generator)
    weight, bias = th.randn(128, 128, generator=generator), th.randn(128, generator=generator)
    hiddens, weights = th.randn(2, 64, 128, generator=generator), th.randn(2, 128, 128, generator=generator)
    flops = 2 * 64 * 128 * 128
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "F.linear (forward)": (lambda: F.linear(hidden, weight, bias), flops),
        "grad @ W (input gradient)": (lambda: grad.mm(weight), flops),
        "grad.t() @ h (weight gradient)": (lambda: grad.t().mm(hidden), flops),
        "bmm of two critics (ensemble)": (lambda: th.bmm(hiddens, weights.transpose(1, 2)), 2 * flops),
    }
    with th.no_grad():
        try:
            packed = th.ops.mkldnn._reorder_linear_weight(weight, 64)
            linear = th.ops.mkldnn._linear_pointwise
            cases["oneDNN linear, prepacked"] = (lambda: linear(hidden, packed, bias, "none", [], ""), flops)
        except (AttributeError, RuntimeError):
            pass
        large = th.randn(2048, 2048, generator=generator)
        print("GFLOP/s of one product (per call, including the call):")
        for name, (product, count) in cases.items():
            print(f"  {name:34s} {count / timed(product, calls, repeats) / 1e3:6.0f}")
        print(f"  {'2048x2048 mm (the peak)':34s} {2 * 2048**3 / timed(lambda: large.mm(large), 3, repeats) / 1e3:6.0f}")


def predict_cost(model: TutorialSAC, calls: int, repeats: int) -> None:
    observation = np.zeros((1, *model.observation_space.shape), np.float32)
    policy = model.policy
    predict = timed(lambda: model.predict(observation, deterministic=False), calls, repeats)
    walk = timed(lambda: BaseModel.set_training_mode(policy, False), calls, repeats)
    device = timed(lambda: BaseModel.device.fget(policy), calls, repeats)  # type: ignore[attr-defined]
    print(
        f"predict(): {predict:.1f} µs; SB3's per-call training-mode walk would add {walk:.1f} µs and its device "
        f"lookup {device:.1f} µs (called twice per predict)"
    )


def sampling_cost(model: TutorialSAC, calls: int, repeats: int, n_batches: int = 200, batch_size: int = 64) -> None:
    source = model.replay_buffer
    assert source is not None
    collected = source.size()
    print(f"drawing {n_batches} minibatches of {batch_size} (one train() call), µs per gradient step:")
    for stored in (200, 1000, 100_000):
        # the model's Pendulum transitions, repeated to fill a full buffer of `stored` (the cost does not depend on values)
        buffer = ReplayBuffer(stored, source.observation_space, source.action_space, "cpu", handle_timeout_termination=False)
        for name in ("observations", "next_observations", "actions", "rewards", "dones"):
            setattr(buffer, name, np.resize(getattr(source, name)[:collected], getattr(buffer, name).shape))
        buffer.full = True
        times = {}
        for replacement in (False, True):
            draw = partial(sample_minibatches, buffer, n_batches, batch_size, replacement=replacement)
            times[replacement] = timed(draw, max(calls // 50, 5), repeats) / n_batches
        print(
            f"  {stored:7d} stored: without replacement (tutorial) {times[False]:5.2f}, "
            f"with replacement (SB3) {times[True]:5.2f}"
        )


def exactness_checks(trials: int) -> None:
    generator = th.Generator().manual_seed(0)
    differs = 0
    for _ in range(trials):
        grad, layer_input = th.randn(64, 1, generator=generator), th.randn(64, 128, generator=generator).relu()
        buffer = th.zeros(200)
        view = buffer[1:129].view(1, 128)  # 4 bytes past an aligned address
        th.mm(grad.t(), layer_input, out=view)
        differs += not th.equal(view, grad.t().mm(layer_input))
    print(f"1x128 weight gradient written with out= at an unaligned address: differs in {differs} of {trials} trials")
    for n_in, n_out in ((4, 128), (128, 128), (128, 1), (256, 256)):
        differs = 0
        for _ in range(trials):
            weights, biases = th.randn(2, n_out, n_in, generator=generator), th.randn(2, n_out, generator=generator)
            inputs = th.randn(2, 64, n_in, generator=generator)
            ensemble = th.baddbmm(biases.unsqueeze(1), inputs, weights.transpose(1, 2))
            differs += not all(th.equal(ensemble[k], F.linear(inputs[k], weights[k], biases[k])) for k in range(2))
        print(f"two critics' {n_in}->{n_out} layer as one baddbmm: differs from F.linear in {differs} of {trials} trials")


def whole_step_cost(model: TutorialSAC, calls: int, repeats: int) -> None:
    batch = _batch(model)
    compiled = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled")
    compiled.set_logger(Logger(folder=None, output_formats=[]))
    compiled.learn(1000)  # compiles the step (or loads it), as the first train() call does
    times = {}
    for name, algorithm in (("fast", model), ("compiled", compiled)):
        engine, stats = algorithm.update_engine, th.zeros(6)
        algorithm.training_state.read(algorithm)
        with engine.loop():
            times[name] = timed(lambda engine=engine, stats=stats: engine.step(batch, stats, soft_update=True), calls, repeats)
    engine = compiled.update_engine
    unavailable = getattr(engine, "unavailable", None)
    print(
        f"one whole gradient step: fast engine {times['fast']:.1f} µs, compiled engine {times['compiled']:.1f} µs "
        f"({times['fast'] / times['compiled']:.2f}x; compile or load {getattr(engine, 'compile_seconds', None)} s"
        f"{', UNAVAILABLE: ' + unavailable if unavailable else ''})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure (median)")
    parser.add_argument("--trials", type=int, default=100, help="random trials per exactness check")
    parser.add_argument("--core", type=int, default=None, help="pin the process to this core")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    th.set_num_threads(1)
    print(f"torch {th.__version__}, 1 thread")
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(1000)
    step_parts(model, args.calls, args.repeats)
    product_rates(args.calls, args.repeats)
    predict_cost(model, args.calls, args.repeats)
    sampling_cost(model, args.calls, args.repeats)
    exactness_checks(args.trials)
    whole_step_cost(model, args.calls, args.repeats)


if __name__ == "__main__":
    main()
