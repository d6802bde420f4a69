"""``sb3-tutorial-sac-zoo <script> [zoo arguments]``: rl-zoo3's scripts with ``tutorial_sac`` registered (:func:`main`)."""

from __future__ import annotations

import argparse
import pathlib
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sb3_tutorial_sac.zoo.as_data import folder_files_as_data
from sb3_tutorial_sac.zoo.checks import RefusedError
from sb3_tutorial_sac.zoo.registration import ALGO, hyperparams_path, register

#: rl-zoo3's scripts, by the name ``python -m rl_zoo3.cli`` gives them, with the module that holds them
#: (``None``: the module runs under ``if __name__ == "__main__"``, it is run as a script)
SCRIPTS: dict[str, tuple[str, str | None]] = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "record_video": ("rl_zoo3.record_video", None),
}
# Not offered: rl-zoo3's record_training runs ``python -m rl_zoo3.record_video`` in subprocesses, where
# ``tutorial_sac`` is not registered (call ``record_video`` once per model instead).


def _with_default_conf_file(args: list[str]) -> list[str]:
    """``train``'s arguments, with ``--conf-file <tutorial_sac.yml>`` added for ``--algo tutorial_sac`` without one."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("-conf", "--conf-file", default=None)
    known, _ = parser.parse_known_args(args)
    if known.algo == ALGO and known.conf_file is None:
        return [*args, "--conf-file", str(hyperparams_path(ALGO))]
    return args


def _short_runs_hints(args: list[str]) -> list[str]:
    """
    ``plot_train`` draws a run's curve only when it has at least ``-w`` episodes (its smoothing window, 100 by default):
    a line for each run of fewer episodes, naming ``-w``. Nothing when the arguments or folders cannot be read (the
    script then says what is wrong).
    """
    from stable_baselines3.common.monitor import LoadMonitorResultsError, load_results

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-a", "--algo")
    parser.add_argument("-e", "--env", nargs="+", default=[])
    parser.add_argument("-f", "--exp-folder")
    parser.add_argument("-w", "--episode-window", type=int, default=100)
    try:
        known, _ = parser.parse_known_args(args)
        folder = pathlib.Path(known.exp_folder, known.algo)
        runs = [run for run in folder.iterdir() if run.is_dir() and any(env in run.name for env in known.env)]
    except (SystemExit, TypeError, OSError):
        return []
    hints = []
    for run in sorted(runs):
        try:
            episodes = len(load_results(str(run)))
        except (LoadMonitorResultsError, OSError, ValueError, ImportError):
            continue
        if 0 < episodes < known.episode_window:
            hints.append(
                f"plot_train: {run} has {episodes} episodes, fewer than the smoothing window (-w {known.episode_window}): "
                f"its curve is not drawn. Pass -w {max(1, episodes // 10)} (or any window up to {episodes})."
            )
    return hints


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``sb3-tutorial-sac-zoo <script> [arguments]``: rl-zoo3's script with ``tutorial_sac`` registered.

    :param argv: the command line after the program name (default: ``sys.argv[1:]``)
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in SCRIPTS:
        usage = f"usage: sb3-tutorial-sac-zoo {{{','.join(SCRIPTS)}}} [--trusted] [rl-zoo3 arguments]"
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"{usage}\nunknown script {args[0]!r}")
        print(
            f"{usage}\n\nrl-zoo3's scripts with the algorithm {ALGO!r} (TutorialSAC) registered; "
            f"'sb3-tutorial-sac-zoo <script> -h' shows the script's arguments. A run's folder is read as data: "
            "--trusted lets rl-zoo3 read it its own way (YAML Python tags, pickled vecnormalize.pkl), which can run "
            "code from it."
        )
        return
    script, rest = args[0], args[1:]
    trusted = "--trusted" in rest
    rest = [arg for arg in rest if arg != "--trusted"]
    register()
    if script == "train":
        rest = _with_default_conf_file(rest)
    if script == "plot_train":
        for hint in _short_runs_hints(rest):
            print(hint)
    module, function = SCRIPTS[script]
    saved_argv = sys.argv
    sys.argv = [f"sb3-tutorial-sac-zoo {script}", *rest]
    try:
        import importlib

        entry: Callable[[], Any] | None = None if function is None else getattr(importlib.import_module(module), function)
        # Not in rl-zoo3: a run's folder is read as data (config.yml, args.yml, vecnormalize.pkl) unless --trusted
        with folder_files_as_data(trusted):
            if entry is None:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                entry()
    except RefusedError as error:
        sys.exit(f"sb3-tutorial-sac-zoo {script}: refused: {error}")
    finally:
        sys.argv = saved_argv
