"""rl-zoo3 with ``tutorial_sac``: train, enjoy, plot and tune TutorialSAC from a hyperparameters YAML.

``sb3-tutorial-sac-zoo <script> [zoo arguments]`` (or ``python -m sb3_tutorial_sac.zoo <script> ...``) runs
rl-zoo3's own scripts (``train``, ``enjoy``, ``plot_train``, ``all_plots``, ``plot_from_file``,
``record_video``) after :func:`register` has added ``tutorial_sac`` to the zoo's tables:

- ``rl_zoo3.utils.ALGOS`` (the one dict every zoo module imports: ``train``, ``enjoy``, ``exp_manager``,
  ``record_video``, ...),
- ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` (Optuna search space of ``-optimize``) and
  ``HYPERPARAMS_CONVERTER`` (the zoo's ``--trial-id`` reads a study's trial back through it).

Nothing else of the zoo is changed: every other algorithm (``--algo sac``, ``tqc``, ...) runs exactly as with
``python -m rl_zoo3.train``, with the zoo's own hyperparameters files. For ``--algo tutorial_sac`` without
``--conf-file``, ``train`` reads this project's ``hyperparams/tutorial_sac.yml`` (:func:`hyperparams_path`);
an explicit ``--conf-file`` wins.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

ALGO = "tutorial_sac"

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

# Optuna search space of TutorialSAC's own knobs (ranges around the tutorial's values)
NET_WIDTHS: tuple[int, ...] = (64, 128, 256)


def hyperparams_path(algo: str) -> pathlib.Path:
    """
    The rl-zoo3 hyperparameters file of ``algo``.

    :param algo: rl-zoo3 algorithm key
    :return: for ``"tutorial_sac"``, this project's ``tutorial_sac.yml``: the copy installed inside the package
        (``sb3_tutorial_sac/hyperparams/``, after ``pip install .``) or else the repository's top-level
        ``hyperparams/tutorial_sac.yml`` (source checkout, editable install); for any other algorithm, rl-zoo3's own
        ``hyperparams/<algo>.yml`` (where the zoo itself looks for it)
    """
    if algo == ALGO:
        package = pathlib.Path(__file__).resolve().parent
        for candidate in (package / "hyperparams" / f"{ALGO}.yml", package.parent / "hyperparams" / f"{ALGO}.yml"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{ALGO}.yml is neither in {package / 'hyperparams'} nor in {package.parent / 'hyperparams'}")
    import rl_zoo3

    zoo = pathlib.Path(rl_zoo3.__file__).resolve().parent
    # the same rule as rl_zoo3.exp_manager.ExperimentManager: the package's folder, else the source checkout's root
    root = zoo if (zoo / "hyperparams").is_dir() else zoo.parent
    return root / "hyperparams" / f"{algo}.yml"


def convert_tutorial_sac_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the parameters of an Optuna trial (as :func:`sample_tutorial_sac_params` names them) into TutorialSAC's
    constructor arguments (rl-zoo3's ``HYPERPARAMS_CONVERTER`` convention: ``--trial-id`` reads a trial back with it).

    :param sampled_params: ``trial.params``
    :return: hyperparameters for ``TutorialSAC(...)``
    """
    hyperparams = dict(sampled_params)
    if "batch_size_pow" in hyperparams:
        hyperparams["batch_size"] = 2 ** hyperparams.pop("batch_size_pow")
    if "ent_coef_init" in hyperparams:
        # SB3's convention for a learned alpha from a given value (tutorial: "auto_0.01")
        hyperparams["ent_coef"] = f"auto_{hyperparams.pop('ent_coef_init')}"
    if "net_width" in hyperparams:
        width = int(hyperparams.pop("net_width"))
        # The tutorial's shapes (actor trunk [128], critics [128, 128]) at another width
        hyperparams["policy_kwargs"] = {
            **hyperparams.get("policy_kwargs", {}),
            "net_arch": dict(pi=[width], qf=[width, width]),
        }
    return hyperparams


def sample_tutorial_sac_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
    """
    rl-zoo3 sampler (``HYPERPARAMS_SAMPLER["tutorial_sac"]``) of TutorialSAC's own knobs; what it does not sample
    comes from the hyperparameters file.

    :param trial: the Optuna trial
    :param n_actions: size of the action space (unused: the target entropy stays ``-dim(A)``)
    :param n_envs: number of training envs (unused)
    :param additional_args: the zoo's extra arguments (HER replay buffer; unused)
    :return: TutorialSAC's hyperparameters for this trial
    """
    # Which worker process ran the trial (several workers can share one study through --storage)
    trial.set_user_attr("worker_pid", os.getpid())
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "critic_learning_rate": trial.suggest_float("critic_learning_rate", 1e-4, 1e-2, log=True),
        "ent_coef_learning_rate": trial.suggest_float("ent_coef_learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef_init": trial.suggest_float("ent_coef_init", 1e-3, 1.0, log=True),
        "reward_shift": trial.suggest_float("reward_shift", -10.0, 10.0),
        "reward_scale": trial.suggest_float("reward_scale", 1e-2, 1.0, log=True),
        # From 2**5 = 32 to 2**9 = 512 (tutorial: 64)
        "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 9),
        "net_width": trial.suggest_categorical("net_width", list(NET_WIDTHS)),
        "entropy_term": trial.suggest_categorical("entropy_term", ["tutorial", "correct"]),
        "handle_timeout_termination": trial.suggest_categorical("handle_timeout_termination", [False, True]),
    }
    return convert_tutorial_sac_params(params)


def register() -> None:
    """
    Add ``tutorial_sac`` to rl-zoo3: TutorialSAC in ``ALGOS``, its Optuna sampler and converter in
    ``rl_zoo3.hyperparams_opt``. Idempotent; other algorithms are left as they are.
    """
    import rl_zoo3.hyperparams_opt
    import rl_zoo3.utils

    from sb3_tutorial_sac import TutorialSAC

    rl_zoo3.utils.ALGOS[ALGO] = TutorialSAC
    rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO] = sample_tutorial_sac_params
    rl_zoo3.hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO] = convert_tutorial_sac_params
    # Modules that hold a table under its name hold the same dict, except where one was copied or rebound
    tables = {
        "ALGOS": TutorialSAC,
        "HYPERPARAMS_SAMPLER": sample_tutorial_sac_params,
        "HYPERPARAMS_CONVERTER": convert_tutorial_sac_params,
    }
    for name, module in list(sys.modules.items()):
        if name == "rl_zoo3" or name.startswith("rl_zoo3."):
            for table, value in tables.items():
                held = getattr(module, table, None)
                if isinstance(held, dict):
                    held[ALGO] = value


def _with_default_conf_file(args: list[str]) -> list[str]:
    """``train``'s arguments, with ``--conf-file <tutorial_sac.yml>`` added for ``--algo tutorial_sac`` without one."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("-conf", "--conf-file", default=None)
    known, _ = parser.parse_known_args(args)
    if known.algo == ALGO and known.conf_file is None:
        return [*args, "--conf-file", str(hyperparams_path(ALGO))]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``sb3-tutorial-sac-zoo <script> [arguments]``: rl-zoo3's script with ``tutorial_sac`` registered.

    :param argv: the command line after the program name (default: ``sys.argv[1:]``)
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in SCRIPTS:
        usage = f"usage: sb3-tutorial-sac-zoo {{{','.join(SCRIPTS)}}} [rl-zoo3 arguments]"
        if args and args[0] not in ("-h", "--help"):
            sys.exit(f"{usage}\nunknown script {args[0]!r}")
        print(
            f"{usage}\n\nrl-zoo3's scripts with the algorithm {ALGO!r} (TutorialSAC) registered; "
            f"'sb3-tutorial-sac-zoo <script> -h' shows the script's arguments."
        )
        return
    script, rest = args[0], args[1:]
    register()
    if script == "train":
        rest = _with_default_conf_file(rest)
    module, function = SCRIPTS[script]
    saved_argv = sys.argv
    sys.argv = [f"sb3-tutorial-sac-zoo {script}", *rest]
    try:
        if function is None:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            import importlib

            entry: Callable[[], Any] = getattr(importlib.import_module(module), function)
            entry()
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    main()
