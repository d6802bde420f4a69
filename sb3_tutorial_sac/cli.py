"""Command line: ``sb3-tutorial-sac <command>`` (also ``python -m sb3_tutorial_sac``).

Commands:

* ``train``: train TutorialSAC (the tutorial's setup on Pendulum-v1 by default) with a progress bar,
  evaluate it over 10 deterministic and 10 stochastic episodes, save it and print a summary.
* ``compare``: TutorialSAC against SB3's SAC (and other rl-zoo3 algorithms) over many seeds
  (``sb3_tutorial_sac.compare``; the ``compare`` extra, imported only when the command runs).
"""

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

COMPARE_EXTRA = 'pip install "sb3-tutorial-sac[compare]"'


class Command(NamedTuple):
    """One command: its help line, and its own entry point (the arguments after the command's name, its prog)."""

    help: str
    main: Callable[[Sequence[str], str], int]


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="Pendulum-v1", help="Gymnasium environment id (default: Pendulum-v1)")
    parser.add_argument("--timesteps", type=int, default=20_000, help="env steps to train (default: 20,000, the tutorial's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default: 10)")
    parser.add_argument(
        "--output", type=pathlib.Path, default=pathlib.Path("tutorial_sac_model.zip"), help="where to save the model"
    )
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda (default: auto)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run_train(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import numpy as np
    import torch as th
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from sb3_tutorial_sac import TutorialSAC

    if args.timesteps <= 0:
        raise SystemExit("--timesteps must be a positive integer")
    if args.eval_episodes <= 0:
        raise SystemExit("--eval-episodes must be a positive integer")
    th.set_num_threads(args.threads)
    model = TutorialSAC("MlpPolicy", args.env, seed=args.seed, device=args.device)
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=not args.no_progress_bar)
    train_seconds = time.perf_counter() - start

    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=args.seed + 10_000)
    summary: dict[str, Any] = {
        "env": args.env,
        "timesteps": model.num_timesteps,
        "gradient_steps": model._n_updates,
        "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "env_steps_per_second": round(model.num_timesteps / train_seconds, 1),
        "alpha": float(model.log_ent_coef.exp().item()) if model.log_ent_coef is not None else float(model.ent_coef_tensor),
    }
    for name, deterministic in (("deterministic", True), ("stochastic", False)):
        returns, _ = evaluate_policy(
            model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=deterministic, return_episode_rewards=True
        )
        episode_returns = np.asarray(returns, dtype=np.float64)
        summary[f"{name}_return_mean"] = round(float(episode_returns.mean()), 1)
        summary[f"{name}_return_std"] = round(float(episode_returns.std()), 1)
    model.save(args.output)
    summary["saved_to"] = str(args.output)

    if args.json:
        print(json.dumps(summary))
    else:
        print(f"TutorialSAC on {summary['env']}: {summary['timesteps']} env steps, {summary['gradient_steps']} gradient steps")
        print(f"  training time     {summary['train_seconds']} s ({summary['env_steps_per_second']} env steps/s)")
        print(f"  final alpha       {summary['alpha']:.5f}")
        for name in ("deterministic", "stochastic"):
            mean, std = summary[f"{name}_return_mean"], summary[f"{name}_return_std"]
            print(f"  {name:<17} {mean} +/- {std} (mean return of {args.eval_episodes} episodes)")
        print(f"  saved to          {summary['saved_to']}")
    return 0


def _train(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=COMMANDS["train"].help)
    _add_train_arguments(parser)
    return _run_train(parser.parse_args(argv))


def _compare(argv: Sequence[str], prog: str) -> int:
    # Imported here: the compare extra (rl-zoo3, pandas, matplotlib, scipy) is needed by this command only
    try:
        from sb3_tutorial_sac.compare import cli as compare_cli
    except ImportError as error:
        if error.name is None or error.name.startswith("sb3_tutorial_sac"):
            raise
        message = f"sb3-tutorial-sac compare needs the compare extra ({error.name} is missing): {COMPARE_EXTRA}"
        raise SystemExit(message) from error
    return compare_cli.main(argv, prog=prog)


# The commands, by name. Each parses its own arguments, so a command's modules are imported only when it runs.
COMMANDS: dict[str, Command] = {
    "train": Command("train TutorialSAC, evaluate it and save it", _train),
    "compare": Command("compare tutorial_sac with SB3's SAC (and other rl-zoo3 algorithms) over many seeds", _compare),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sb3-tutorial-sac", description="The tutorial's SAC as a Stable-Baselines3 algorithm"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, title="commands")
    for name, command in COMMANDS.items():
        # The command's own parser reads everything after its name (its --help included)
        subparsers.add_parser(name, help=command.help, add_help=False)
    args, rest = parser.parse_known_args(argv)
    return COMMANDS[args.command].main(rest, f"{parser.prog} {args.command}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
