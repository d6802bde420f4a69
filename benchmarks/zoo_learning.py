"""Learning checks of hyperparams/tutorial_sac.yml: does TutorialSAC learn each task from its YAML entry?

For each environment: the untrained policy of the YAML's model (built by rl-zoo3's ExperimentManager, seed 0) is
evaluated, then ``sb3-tutorial-sac-zoo train`` trains it for a short budget (one torch thread, evaluations by the
zoo's EvalCallback, deterministic policy), and the untrained return, the evaluation curve, the best and the last
evaluation and the wall time are printed as a markdown row. Budgets are cut to a few CPU minutes on this project's
2-core machine: a clear improvement over the untrained policy is the check, not the YAML's full budget.

Usage: ``nice -n 10 python benchmarks/zoo_learning.py Pendulum-v1:20000:2000 Hopper-v5:30000:5000 ...``
(``env:budget:eval_freq``), ``--log-folder`` (default ``logs/zoo_learning``), ``--seed``, ``--eval-episodes``,
``--params key:value ...`` (the zoo's ``-params``, for every run), ``--core`` (pin this process and the zoo's, which
inherits the core; default: not pinned).
"""

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import add_core_argument, one_thread, pin_from_argv

# pinned (with --core) before torch is imported; the zoo's training process, started from here, inherits the core
CORE = pin_from_argv(None) if __name__ == "__main__" else None

import numpy as np  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402

from sb3_tutorial_sac import zoo  # noqa: E402


def untrained_return(env_id: str, seed: int, episodes: int, params: dict | None = None) -> tuple[float, float]:
    """Mean and std of the deterministic return of the YAML's model before any training (rl-zoo3 builds it)."""
    from rl_zoo3.exp_manager import ExperimentManager

    zoo.register()
    with tempfile.TemporaryDirectory() as folder:
        manager = ExperimentManager(
            argparse.Namespace(),
            zoo.ALGO,
            env_id,
            folder,
            seed=seed,
            config=str(zoo.hyperparams_path(zoo.ALGO)),
            verbose=0,
            hyperparams=params,
        )
        model, _ = manager.setup_experiment()  # type: ignore[misc]
        eval_env = manager.create_envs(1, eval_env=True)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
    return float(mean), float(std)  # type: ignore[arg-type]  # floats unless return_episode_rewards=True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="env:budget:eval_freq")
    parser.add_argument("--log-folder", default="logs/zoo_learning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--params", nargs="+", default=[], help="the zoo's -params overrides (key:value), all runs")
    add_core_argument(parser, None)
    args = parser.parse_args()
    one_thread()  # 2 cores shared: one thread per run
    for run in args.runs:
        env_id, budget, eval_freq = run.split(":")
        overrides = {item.split(":", 1)[0]: eval(item.split(":", 1)[1]) for item in args.params}  # as the zoo's -params
        before, before_std = untrained_return(env_id, args.seed, args.eval_episodes, overrides or None)
        command = [
            "sb3-tutorial-sac-zoo", "train", "--algo", "tutorial_sac", "--env", env_id, "-n", budget,
            "--seed", str(args.seed), "--num-threads", "1", "--eval-freq", eval_freq,
            "--eval-episodes", str(args.eval_episodes), "-f", args.log_folder, "--verbose", "0",
        ]  # fmt: skip
        if args.params:
            command += ["-params", *args.params]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sb3_tutorial_sac.zoo", *command[1:]], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        runs = sorted(Path(args.log_folder, "tutorial_sac").glob(f"{env_id}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
        evaluations = np.load(runs[-1] / "evaluations.npz")
        means = evaluations["results"].mean(axis=1)
        curve = ", ".join(f"{int(t) // 1000}k: {m:.0f}" for t, m in zip(evaluations["timesteps"], means))
        print(
            f"| {env_id} | {int(budget):,} | {before:.1f} +/- {before_std:.1f} | {means[-1]:.1f} +/- "
            f"{evaluations['results'][-1].std():.1f} | {means.max():.1f} | {seconds:.0f} s | {curve} | "
            f"`{shlex.join(command)}` |",
            flush=True,
        )


if __name__ == "__main__":
    main()
