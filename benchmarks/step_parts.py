"""Where a TutorialSAC gradient step spends its time, and the measurements behind the fast path's design choices.

Prints, on one CPU thread (medians of ``--repeats`` timings of ``--calls`` calls each):

- the time of each part of one gradient step of ``train()`` (target, critic forward+backward, critic Adam, actor
  forward+backward, actor Adam, temperature, soft update, statistics), in inference mode as ``train()`` runs them;
- the written-out critic+actor passes under ``torch.no_grad()`` against ``torch.inference_mode()``;
- one Adam update over both critics (``FlatAdam``) against one per critic group (``adam_step``);
- ``predict()`` on one observation, and what SB3's per-call training-mode walk and device lookup would add to it;
- the time of one ``64x128 @ 128x128`` product (12 per gradient step);
- drawing the minibatches of one ``train()`` call (200 of 64) without replacement, the tutorial's ``random.sample``
  (``sample_minibatches``), against SB3's draw with replacement, per gradient step, with 200, 1,000 and 100,000
  (full buffer) Pendulum transitions stored;
- two exactness checks that decided the design: MKL's matrix product written with ``out=`` into an unaligned view
  against a fresh tensor, and the two critics as one ``bmm`` ensemble against two ``F.linear`` calls;
- one whole gradient step of the fast engine against the compiled engine's (``engine="compiled"``: the step compiled
  once by AOTInductor, loaded from the cache when it is there), both called as ``train()`` calls them.

Usage: ``python benchmarks/step_parts.py`` (about a minute).
"""

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial, reduce

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import BaseModel

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.buffers import sample_minibatches
from sb3_tutorial_sac.engines import FastEngine, Minibatch
from sb3_tutorial_sac.flat import adam_step
from sb3_tutorial_sac.policies import sample_action_entropy


def timed(function: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of one call, in µs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def step_parts(model: TutorialSAC, calls: int, repeats: int) -> None:
    engine = model._engine
    assert isinstance(engine, FastEngine), f"the fast engine is needed, the model has {engine.name!r}"
    manual = engine.manual
    assert model.log_ent_coef is not None and model.ent_coef_optimizer is not None
    data = model.replay_buffer.sample(64)
    obs, actions, next_obs = data.observations.float(), data.actions, data.next_observations.float()
    rewards, discounts = (data.rewards + model.reward_shift) * model.reward_scale, (1 - data.dones) * model.gamma
    critic_adam, actor_adam = engine._critic_adam, engine._actor_adam
    critic_adam.prepare()
    actor_adam.prepare()
    log_alpha = model.log_ent_coef
    with th.inference_mode():
        alpha = th.exp(log_alpha.detach())

        def target() -> th.Tensor:
            next_actions, next_entropy = sample_action_entropy(*engine.actor_dist_params(next_obs), model.entropy_term)
            next_q = reduce(th.minimum, engine.target_q_values(next_obs, model.policy.to_env_units(next_actions)))
            return rewards + discounts * (next_q + alpha * next_entropy)

        target_q = target()
        losses = manual.critic_step_grads(obs, actions, target_q)
        entropy = manual.actor_step_grads(obs, alpha, model.entropy_term)[1]
        stats = th.zeros(8, 6)

        def temperature() -> None:
            manual.temperature_step_grads(entropy, log_alpha, -1.0, model.ent_coef_loss, alpha)
            adam_step(model.ent_coef_optimizer)

        def soft_update() -> None:
            th._foreach_mul_(model._soft_update_target, 1 - model.tau)
            th._foreach_add_(model._soft_update_target, th._foreach_mul(model._soft_update_online, model.tau))

        parts = {
            "target": target,
            "critic forward+backward": lambda: manual.critic_step_grads(obs, actions, target_q),
            "critic Adam (FlatAdam)": critic_adam.step,
            "actor forward+backward": lambda: manual.actor_step_grads(obs, alpha, model.entropy_term),
            "actor Adam (FlatAdam)": actor_adam.step,
            "temperature (grad + Adam)": temperature,
            "soft update": soft_update,
            "statistics": lambda: th.stack([*losses, losses[0], losses[0], entropy.mean(), alpha.reshape(())], out=stats[1]),
        }
        print("parts of one gradient step (inference mode), µs:")
        total = 0.0
        for name, function in parts.items():
            micros = timed(function, calls, repeats)
            total += micros
            print(f"  {name:28s} {micros:7.1f}")
        print(f"  {'sum':28s} {total:7.1f}")

    def both_passes() -> None:
        manual.critic_step_grads(obs, actions, target_q)
        manual.actor_step_grads(obs, alpha, model.entropy_term)

    for name, mode in (("no_grad", th.no_grad), ("inference_mode", th.inference_mode)):
        with mode():
            print(f"critic+actor passes under {name}: {timed(both_passes, calls, repeats):.1f} µs")
    with th.no_grad():
        flat = timed(critic_adam.step, calls, repeats)
        per_group = timed(lambda: adam_step(model.critic.optimizer), calls, repeats)
    print(f"critic Adam: FlatAdam {flat:.1f} µs, one update per group {per_group:.1f} µs")
    hidden, weight = th.randn(64, 128).relu(), th.randn(128, 128)
    product = timed(lambda: hidden.mm(weight), calls, repeats)
    print(f"one 64x128 @ 128x128 product: {product:.1f} µs ({2 * 64 * 128 * 128 / product / 1e3:.0f} GFLOP/s)")


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
    data = model.replay_buffer.sample(64)
    batch = Minibatch(
        data.observations.float(),
        data.actions,
        data.next_observations.float(),
        (data.rewards + model.reward_shift) * model.reward_scale,
        (1 - data.dones) * model.gamma,
    )
    compiled = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", engine="compiled")
    compiled.set_logger(Logger(folder=None, output_formats=[]))
    compiled.learn(1000)  # compiles the step (or loads it), as the first train() call does
    times = {}
    for name, algorithm in (("fast", model), ("compiled", compiled)):
        engine, stats = algorithm._engine, th.zeros(6)
        with engine.loop():
            times[name] = timed(lambda engine=engine, stats=stats: engine.step(batch, stats, soft_update=True), calls, repeats)
    unavailable = getattr(compiled._engine, "unavailable", None)
    print(
        f"one whole gradient step: fast engine {times['fast']:.1f} µs, compiled engine {times['compiled']:.1f} µs "
        f"({times['fast'] / times['compiled']:.2f}x; compile or load {compiled._engine.compile_seconds} s"
        f"{', UNAVAILABLE: ' + unavailable if unavailable else ''})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure (median)")
    parser.add_argument("--trials", type=int, default=100, help="random trials per exactness check")
    args = parser.parse_args()
    th.set_num_threads(1)
    print(f"torch {th.__version__}, 1 thread")
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(1000)
    step_parts(model, args.calls, args.repeats)
    predict_cost(model, args.calls, args.repeats)
    sampling_cost(model, args.calls, args.repeats)
    exactness_checks(args.trials)
    whole_step_cost(model, args.calls, args.repeats)


if __name__ == "__main__":
    main()
