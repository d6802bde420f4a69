"""In-process A/B of TutorialSAC's non-finite guard: train() with and without it, alternating; and its parts.

nice -n 10 python benchmarks/guard_cost.py
"""

import statistics
import time
import numpy as np
import torch as th
from stable_baselines3.common.logger import configure
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.guard import check_transition

th.set_num_threads(1)
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, device="cpu")
model.learn(2000)
model.set_logger(configure(None, [""]))
real_snapshot = model._guard.snapshot


def guard(on: bool):
    model.check_finite = on
    model._guard.snapshot = real_snapshot if on else (lambda: {"tensors": [], "optimizers": []})


times = {True: [], False: []}
for repeat in range(12):
    for on in (True, False) if repeat % 2 else (False, True):
        guard(on)
        start = time.perf_counter()
        model.train(200, 64)
        times[on].append((time.perf_counter() - start) / 200)
guard(True)
on, off = statistics.median(times[True]), statistics.median(times[False])
print(f"train(): {1e6 * on:.0f} us/gradient step with the guard, {1e6 * off:.0f} without ({100 * (on - off) / off:+.1f}%)")
n = 2000
start = time.perf_counter()
for _ in range(n):
    snapshot = model._guard.snapshot()
snap = (time.perf_counter() - start) / n
values = np.zeros((200, 6), np.float32)
names = ["critic1_loss", "critic2_loss", "actor_loss", "ent_coef_loss", "entropy", "ent_coef"]
start = time.perf_counter()
for _ in range(n):
    model._guard.check(values, names, model._n_updates, model.num_timesteps)
check = (time.perf_counter() - start) / n
print(
    f"per train() call: snapshot {1e6 * snap:.0f} us, end check {1e6 * check:.0f} us "
    f"(= {1e6 * (snap + check) / 200:.2f} us per gradient step at 200 steps per call)"
)
obs, reward, dones = np.zeros((1, 3), np.float32), np.zeros(1, np.float32), np.zeros(1, bool)
infos = [{}]
start = time.perf_counter()
for _ in range(20000):
    check_transition(model, obs, reward, dones, infos)
print(f"per env step: transition check {1e6 * (time.perf_counter() - start) / 20000:.1f} us")
