"""Where TutorialSAC's time goes: one script, one subcommand per question, on Pendulum-v1 with the tutorial's defaults.

Every subcommand runs pinned to ``--core`` (default: the last core; ``common.pin_from_argv``, before torch is imported)
on one torch thread.

``learn-split``: where one env step of ``learn()`` goes. A model of ``--engine`` is warmed up with ``learn(1000)``; then
``learn(--steps)`` runs with a wall clock around ``train()`` (and, inside it, the engine's steps and the minibatch
sampling), ``policy.predict`` (the action of every env step), ``env.step`` and ``_store_transition``; the rest is SB3's
loop itself (callbacks, counters, logging). µs per env step.

``step-parts``: where a gradient step spends its time, and the measurements behind the fast path's design choices
(medians of ``--repeats`` timings of ``--calls`` calls each): the operations of one eager gradient step of the fast
engine by self time (torch's profiler); GFLOP/s of the step's large product (64x128 @ 128x128) in each layout the step
uses, against a 2048x2048 product (the core's peak); ``predict()`` on one observation, and what SB3's per-call
training-mode walk and device lookup would add to it; drawing the minibatches of one ``train()`` call (200 of 64)
without replacement (the tutorial's rule) against SB3's draw with replacement, with 200, 1,000 and 100,000 transitions
stored; two exactness checks that decided the design (``--trials``: MKL's product written with ``out=`` into an
unaligned view; the two critics as one ``baddbmm`` ensemble against two ``F.linear`` calls); one whole gradient step of
the fast engine against the compiled engine's.

``train-step``: the median µs per gradient step of ``train(200, 64)`` after ``learn(2000)``, the number alone, for A/B
runs of two trees in alternating processes (``PYTHONPATH=<worktree>``); ``--replace``: ``sample_with_replacement=True``
(SB3's draw).

``guard``: the non-finite guard's cost (``check_finite=True``, the default): ``train(200)`` with and without it, 12
alternating repeats, then its parts alone (the snapshot and the end check of a ``train()`` call, the check of one
transition).

``compiled-loop``: the compiled engine's loop of gradient steps called again and again, alone, for a profiler. A
compiled-engine model is warmed up with ``learn(500)``; the minibatches of one ``train(--steps)`` call are kept, and
the engine's compiled loop (the noise and scalars of every step, then one call of the compiled package for all steps)
runs ``--calls`` times on them (the parameters move, as in training); ``--sb3-sizes``: SB3's default sizes (networks
256x256, batch 256). It prints ``start`` before the calls, so a profiler can attach then, and the mean µs per gradient
step at the end.

    python benchmarks/profiling.py learn-split --engine compiled --steps 10000
    python benchmarks/profiling.py step-parts --core 0 --calls 500 --repeats 5
    PYTHONPATH=/tmp/before python benchmarks/profiling.py train-step; python benchmarks/profiling.py train-step
    nice -n 10 python benchmarks/profiling.py guard
    python benchmarks/profiling.py compiled-loop --calls 150 &
    perf record -F 4000 -p $(pgrep -f "profiling.py compiled-loop") -o perf.data -- sleep 8   # after "start"
    perf report -i perf.data --no-children --sort dso,symbol
"""

import argparse
import collections
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from common import add_core_argument, compiled_loop_inputs, one_thread, pin_from_argv, timed, warmed_up_compiled_model

# pinned before torch is imported, so that every thread it starts is held to the core
CORE = pin_from_argv("last") if __name__ == "__main__" else None

import numpy as np  # noqa: E402
import torch as th  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from stable_baselines3.common.buffers import ReplayBuffer  # noqa: E402
from stable_baselines3.common.logger import Logger  # noqa: E402
from stable_baselines3.common.policies import BaseModel  # noqa: E402

from sb3_tutorial_sac import TutorialSAC  # noqa: E402


def trained_model(engine: str = "auto", steps: int = 1000, **kwargs: Any) -> TutorialSAC:
    """A TutorialSAC model on Pendulum-v1 (the tutorial's defaults, ``engine``), silent, after ``learn(steps)``."""
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine=engine, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(steps)
    return model


# ---------------------------------------------------------------------------------------------------------------
# learn-split
# ---------------------------------------------------------------------------------------------------------------


def learn_split(args: argparse.Namespace) -> None:
    model = trained_model(args.engine)
    seconds: collections.defaultdict[str, float] = collections.defaultdict(float)

    def timed_part(owner: Any, name: str, part: str) -> None:
        function: Callable = getattr(owner, name)

        def wrapper(*call_args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*call_args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        setattr(owner, name, wrapper)  # an instance attribute: only this model's calls are timed

    timed_part(model, "train", "train()")
    timed_part(model.update_engine, "run_steps", "  the engine's steps")
    timed_part(model, "_sample_minibatches", "  sampling the minibatches")
    timed_part(model.policy, "predict", "predict()")
    timed_part(model.get_env(), "step", "env.step()")
    timed_part(model, "_store_transition", "_store_transition()")
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    total = time.perf_counter() - start
    print(f"engine {model.update_engine.name}: learn({args.steps}) {total / args.steps * 1e6:.0f} µs per env step")
    for part, value in seconds.items():
        print(f"  {part:28s} {value / args.steps * 1e6:7.1f} µs")
    outer = sum(value for part, value in seconds.items() if not part.startswith(" "))
    print(f"  {'the rest (SB3 loop)':28s} {(total - outer) / args.steps * 1e6:7.1f} µs")


# ---------------------------------------------------------------------------------------------------------------
# step-parts
# ---------------------------------------------------------------------------------------------------------------


def _batch(model: TutorialSAC) -> Any:
    from sb3_tutorial_sac.engines import Minibatch

    assert model.replay_buffer is not None
    data = model.replay_buffer.sample(64)
    return Minibatch(
        data.observations.float(),
        data.actions,
        data.next_observations.float(),
        (data.rewards + model.reward_shift) * model.reward_scale,
        (1 - data.dones) * model.gamma,
    )


def eager_step_operations(model: TutorialSAC, calls: int, repeats: int) -> None:
    """The operations of one eager gradient step (the fast engine), by self time (torch's profiler), and one matrix
    product of the step's largest size."""
    from sb3_tutorial_sac.engines import FastEngine

    engine = model.update_engine
    assert isinstance(engine, FastEngine), f"the fast engine is needed, the model has {engine.name!r}"
    batch, stats = _batch(model), th.zeros(6)
    with engine.loop():
        for _ in range(10):
            engine.step(batch, stats, soft_update=True)
        with th.profiler.profile(activities=[th.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(max(calls // 10, 1)):
                engine.step(batch, stats, soft_update=True)
    print(f"the operations of one eager gradient step by self time (torch.profiler, {max(calls // 10, 1)} steps):")
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
    observation = np.zeros((1, *(model.observation_space.shape or ())), np.float32)
    policy = model.policy
    predict = timed(lambda: model.predict(observation, deterministic=False), calls, repeats)
    walk = timed(lambda: BaseModel.set_training_mode(policy, False), calls, repeats)
    device = timed(lambda: BaseModel.device.fget(policy), calls, repeats)  # type: ignore[attr-defined]
    print(
        f"predict(): {predict:.1f} µs; SB3's per-call training-mode walk would add {walk:.1f} µs and its device "
        f"lookup {device:.1f} µs (called twice per predict)"
    )


def sampling_cost(model: TutorialSAC, calls: int, repeats: int, n_batches: int = 200, batch_size: int = 64) -> None:
    from sb3_tutorial_sac.buffers import sample_minibatches

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
    compiled = trained_model("compiled")  # compiles the step (or loads it), as the first train() call does
    times = {}
    for name, algorithm in (("fast", model), ("compiled", compiled)):
        engine, stats = algorithm.update_engine, th.zeros(6)
        with engine.loop():
            times[name] = timed(partial(engine.step, batch, stats, soft_update=True), calls, repeats)
    engine = compiled.update_engine
    unavailable = getattr(engine, "unavailable", None)
    print(
        f"one whole gradient step: fast engine {times['fast']:.1f} µs, compiled engine {times['compiled']:.1f} µs "
        f"({times['fast'] / times['compiled']:.2f}x; compile or load {getattr(engine, 'compile_seconds', None)} s"
        f"{', UNAVAILABLE: ' + unavailable if unavailable else ''})"
    )


def step_parts(args: argparse.Namespace) -> None:
    print(f"torch {th.__version__}, 1 thread")
    model = trained_model()
    eager_step_operations(model, args.calls, args.repeats)
    product_rates(args.calls, args.repeats)
    predict_cost(model, args.calls, args.repeats)
    sampling_cost(model, args.calls, args.repeats)
    exactness_checks(args.trials)
    whole_step_cost(model, args.calls, args.repeats)


# ---------------------------------------------------------------------------------------------------------------
# train-step
# ---------------------------------------------------------------------------------------------------------------


def train_step(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore")
    model = trained_model(steps=2000, sample_with_replacement=args.replace)
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        model.train(200, 64)
        times.append((time.perf_counter() - start) / 200)
    print(f"{1e6 * statistics.median(times):.1f}")


# ---------------------------------------------------------------------------------------------------------------
# guard
# ---------------------------------------------------------------------------------------------------------------


def guard_cost(args: argparse.Namespace) -> None:
    from sb3_tutorial_sac.guard import check_training, check_transition

    model = trained_model(steps=2000)
    state = model.training_state
    real_snapshot = state.snapshot

    def guard(on: bool) -> None:
        model.check_finite = on
        state.snapshot = real_snapshot if on else (lambda: {"tensors": [], "optimizers": []})  # type: ignore[method-assign]

    times: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(args.repeats):
        for on in (True, False) if repeat % 2 else (False, True):
            guard(on)
            start = time.perf_counter()
            model.train(200, 64)
            times[on].append((time.perf_counter() - start) / 200)
    guard(True)
    with_guard, without = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"train(): {1e6 * with_guard:.0f} us/gradient step with the guard, {1e6 * without:.0f} without "
        f"({100 * (with_guard - without) / without:+.1f}%)"
    )
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        state.snapshot()
    snap = (time.perf_counter() - start) / n
    values = np.zeros((200, 6), np.float32)
    names = ["critic1_loss", "critic2_loss", "actor_loss", "ent_coef_loss", "entropy", "ent_coef"]
    start = time.perf_counter()
    for _ in range(n):
        check_training(state, values, names, model._n_updates, model.num_timesteps)
    check = (time.perf_counter() - start) / n
    print(
        f"per train() call: snapshot {1e6 * snap:.0f} us, end check {1e6 * check:.0f} us "
        f"(= {1e6 * (snap + check) / 200:.2f} us per gradient step at 200 steps per call)"
    )
    obs, reward, dones = np.zeros((1, 3), np.float32), np.zeros(1, np.float32), np.zeros(1, bool)
    infos: list[dict] = [{}]
    start = time.perf_counter()
    for _ in range(20000):
        check_transition(obs, reward, dones, infos, model.num_timesteps)
    print(f"per env step: transition check {1e6 * (time.perf_counter() - start) / 20000:.1f} us")


# ---------------------------------------------------------------------------------------------------------------
# compiled-loop
# ---------------------------------------------------------------------------------------------------------------


def compiled_loop(args: argparse.Namespace) -> None:
    model = warmed_up_compiled_model(args.sb3_sizes)
    engine = model.update_engine
    stacked, steps, interval = compiled_loop_inputs(model, args.steps)
    stats = th.zeros(steps, model.critic.n_critics + 4)
    with engine.loop():
        print("start", flush=True)
        start = time.perf_counter()
        for _ in range(args.calls):
            engine._run_loop(stacked, steps, stats, interval)
        seconds = time.perf_counter() - start
    print(f"{seconds / (args.calls * steps) * 1e6:.1f} µs per gradient step of the compiled loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, function: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        add_core_argument(sub, "last")
        sub.set_defaults(function=function)
        return sub

    sub = command("learn-split", learn_split, "microseconds per env step in each part of learn()")
    sub.add_argument("--engine", default="compiled", help="TutorialSAC(engine=...)")
    sub.add_argument("--steps", type=int, default=10_000, help="env steps of the timed learn()")
    sub = command("step-parts", step_parts, "a gradient step's parts, products, predict(), sampling, exactness checks")
    sub.add_argument("--calls", type=int, default=1000, help="calls per timing")
    sub.add_argument("--repeats", type=int, default=5, help="timings per figure (median)")
    sub.add_argument("--trials", type=int, default=100, help="random trials per exactness check")
    sub = command("train-step", train_step, "median µs per gradient step of train(200, 64), the number alone")
    sub.add_argument("--replace", action="store_true", help="sample_with_replacement=True (SB3's draw)")
    sub.add_argument("--calls", type=int, default=15, help="timed train(200) calls (median)")
    sub = command("guard", guard_cost, "the non-finite guard's cost: train() with and without it, and its parts")
    sub.add_argument("--repeats", type=int, default=12, help="alternating train(200) calls with and without the guard")
    sub = command("compiled-loop", compiled_loop, "the compiled loop alone, called again and again (for perf record)")
    sub.add_argument("--calls", type=int, default=15, help="calls of the compiled loop")
    sub.add_argument("--steps", type=int, default=200, help="gradient steps per call")
    sub.add_argument("--sb3-sizes", action="store_true", help="SB3's default sizes: networks 256x256, batch 256")
    args = parser.parse_args()
    one_thread()
    warnings.simplefilter("ignore", UserWarning)
    args.function(args)


if __name__ == "__main__":
    main()
