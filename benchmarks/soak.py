"""Soak test: a long TutorialSAC run on Pendulum-v1 (every default: the tutorial's setup), watching memory and finiteness.

    nice -n 10 python benchmarks/soak.py                       # 300,000 steps on one thread
    python benchmarks/soak.py --steps 20000 --sample-every 2000   # a quick look

Every ``--sample-every`` env steps it records the process's resident memory (RSS, from /proc/self/status), and
checks that the last train() call's statistics are finite (the model's own check_finite guard would also stop the
run). At the end it checks every parameter, optimiser state, log(alpha) and the replay buffer for NaN/inf and
prints the RSS series, its peak, and its growth once the 100,000-transition buffer is full (it should stay flat:
the buffer is preallocated and overwritten first in, first out).
"""

import argparse
import json
import platform
import time

from common import add_core_argument, one_thread, pin_from_argv, pinned_as

# pinned (with --core) before torch is imported, so that every thread it starts is held to the core
CORE = pin_from_argv(None) if __name__ == "__main__" else None

import numpy as np  # noqa: E402
import stable_baselines3  # noqa: E402
import torch as th  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

import sb3_tutorial_sac  # noqa: E402
from sb3_tutorial_sac import TutorialSAC  # noqa: E402


def rss_mib(field: str = "VmRSS") -> float:
    """Resident set size of this process in MiB (Linux): current (``VmRSS``) or peak (``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class Watch(BaseCallback):
    """Record (env steps, RSS MiB, seconds, buffer size) every ``every`` steps and check the last train stats."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every
        self.samples: list[tuple[int, float, float, int]] = []
        self.non_finite_stats = 0
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            model = self.model
            stats = getattr(model, "last_train_stats", {})
            if any(not np.isfinite(values).all() for values in stats.values()):
                self.non_finite_stats += 1
            buffer = model.replay_buffer
            size = buffer.buffer_size if buffer.full else buffer.pos
            self.samples.append((self.num_timesteps, rss_mib(), time.perf_counter() - self.start, size))
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300_000, help="env steps (default 300,000)")
    parser.add_argument("--sample-every", type=int, default=10_000, help="env steps between memory samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--json", type=str, default=None, help="also write the figures to this JSON file")
    add_core_argument(parser, None)
    args = parser.parse_args()
    one_thread(args.threads)

    print(f"machine: {platform.machine()}, {pinned_as(CORE)}, {args.threads} torch thread(s)")
    print(
        f"versions: python {platform.python_version()}, torch {th.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}, sb3-tutorial-sac {sb3_tutorial_sac.__version__}"
    )
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=args.seed, device="cpu")
    watch = Watch(args.sample_every)
    rss_start = rss_mib()
    model.learn(args.steps, callback=watch)
    elapsed = time.perf_counter() - watch.start

    tensors = model.training_state.tensors()
    non_finite_tensors = [name for name, t in tensors.items() if not bool(th.isfinite(t).all())]
    buffer = model.replay_buffer
    non_finite_buffer = [
        key
        for key in ("observations", "next_observations", "actions", "rewards")
        if not np.isfinite(getattr(buffer, key)).all()
    ]
    peak_mib = rss_mib("VmHWM")
    full_at = next((steps for steps, _, _, size in watch.samples if size == buffer.buffer_size), None)
    after_full = [rss for steps, rss, _, _ in watch.samples if full_at is not None and steps >= full_at]

    print(f"\n{'env steps':>10} {'RSS MiB':>9} {'seconds':>8} {'buffer':>8}")
    for steps, rss, seconds, size in watch.samples:
        print(f"{steps:>10} {rss:>9.1f} {seconds:>8.0f} {size:>8}")
    print(f"\nRSS before learn: {rss_start:.1f} MiB; peak RSS (VmHWM): {peak_mib:.1f} MiB")
    if after_full:
        print(
            f"RSS once the buffer is full (from {full_at} steps): min {min(after_full):.1f}, max {max(after_full):.1f} MiB, "
            f"growth {after_full[-1] - after_full[0]:+.1f} MiB over {watch.samples[-1][0] - full_at} steps"
        )
    rate = model.num_timesteps / elapsed
    print(f"env steps {model.num_timesteps}, gradient steps {model._n_updates}, {elapsed:.0f} s, {rate:.0f} steps/s")
    print(
        f"non-finite: tensors {non_finite_tensors or 'none'}, replay buffer {non_finite_buffer or 'none'}, "
        f"train stats samples {watch.non_finite_stats}"
    )
    print(f"final alpha {float(model.log_ent_coef.detach().exp()):.5f}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                dict(
                    samples=watch.samples,
                    rss_start=rss_start,
                    peak_mib=peak_mib,
                    full_at=full_at,
                    elapsed=elapsed,
                    non_finite_tensors=non_finite_tensors,
                    non_finite_buffer=non_finite_buffer,
                    non_finite_stats=watch.non_finite_stats,
                ),
                file,
            )
    if non_finite_tensors or non_finite_buffer or watch.non_finite_stats:
        raise SystemExit("non-finite values found")


if __name__ == "__main__":
    main()
