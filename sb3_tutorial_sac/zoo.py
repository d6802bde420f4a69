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

Not in rl-zoo3: a run's folder (``logs/``, perhaps received from someone else) is read as data, so that no code from
it runs (:func:`folder_files_as_data`): ``config.yml`` and ``args.yml`` with a safe YAML loader that accepts only the
Python tags rl-zoo3 writes (ordered dicts, tuples), a ``normalize`` string as literals (rl-zoo3 ``eval``s it), a
wrapper named in ``config.yml`` only from the zoo's wrapper libraries (``WRAPPER_MODULES``), VecNormalize statistics
from the JSON file this command writes beside rl-zoo3's pickled ``vecnormalize.pkl`` (``vecnormalize.json``; the
pickle, which rl-zoo3 and SB3 read, is never unpickled), and ``plot_from_file``'s input
(``all_plots``' pickle) with an unpickler that makes nothing but containers and NumPy arrays. ``--trusted`` gives rl-zoo3's
own readers back (they can run code from the folder). Models of ``tutorial_sac`` load as data
(:mod:`sb3_tutorial_sac.persistence`); models of other algorithms load with SB3's own, pickled, format.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import pickle
import runpy
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

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


# ---------------------------------------------------------------------------------------------------------------
# A folder's files as data: the zoo flows run no code from a logs/ folder unless --trusted
# ---------------------------------------------------------------------------------------------------------------

VECNORMALIZE_FORMAT = "sb3_tutorial_sac.vecnormalize/1"
#: Where a wrapper named in a folder's config.yml (env_wrapper, vec_env_wrapper) may come from without --trusted:
#: installed libraries that hold the zoo's own wrappers, never a module found in the current directory
WRAPPER_MODULES = ("gymnasium.wrappers", "stable_baselines3.common", "sb3_contrib.common.wrappers", "rl_zoo3.wrappers")
TRUSTED_HINT = "if you trust the folder, add --trusted (it then runs rl-zoo3's own loaders, which can run code from it)"


class RefusedError(ValueError):
    """A file in a run's folder that the zoo flows refuse without ``--trusted`` (it would run code)."""


def _zoo_yaml_loader() -> type:
    """
    A safe YAML loader for the files rl-zoo3 writes (``config.yml``, ``args.yml``): YAML's safe types, plus the two
    Python tags rl-zoo3's ``yaml.dump`` writes (an ``OrderedDict`` of pairs, tuples), and nothing else.
    """
    from collections import OrderedDict

    import yaml

    class ZooLoader(yaml.SafeLoader):
        pass

    def ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> OrderedDict:
        if not isinstance(node, yaml.SequenceNode):
            raise RefusedError(f"a {node.tag} that is not a list of pairs (line {node.start_mark.line + 1}); {TRUSTED_HINT}")
        (pairs, *others) = loader.construct_sequence(node, deep=True) or [None]
        if others or not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise RefusedError(f"a {node.tag} that is not a list of pairs (line {node.start_mark.line + 1}); {TRUSTED_HINT}")
        return OrderedDict((key, value) for key, value in pairs)

    def refused(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        raise RefusedError(
            f"the tag {node.tag} (line {node.start_mark.line + 1}) would make a Python object, which can run code; "
            f"rl-zoo3 writes only ordered dicts and tuples. {TRUSTED_HINT}"
        )

    ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", ordered_dict)
    ZooLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node)))
    ZooLoader.add_constructor(None, refused)
    return ZooLoader


def _literal_kwargs(text: str, where: str) -> dict[str, Any]:
    """``"dict(norm_obs=True, ...)"`` or ``"{'norm_obs': True}"`` (rl-zoo3's ``normalize`` strings) as a dict of literals."""
    import ast

    try:
        tree = ast.parse(text, mode="eval").body
        if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "dict" and not tree.args:
            if all(keyword.arg is not None for keyword in tree.keywords):
                return {keyword.arg: ast.literal_eval(keyword.value) for keyword in tree.keywords}  # type: ignore[misc]
        value = ast.literal_eval(tree)
        if isinstance(value, dict):
            return value
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        pass
    raise RefusedError(f"{where} is {text[:200]!r}, not dict(...) of literals: evaluating it would run code; {TRUSTED_HINT}")


def _safe_get_saved_hyperparams(original: Callable[..., Any]) -> Callable[..., Any]:
    """rl-zoo3's ``get_saved_hyperparams`` with a ``normalize`` string read as literals instead of ``eval``, and the
    sizes ``config.yml`` gives (``frame_stack``) checked before anything is allocated for them."""

    def get_saved_hyperparams(stats_path: str, norm_reward: bool = False, test_mode: bool = False) -> Any:
        result = read(stats_path, norm_reward=norm_reward, test_mode=test_mode)
        hyperparams = result[0] if isinstance(result, tuple) and result else None
        if isinstance(hyperparams, dict):
            check_stack_size("frame_stack", hyperparams.get("frame_stack"), f"{pathlib.Path(stats_path) / 'config.yml'}")
        return result

    def read(stats_path: str, norm_reward: bool = False, test_mode: bool = False) -> Any:
        config = pathlib.Path(stats_path) / "config.yml"
        import yaml

        if config.is_file():
            with open(config) as file:
                normalize = (yaml.load(file, Loader=_zoo_yaml_loader()) or {}).get("normalize")  # (the safe loader)
            if isinstance(normalize, str):
                kwargs = _literal_kwargs(normalize, f"{config}: normalize")
                builtins_eval = _literal_eval_once(normalize, kwargs)
                with builtins_eval:
                    return original(stats_path, norm_reward=norm_reward, test_mode=test_mode)
        return original(stats_path, norm_reward=norm_reward, test_mode=test_mode)

    return get_saved_hyperparams


class _literal_eval_once:  # (used as a context manager)
    """Within the block, rl-zoo3's ``eval(text)`` of ``rl_zoo3.utils`` gives ``value`` (a copy), and nothing else."""

    def __init__(self, text: str, value: dict[str, Any]):
        self.text, self.value = text, value

    def __enter__(self) -> None:
        import rl_zoo3.utils

        def literal_eval(source: str, *args: Any) -> Any:
            if source == self.text:
                return dict(self.value)
            raise RefusedError(f"rl-zoo3 evaluates {source[:200]!r} from a run's folder; {TRUSTED_HINT}")

        rl_zoo3.utils.eval = literal_eval  # type: ignore[attr-defined]  # shadows the builtin in that module only

    def __exit__(self, *exc: Any) -> None:
        import rl_zoo3.utils

        vars(rl_zoo3.utils).pop("eval", None)


def _safe_get_wrapper_class(original: Callable[..., Any]) -> Callable[..., Any]:
    """rl-zoo3's ``get_wrapper_class``, importing a wrapper a folder names only from ``WRAPPER_MODULES``, with its
    keyword arguments checked as values (:func:`check_wrapper_kwargs`)."""

    def get_wrapper_class(hyperparams: dict[str, Any], key: str = "env_wrapper") -> Any:
        names = hyperparams.get(key) if isinstance(hyperparams, dict) else None
        for entry in names if isinstance(names, list) else [names] if names is not None else []:
            name = next(iter(entry)) if isinstance(entry, dict) and entry else entry
            if isinstance(name, str) and not name.startswith(tuple(f"{module}." for module in WRAPPER_MODULES)):
                raise RefusedError(
                    f"{key} names {name!r}, a module outside {WRAPPER_MODULES}: importing it would run its code "
                    f"(a file beside the folder, say); {TRUSTED_HINT}"
                )
            if isinstance(entry, dict):
                if len(entry) != 1 or not isinstance(entry[name], dict):
                    raise RefusedError(f"{key}: {str(entry)[:200]} is not {{wrapper: {{keyword: value}}}}; {TRUSTED_HINT}")
                check_wrapper_kwargs(entry[name], f"{key} {name}")
        return original(hyperparams, key)

    return get_wrapper_class


#: Wrapper keyword arguments in a folder's config.yml, without --trusted: plain values (None, booleans, numbers, strings,
#: lists and dicts of them, at most MAX_WRAPPER_ITEMS each and MAX_WRAPPER_DEPTH deep); no file or folder names (a
#: keyword naming a file, path, dir or folder must be None: a folder does not decide where files are written, as
#: Monitor(filename="../../x") would); strings without path separators; integers within +-MAX_WRAPPER_INT; sizes of
#: what a wrapper stacks or keeps per step (STACK_KEYWORDS, and config.yml's frame_stack) at most MAX_STACK
PATH_WORDS = ("file", "filename", "fname", "path", "filepath", "dir", "directory", "folder")  # words of a keyword
STACK_KEYWORDS = ("frame_stack", "n_stack", "stack_size", "num_stack", "n_frames", "buffer_length", "deque_size")
MAX_STACK = 1024
MAX_WRAPPER_INT = 2**31
MAX_WRAPPER_ITEMS = 1024
MAX_WRAPPER_DEPTH = 4


def check_stack_size(key: str, value: Any, where: str) -> None:
    """A :class:`RefusedError` unless ``value`` (a frame stack's or a wrapper's buffer's size) is unset or an integer in
    ``[0, MAX_STACK]`` (``frame_stack: 1000000000`` asked for 11 GiB)."""
    if value is None or value is False:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STACK:
        raise RefusedError(f"{where}: {key} is {str(value)[:40]}, not an integer in [0, {MAX_STACK}]; {TRUSTED_HINT}")


def _scalar_problem(value: Any) -> str | None:
    """Why a plain value from a folder is refused (None: it is not)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WRAPPER_INT:
        return f"the integer {str(value)[:40]} is beyond +-{MAX_WRAPPER_INT}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"the number {value} is not finite"
    if isinstance(value, str) and (
        len(value) > 1000 or any(mark in value for mark in ("/", "\\", "..")) or value.startswith("~")
    ):
        return f"the string {value[:100]!r} is a path or too long (a folder does not decide where files go)"
    return None


def check_wrapper_kwargs(kwargs: Any, where: str, depth: int = 0) -> None:
    """A :class:`RefusedError` unless a wrapper's keyword arguments from a folder are plain, bounded values that name
    no file or folder (see ``PATH_WORDS``, ``STACK_KEYWORDS``)."""
    problem = None
    if depth > MAX_WRAPPER_DEPTH:
        problem = f"keyword arguments nested more than {MAX_WRAPPER_DEPTH} deep"
    elif kwargs is None or isinstance(kwargs, (bool, int, float, str)):
        problem = _scalar_problem(kwargs)
    elif not isinstance(kwargs, (list, tuple, dict)):
        problem = f"a {type(kwargs).__name__} ({str(kwargs)[:60]}), not a plain value"
    elif len(kwargs) > MAX_WRAPPER_ITEMS:
        problem = f"{len(kwargs)} items, more than {MAX_WRAPPER_ITEMS}"
    elif isinstance(kwargs, dict):
        for key, value in kwargs.items():
            if not isinstance(key, str):
                problem = f"the keyword {str(key)[:40]!r} is not a string"
            elif set(key.lower().split("_")) & set(PATH_WORDS) and value is not None:  # filename, log_dir, video_folder
                problem = f"{key}={str(value)[:100]!r} names a file or folder (a folder does not decide where files go)"
            if problem:
                break
            if key in STACK_KEYWORDS:
                check_stack_size(key, value, where)
            check_wrapper_kwargs(value, f"{where} {key}" if depth == 0 else where, depth + 1)
    else:
        for item in kwargs:
            check_wrapper_kwargs(item, where, depth + 1)
    if problem:
        raise RefusedError(f"{where}: {problem}; {TRUSTED_HINT}")


def vec_normalize_data_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where :func:`save_vec_normalize` writes the statistics as data, beside SB3's pickle ``path``:
    ``vecnormalize.pkl`` -> ``vecnormalize.json`` (``<name>.json`` for a name without ``.pkl``)."""
    path = pathlib.Path(path)
    return path.with_suffix(".json") if path.suffix == ".pkl" else path.with_name(f"{path.name}.json")


def save_vec_normalize(vec_normalize: Any, save_path: str | pathlib.Path) -> None:
    """
    Write a ``VecNormalize`` twice: SB3's pickle under the name given (rl-zoo3's ``vecnormalize.pkl``, which
    ``VecNormalize.load``, ``python -m rl_zoo3.enjoy`` and ``train -i`` read), and its statistics and settings as JSON
    data beside it (:func:`vec_normalize_data_path`: ``vecnormalize.json``), which this package reads without trust.
    """
    from sb3_tutorial_sac.data import to_data
    from sb3_tutorial_sac.file_io import atomic_write

    def statistics(rms: Any) -> dict[str, Any]:
        return {"mean": to_data(np.asarray(rms.mean)), "var": to_data(np.asarray(rms.var)), "count": float(rms.count)}

    obs_rms = vec_normalize.obs_rms if vec_normalize.norm_obs else None
    data = {
        "format": VECNORMALIZE_FORMAT,
        **{key: getattr(vec_normalize, key) for key in ("training", "norm_obs", "norm_reward", "clip_obs", "clip_reward")},
        **{key: getattr(vec_normalize, key) for key in ("gamma", "epsilon", "norm_obs_keys")},
        "obs_rms": None if obs_rms is None else (
            {key: statistics(rms) for key, rms in obs_rms.items()} if isinstance(obs_rms, dict) else statistics(obs_rms)
        ),
        "ret_rms": statistics(vec_normalize.ret_rms),
    }
    text = json.dumps(data).encode()
    # SB3's VecNormalize.save: pickle.dump(self) (its __getstate__ leaves the wrapped env out)
    atomic_write(save_path, "", lambda file: pickle.dump(vec_normalize, file))
    atomic_write(vec_normalize_data_path(save_path), "", lambda file: file.write(text))


def load_vec_normalize(load_path: str | pathlib.Path, venv: Any, trusted: bool = False) -> Any:
    """
    A ``VecNormalize`` around ``venv`` with the statistics :func:`save_vec_normalize` wrote: read from the JSON data
    beside ``load_path`` (``vecnormalize.json``), or from ``load_path`` itself where it is JSON (folders written before
    the pickle was added). The pickle ``load_path`` (SB3's format) is read only if ``trusted`` and there is no JSON
    (SB3's own ``VecNormalize.load``); untrusted, a folder with the pickle alone raises a :class:`RefusedError`.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_tutorial_sac import validation
    from sb3_tutorial_sac.data import from_data
    from sb3_tutorial_sac.file_io import parse_json

    path = pathlib.Path(load_path)
    sidecar = vec_normalize_data_path(path)
    if sidecar.is_file() and not trusted:  # trusted: rl-zoo3's own reader, the pickle
        path = sidecar
    with open(path, "rb") as file:
        head = file.read(validation.MAX_META_BYTES * 64 + 1)
    if not head.lstrip().startswith(b"{"):
        if trusted:
            return _ORIGINALS["VecNormalize.load"](str(path), venv)
        raise RefusedError(
            f"{path} is a pickle (SB3's VecNormalize.save) and {sidecar.name} (the statistics as data) is not beside it: "
            f"unpickling it would run code; {TRUSTED_HINT}"
        )
    if len(head) > validation.MAX_META_BYTES * 64:
        raise RefusedError(f"{path} is larger than VecNormalize statistics can be")
    data = parse_json(head, str(path))
    if not (isinstance(data, dict) and data.get("format") == VECNORMALIZE_FORMAT):
        raise RefusedError(f"{path} is JSON, but not VecNormalize statistics of {VECNORMALIZE_FORMAT}")
    try:
        flags = {key: data[key] for key in ("training", "norm_obs", "norm_reward")}
        numbers = {key: float(data[key]) for key in ("clip_obs", "clip_reward", "gamma", "epsilon")}
        if not all(isinstance(flag, bool) for flag in flags.values()) or not all(map(math.isfinite, numbers.values())):
            raise ValueError(f"flags {flags}, numbers {numbers}")
        vec_normalize = VecNormalize(venv, **flags, **numbers, norm_obs_keys=data.get("norm_obs_keys"))  # type: ignore[arg-type]

        def put(rms: Any, saved: dict[str, Any], where: str) -> None:
            mean, var = (np.asarray(from_data(saved[key], where), dtype=np.float64) for key in ("mean", "var"))
            count = float(saved["count"])
            if mean.shape != rms.mean.shape or var.shape != rms.var.shape or not (
                np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all() and math.isfinite(count) and count > 0
            ):
                raise ValueError(f"{where}: statistics of shape {mean.shape} for {rms.mean.shape}, or not finite")
            rms.mean, rms.var, rms.count = mean, var, count

        put(vec_normalize.ret_rms, data["ret_rms"], "ret_rms")
        if vec_normalize.norm_obs:
            if isinstance(vec_normalize.obs_rms, dict):
                if set(data["obs_rms"]) != set(vec_normalize.obs_rms):
                    raise ValueError(f"obs_rms keys {sorted(data['obs_rms'])}")
                for key, rms in vec_normalize.obs_rms.items():
                    put(rms, data["obs_rms"][key], f"obs_rms.{key}")
            else:
                put(vec_normalize.obs_rms, data["obs_rms"], "obs_rms")
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as error:
        raise RefusedError(f"{path}: not VecNormalize statistics for this env ({str(error)[:300]})") from error
    return vec_normalize


#: What an rl-zoo3 ``all_plots`` file (read by ``plot_from_file``) may name when unpickled: NumPy's arrays and scalars
PLOT_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.dtypes", "Float64DType"), ("numpy.dtypes", "Int64DType")}


#: The most bytes one array of a plot_from_file pickle may describe, checked before it is allocated (a 254-byte pickle
#: of _reconstruct(ndarray, (10**9,), 'f8') asked for 7.45 GiB)
MAX_PLOT_ARRAY_BYTES = 2**27


def _check_plot_array(shape: Any, dtype: Any) -> None:
    """A :class:`RefusedError` unless an array of ``shape`` and ``dtype`` is numbers of at most ``MAX_PLOT_ARRAY_BYTES``."""
    try:
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        size = math.prod(int(n) for n in shape) * dtype.itemsize
        plain = not dtype.hasobject and all(isinstance(n, int) and n >= 0 for n in shape)
    except (TypeError, ValueError, OverflowError) as error:
        why = f"the pickle describes an array of shape {str(shape)[:60]}, dtype {str(dtype)[:40]} ({error})"
        raise RefusedError(why) from error
    if not plain or size > MAX_PLOT_ARRAY_BYTES:
        raise RefusedError(
            f"the pickle describes an array of shape {str(shape)[:60]} and dtype {str(dtype)[:40]}: "
            f"{'objects' if not plain else f'{size} bytes'}, beyond the arrays of numbers of at most "
            f"{MAX_PLOT_ARRAY_BYTES} bytes all_plots writes; {TRUSTED_HINT}"
        )


class _PlotArray(np.ndarray):
    """An array being unpickled: its state's shape and dtype checked before NumPy allocates for them."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise RefusedError(f"the pickle gives an array the state {str(state)[:80]}; {TRUSTED_HINT}")
        _check_plot_array(state[-4], state[-3])
        super().__setstate__(state)


def _plot_ndarray(shape: Any, dtype: Any = float) -> np.ndarray:
    """``numpy.ndarray(shape, dtype)`` as a pickle may call it: bounded first."""
    _check_plot_array(shape, dtype)
    return np.ndarray(shape, dtype)


def _plot_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """NumPy's ``_reconstruct`` (how a pickled array starts): bounded, of an array whose state is checked."""
    if subtype is not _plot_ndarray:
        raise RefusedError(f"the pickle reconstructs a {str(subtype)[:60]}, not an array; {TRUSTED_HINT}")
    _check_plot_array(shape, dtype)
    return _multiarray()._reconstruct(_PlotArray, shape, dtype)


def _plot_scalar(dtype: Any, *data: Any) -> Any:
    """NumPy's ``scalar`` (a pickled NumPy number): of a dtype of numbers."""
    _check_plot_array((), dtype)
    return _multiarray().scalar(dtype, *data)


def _multiarray() -> Any:
    """NumPy's ``multiarray`` module (``numpy._core`` from NumPy 2, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


_PLOT_CHECKED = {"_reconstruct": _plot_reconstruct, "ndarray": _plot_ndarray, "scalar": _plot_scalar}


def _plain_arrays(value: Any) -> Any:
    """``value`` with every :class:`_PlotArray` in its containers viewed as a plain ``numpy.ndarray`` (in place)."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if id(item) in seen or not isinstance(item, (dict, list)):
            continue
        seen.add(id(item))
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            if isinstance(item[key], _PlotArray):
                item[key] = item[key].view(np.ndarray)
            elif isinstance(item[key], tuple):
                item[key] = tuple(entry.view(np.ndarray) if isinstance(entry, _PlotArray) else entry for entry in item[key])
                pending.extend(entry for entry in item[key] if isinstance(entry, (dict, list)))
            else:
                pending.append(item[key])
    return value.view(np.ndarray) if isinstance(value, _PlotArray) else value


class _PlotUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays of numbers only (``PLOT_GLOBALS``), each array's size checked before
    it is allocated (``MAX_PLOT_ARRAY_BYTES``): anything else a pickle names is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PLOT_GLOBALS:
            return _PLOT_CHECKED.get(name) or super().find_class(module, name)
        raise RefusedError(
            f"the pickle names {module}.{name}, beyond the arrays and containers all_plots writes: unpickling it could "
            f"run code; {TRUSTED_HINT}"
        )

    def load(self) -> Any:
        return _plain_arrays(super().load())


class _PlotPickle:
    """``pickle`` as ``rl_zoo3.plots.plot_from_file`` sees it: ``load`` restricted to :class:`_PlotUnpickler`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)

    @staticmethod
    def load(file: Any) -> Any:
        return _PlotUnpickler(file).load()


_ORIGINALS: dict[str, Any] = {}


@contextlib.contextmanager
def folder_files_as_data(trusted: bool) -> Iterator[None]:
    """
    Within the block, rl-zoo3's scripts read a run's folder as data: ``config.yml`` and ``args.yml`` with
    :func:`_zoo_yaml_loader`, a ``normalize`` string as literals, wrappers only from ``WRAPPER_MODULES``, and
    ``vecnormalize.pkl`` with :func:`load_vec_normalize`; VecNormalize statistics are saved as data. With
    ``trusted``, only the saving changes (rl-zoo3's own loaders run). Everything is put back at the end.
    """
    import rl_zoo3.enjoy
    import rl_zoo3.utils
    import yaml
    from stable_baselines3.common.vec_env import VecNormalize

    _ORIGINALS.setdefault("VecNormalize.load", VecNormalize.load)
    patches: list[tuple[Any, str, Any]] = [
        (VecNormalize, "save", save_vec_normalize),
        (VecNormalize, "load", staticmethod(lambda load_path, venv: load_vec_normalize(load_path, venv, trusted))),
    ]
    if not trusted:
        plot_from_file = sys.modules.get("rl_zoo3.plots.plot_from_file")
        if plot_from_file is not None:  # it unpickles all_plots' file
            patches.append((plot_from_file, "pickle", _PlotPickle()))
        patches += [
            (yaml, "UnsafeLoader", _zoo_yaml_loader()),  # rl-zoo3 reads config.yml and args.yml with yaml.UnsafeLoader
            (rl_zoo3.utils, "get_saved_hyperparams", _safe_get_saved_hyperparams(rl_zoo3.utils.get_saved_hyperparams)),
            (rl_zoo3.enjoy, "get_saved_hyperparams", _safe_get_saved_hyperparams(rl_zoo3.utils.get_saved_hyperparams)),
            (rl_zoo3.utils, "get_wrapper_class", _safe_get_wrapper_class(rl_zoo3.utils.get_wrapper_class)),
        ]
    saved = [(owner, name, vars(owner).get(name, _MISSING)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


_MISSING = object()


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


if __name__ == "__main__":
    main()
