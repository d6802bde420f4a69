"""Throughput of TutorialSAC against SB3's SAC configured for the same work, in one process.

Both run on Pendulum-v1 with the tutorial's work: one 200-step episode, then 200 gradient steps on
minibatches of 64, actor [128], critics [128, 128], buffer 100,000, no warm-up. Repeats alternate the two
algorithms so that machine drift cancels; figures are medians.

    python benchmarks/throughput.py                 # full run (about 5 minutes on one thread)
    python benchmarks/throughput.py --repeats 3 --learn-steps 1000 --train-steps 500 --no-time-to-threshold

The last line printed is the ratio TutorialSAC / SAC of learn() env steps per second.
"""

import argparse
import platform
import statistics
import time

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

ENV_ID = "Pendulum-v1"


def make_tutorial_sac(seed: int) -> TutorialSAC:
    """TutorialSAC with every default: the tutorial's setup."""
    return TutorialSAC("MlpPolicy", ENV_ID, seed=seed, device="cpu")


def make_sac(seed: int) -> SAC:
    """SB3's SAC set to the tutorial's work (its own losses, init and alpha rules otherwise)."""
    return SAC(
        "MlpPolicy",
        ENV_ID,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(net_arch=dict(pi=[128], qf=[128, 128])),
        batch_size=64,
        buffer_size=100_000,
        train_freq=(1, "episode"),
        gradient_steps=-1,
        learning_starts=0,
    )


MAKERS = {"TutorialSAC": make_tutorial_sac, "SAC": make_sac}


def learn_steps_per_second(make, seed: int, steps: int) -> float:
    """Env steps per second of learn() (collection + training), from a fresh model."""
    model = make(seed)
    start = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - start)


def train_steps_per_second(make, seed: int, fill_steps: int, train_steps: int) -> float:
    """Gradient steps per second of train() alone, on a buffer filled by a short learn()."""
    model = make(seed)
    model.learn(fill_steps)
    start = time.perf_counter()
    model.train(gradient_steps=train_steps, batch_size=64)
    return train_steps / (time.perf_counter() - start)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each measurement (median reported)")
    parser.add_argument("--learn-steps", type=int, default=2000, help="env steps of each learn() measurement")
    parser.add_argument("--train-steps", type=int, default=1000, help="gradient steps of each train() measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seeds-to-threshold", type=int, default=3, help="seeds for the time-to--200 measurement")
    parser.add_argument("--no-time-to-threshold", action="store_true", help="skip the time-to--200 measurement")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    print(f"machine: {platform.processor() or platform.machine()}, {th.get_num_threads()} torch thread(s)")
    print(
        f"versions: python {platform.python_version()}, torch {th.__version__}, stable-baselines3 "
        f"{stable_baselines3.__version__}, sb3-tutorial-sac {sb3_tutorial_sac.__version__}"
    )

    learn: dict[str, list[float]] = {name: [] for name in MAKERS}
    train: dict[str, list[float]] = {name: [] for name in MAKERS}
    for repeat in range(args.repeats):
        order = list(MAKERS) if repeat % 2 == 0 else list(reversed(MAKERS))
        for name in order:
            learn[name].append(learn_steps_per_second(MAKERS[name], repeat, args.learn_steps))
            train[name].append(train_steps_per_second(MAKERS[name], repeat, 400, args.train_steps))

    print(f"\n{'':<12} {'learn() env steps/s':>20} {'train() grad steps/s':>21}   (median of {args.repeats})")
    for name in MAKERS:
        print(f"{name:<12} {statistics.median(learn[name]):>20.0f} {statistics.median(train[name]):>21.0f}")
    train_ratio = statistics.median(train["TutorialSAC"]) / statistics.median(train["SAC"])
    print(f"train() ratio TutorialSAC / SAC: {train_ratio:.2f}")

    if not args.no_time_to_threshold:
        times, steps = [], []
        for seed in range(args.seeds_to_threshold):
            callback = TimeToThreshold(threshold=-200.0, eval_every=1000, n_episodes=10, seed=seed)
            make_tutorial_sac(seed).learn(20_000, callback=callback)
            if callback.reached_at is not None:
                steps.append(callback.reached_at[0])
                times.append(callback.reached_at[1])
            print(f"seed {seed}: mean stochastic return of 10 episodes >= -200 at {callback.reached_at}")
        if times:
            print(
                f"TutorialSAC time to -200 (training seconds, evaluations excluded): median {np.median(times):.1f} s, "
                f"median {int(np.median(steps))} env steps, {len(times)}/{args.seeds_to_threshold} seeds reached it"
            )

    ratio = statistics.median(learn["TutorialSAC"]) / statistics.median(learn["SAC"])
    print(f"learn() ratio TutorialSAC / SAC: {ratio:.2f}")


if __name__ == "__main__":
    main()
