"""Median µs per gradient step of TutorialSAC.train(200, 64) on Pendulum-v1, one torch thread: for A/B runs of two
commits in alternating processes (``PYTHONPATH=<worktree> python benchmarks/train_step_time.py``).

    python benchmarks/train_step_time.py            # the defaults (minibatches of distinct transitions)
    python benchmarks/train_step_time.py replace    # sample_with_replacement=True (SB3's draw)
"""

import statistics
import sys
import time
import warnings

import torch as th
from stable_baselines3.common.logger import configure

from sb3_tutorial_sac import TutorialSAC

warnings.filterwarnings("ignore")
th.set_num_threads(1)
kwargs = {"sample_with_replacement": True} if sys.argv[1:] == ["replace"] else {}
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu", **kwargs)
model.learn(2000)
model.set_logger(configure(None, [""]))
times = []
for _ in range(15):
    start = time.perf_counter()
    model.train(200, 64)
    times.append((time.perf_counter() - start) / 200)
print(f"{1e6 * statistics.median(times):.1f}")
