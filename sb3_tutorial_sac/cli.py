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
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps to train (default: the n_timesteps of the env's entry in hyperparams/tutorial_sac.yml, else "
        "20,000, the tutorial's); whole episodes are collected, so the last one may run past it",
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="TutorialSAC's constructor defaults (the tutorial's rules), not the env's entry of hyperparams/tutorial_sac.yml",
    )
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

    if args.timesteps is not None and args.timesteps <= 0:
        raise SystemExit("--timesteps must be a positive integer")
    if args.eval_episodes <= 0:
        raise SystemExit("--eval-episodes must be a positive integer")
    th.set_num_threads(args.threads)
    entry = None if args.defaults else yaml_entry(args.env)
    kwargs, entry_timesteps = (None, None) if entry is None else entry_arguments(entry, args.env)
    timesteps = args.timesteps or entry_timesteps or 20_000
    if entry is not None and not args.json:
        print(f"{args.env}: the entry of hyperparams/tutorial_sac.yml ({_describe(entry)}); --defaults ignores it")
    policy = (kwargs or {}).pop("policy", "MlpPolicy")
    model = TutorialSAC(policy, args.env, seed=args.seed, device=args.device, **(kwargs or {}))
    start = time.perf_counter()
    model.learn(timesteps, progress_bar=not args.no_progress_bar)
    train_seconds = time.perf_counter() - start

    eval_env = Monitor(gym.make(args.env))
    eval_env.reset(seed=args.seed + 10_000)
    summary: dict[str, Any] = {
        "env": args.env,
        "hyperparams": "defaults" if entry is None else "tutorial_sac.yml",
        "requested_timesteps": timesteps,
        "timesteps": model.num_timesteps,
        "gradient_steps": model._n_updates,
        "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "env_steps_per_second": round(model.num_timesteps / train_seconds, 1),
        "alpha": float(model.training_state.alpha.item()),
    }
    for name, deterministic in (("deterministic", True), ("stochastic", False)):
        returns, _ = evaluate_policy(
            model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=deterministic, return_episode_rewards=True
        )
        episode_returns = np.asarray(returns, dtype=np.float64)
        summary[f"{name}_return_mean"] = round(float(episode_returns.mean()), 1)
        summary[f"{name}_return_std"] = round(float(episode_returns.std()), 1)
    model.save(args.output)
    # SB3's save adds ".zip" to a name without a suffix
    summary["saved_to"] = str(args.output if args.output.suffix else args.output.with_name(f"{args.output.name}.zip"))

    if args.json:
        print(json.dumps(summary))
    else:
        print(f"TutorialSAC on {summary['env']}: {summary['timesteps']} env steps, {summary['gradient_steps']} gradient steps")
        if model.num_timesteps != timesteps:
            from stable_baselines3.common.type_aliases import TrainFreq

            train_freq = model.train_freq
            assert isinstance(train_freq, TrainFreq)  # SB3 converts it in _setup_model
            frequency = (train_freq.frequency, train_freq.unit.value)
            print(
                f"  ({model.num_timesteps} for {timesteps} asked: train_freq={frequency} collects whole episodes before "
                "each training phase, and learn() stops after the phase that reaches it)"
            )
        print(f"  training time     {summary['train_seconds']} s ({summary['env_steps_per_second']} env steps/s)")
        print(f"  final alpha       {summary['alpha']:.5f}")
        for name in ("deterministic", "stochastic"):
            mean, std = summary[f"{name}_return_mean"], summary[f"{name}_return_std"]
            print(f"  {name:<17} {mean} +/- {std} (mean return of {args.eval_episodes} episodes)")
        print(f"  saved to          {summary['saved_to']}")
    return 0


def yaml_entry(env: str) -> dict[str, Any] | None:
    """The entry of ``env`` in the project's ``hyperparams/tutorial_sac.yml`` (rl-zoo3's file), or ``None``."""
    import yaml

    from sb3_tutorial_sac.zoo import ALGO, hyperparams_path

    entries = yaml.safe_load(hyperparams_path(ALGO).read_text()) or {}
    return entries.get(env)


# rl-zoo3 keys of an entry that only the zoo can run (sb3-tutorial-sac-zoo train)
ZOO_ONLY = ("normalize", "n_envs", "env_wrapper", "vec_env_wrapper", "frame_stack", "callback", "env_kwargs")


def _literal(text: str, where: str) -> Any:
    """A string of the zoo's files (``"dict(net_arch=dict(pi=[64], qf=[64]))"``) as the value it writes: literals and
    ``dict(...)`` calls of them only (rl-zoo3 ``eval``s it)."""
    import ast

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            if all(keyword.arg is not None for keyword in node.keywords):
                return {keyword.arg: value(keyword.value) for keyword in node.keywords}
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
        if isinstance(node, ast.List | ast.Tuple):
            items = [value(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        return ast.literal_eval(node)

    try:
        return value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, RecursionError) as error:
        message = f"{where} is {text!r}: not literals and dict(...) ({error}); use sb3-tutorial-sac-zoo train"
        raise SystemExit(message) from None


def entry_arguments(entry: dict[str, Any], env: str) -> tuple[dict[str, Any], int | None]:
    """TutorialSAC's arguments of a ``tutorial_sac.yml`` entry (rl-zoo3's keys translated), and its ``n_timesteps``."""
    import gymnasium as gym
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    kwargs = dict(entry)
    where = f"hyperparams/tutorial_sac.yml, {env}"
    zoo_only = [key for key in ZOO_ONLY if key in kwargs]
    if zoo_only or any(isinstance(kwargs.get(key), str) for key in ("learning_rate", "critic_learning_rate")):
        zoo_command = f"sb3-tutorial-sac-zoo train --algo tutorial_sac --env {env}"
        raise SystemExit(f"{where}: {zoo_only or 'a schedule'} needs rl-zoo3: {zoo_command}")
    timesteps = kwargs.pop("n_timesteps", None)
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = _literal(kwargs["policy_kwargs"], f"{where}: policy_kwargs")
    noise_type, noise_std = kwargs.pop("noise_type", None), float(kwargs.pop("noise_std", 0.0))
    if noise_type is not None:  # as rl-zoo3's ExperimentManager builds it
        n_actions = int(np.prod(gym.make(env).action_space.shape or ()))
        noise = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}[noise_type]
        kwargs["action_noise"] = noise(mean=np.zeros(n_actions), sigma=noise_std * np.ones(n_actions))
    return kwargs, None if timesteps is None else int(timesteps)


def _describe(entry: dict[str, Any]) -> str:
    def number(value: Any) -> Any:
        return int(value) if isinstance(value, float) and value.is_integer() and abs(value) >= 1 else value

    return ", ".join(f"{key}={number(value)}" for key, value in entry.items() if key != "policy")


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
