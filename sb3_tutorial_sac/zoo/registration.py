"""rl-zoo3's tables with ``tutorial_sac``: its hyperparameters file, its Optuna sampler and converter, :func:`register`."""

from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any

ALGO = "tutorial_sac"

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
        package = pathlib.Path(__file__).resolve().parent.parent  # sb3_tutorial_sac/
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
    hyperparams = convert_tutorial_sac_params(params)
    # The trial as TutorialSAC's arguments (trial.params holds the sampler's names: batch_size_pow, ent_coef_init,
    # net_width), shown under "User Attributes" in the zoo's report and as user_attrs_* columns of its csv, as
    # rl-zoo3's own samplers record their converted values (batch_size, gamma)
    for key in ("batch_size", "ent_coef", "policy_kwargs"):
        trial.set_user_attr(key, _literal(hyperparams[key]) if key == "policy_kwargs" else hyperparams[key])
    trial.set_user_attr("params", params_argument(hyperparams))
    return hyperparams


def params_argument(hyperparams: dict[str, Any]) -> str:
    """
    ``hyperparams`` as the zoo's ``-params`` argument (``train -params key:value ...``: each value is read with
    ``eval``), quoted for a POSIX shell.

    :param hyperparams: TutorialSAC's arguments (literals, ``policy_kwargs`` a dict of literals)
    """
    import shlex

    return "-params " + " ".join(shlex.quote(f"{key}:{_literal(value)}") for key, value in hyperparams.items())


def _literal(value: Any) -> str:
    """Python source of ``value`` as the zoo's files write it: ``dict(net_arch=[64])``, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict) and all(isinstance(key, str) and key.isidentifier() for key in value):
        return f"dict({', '.join(f'{key}={_literal(item)}' for key, item in value.items())})"
    if isinstance(value, (list, tuple)):
        items = ", ".join(map(_literal, value))
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    return repr(value)


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
