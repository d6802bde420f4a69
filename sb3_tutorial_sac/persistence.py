"""Save and load TutorialSAC as data: loading a file never runs code from it, unless the caller says it trusts it.

A model file is a zip in SB3's layout. ``data`` is plain JSON written from an allow-list (the constructor's arguments,
SB3's counters, the spaces, the policy class, the episode in progress, the random generators' states); the networks,
the optimiser states and log-alpha are ``*.pth`` tensors, read with ``torch.load(weights_only=True)``. ``_setup_model``
rebuilds everything else. A replay buffer file is an npz (its stored rows and a JSON ``meta``), read with
``np.load(allow_pickle=False)``. What is not data (a VecEnv, a custom class, a schedule function) is pickled only where
``save(include=[...])`` names it, and such a file, like SB3's own format, loads only with ``trusted=True``.

A file that is not trusted is also checked before anything it describes is allocated (the bounds are in
:mod:`sb3_tutorial_sac.validation`): each member's decompressed size, the JSON's depth and duplicate keys, every
array's size, the values (the constructor's checks), the policy's size, the replay buffer's memory; then every tensor
(finite, of the model's dtype and shape, optimiser states matching their parameters, only known names). Every refusal
is a ``ValueError`` naming the file and the field. Also here: ``set_parameters``, all or nothing.

The pieces this module uses live by job: :mod:`sb3_tutorial_sac.file_io` (atomic writes, the bounded zip and JSON
reading), :mod:`sb3_tutorial_sac.rng_state` (the random generators' states), :mod:`sb3_tutorial_sac.parameter_checks`
(the checks of state dicts and optimiser states).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import io
import json
import warnings
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import cloudpickle
import numpy as np
import stable_baselines3 as sb3
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import json_to_data, recursive_getattr
from stable_baselines3.common.utils import check_for_correct_spaces, get_system_info
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_tutorial_sac import policies, validation
from sb3_tutorial_sac.data import NotDataError, from_data, has_pickle, to_data
from sb3_tutorial_sac.file_io import READ_ERRORS, Path, open_archive, parse_json, read_member, write_to
from sb3_tutorial_sac.parameter_checks import check_parameters, tensor_problem
from sb3_tutorial_sac.rng_state import get_rng_state, set_rng_state
from sb3_tutorial_sac.validation import FileValueError

# Names that lived here before the modules were split by job, still importable from here
from sb3_tutorial_sac.file_io import atomic_write as atomic_write, json_depth as json_depth
from sb3_tutorial_sac.parameter_checks import MAX_STEP as MAX_STEP, SQUARES as SQUARES
from sb3_tutorial_sac.parameter_checks import adam_state_keys as adam_state_keys
from sb3_tutorial_sac.parameter_checks import optimizer_state_problems as optimizer_state_problems


SelfTutorialSAC = TypeVar("SelfTutorialSAC", bound=OffPolicyAlgorithm)

FORMAT = "sb3_tutorial_sac/1"
# The allow-list: the constructor's arguments (as attributes, but these) and SB3's state that a model needs
NOT_SAVED, RENAMED = ("self", "policy", "env", "device", "_init_setup_model"), {"stats_window_size": "_stats_window_size"}
# The episode in progress, as arrays (SB3 saves them too): load(env=env, force_reset=False) continues it
LAST_OBS = ("_last_obs", "_last_original_obs", "_last_episode_starts")
SB3_STATE = (
    *("policy_class", "observation_space", "action_space", "n_envs", "num_timesteps", "_total_timesteps"),
    *("_num_timesteps_at_start", "_n_updates", "_episode_num", "_current_progress_remaining"),
    *LAST_OBS,
)
EPISODE_STATISTICS = ("ep_info_buffer", "ep_success_buffer")  # left out, with a note, if an env put non-data into them
ENV_STATE = ("env", *LAST_OBS)  # the VecEnv only with include=["env"] (pickled)
# The engines a file that is not trusted may choose (others, the compiled one, only when the caller asks at load)
FILE_ENGINES = ("auto", "fast", "reference")
SCHEDULES = ("learning_rate", "critic_learning_rate", "ent_coef_learning_rate")
# What may go wrong when a model is built from a file's values that passed the checks (a last net: a ValueError)
BUILD_ERRORS: tuple[type[Exception], ...] = (TypeError, KeyError, AttributeError, IndexError, RuntimeError, AssertionError)
BUILD_ERRORS += (OverflowError, ZeroDivisionError, RecursionError, MemoryError, NotImplementedError)


# ----------------------------------------------------------------------------------------------- model files


def saved_attributes(cls: type[OffPolicyAlgorithm]) -> list[str]:
    """The allow-list of a model file's ``data``: the constructor's arguments and SB3's state (``SB3_STATE``)."""
    arguments = [RENAMED.get(name, name) for name in inspect.signature(cls.__init__).parameters]
    return [name for name in arguments if name not in NOT_SAVED] + list(SB3_STATE) + list(EPISODE_STATISTICS)


def excluded_save_params(model: OffPolicyAlgorithm) -> list[str]:
    """Every attribute :func:`save_model` leaves out: all but the allow-list (``_setup_model`` rebuilds them)."""
    return sorted(set(vars(model)) - set(saved_attributes(type(model))))


def torch_save_params(model: OffPolicyAlgorithm) -> tuple[list[str], list[str]]:
    """The state dicts (``<name>.pth``) and the tensors (``pytorch_variables.pth``) of a model file."""
    # Tutorial rule: four optimiser states (actor, critic 1, critic 2, alpha); the two critics' Adams are
    # the two parameter groups of critic.optimizer
    state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
    if getattr(model, "ent_coef_optimizer", None) is not None:
        return [*state_dicts, "ent_coef_optimizer"], ["log_ent_coef"]
    return state_dicts, ["ent_coef_tensor"]


def _attribute_data(model: OffPolicyAlgorithm, name: str, value: Any, include: set[str], notes: list[str]) -> Any:
    """``value`` as data; else pickled if included, the current value of a schedule, no statistics, or pickled with a
    warning (the file then loads only with ``trusted=True``)."""
    try:
        return to_data(value)
    except NotDataError as error:
        if name in include:
            notes.append(f"{name}: pickled (save(include=[{name!r}])); this file loads only with trusted=True")
            return {":pickled:": base64.b64encode(cloudpickle.dumps(value)).decode()}
        if name in EPISODE_STATISTICS:
            notes.append(f"{name}: left out, it holds {error}")
            return None
        if name in SCHEDULES and callable(value):
            progress = model._current_progress_remaining
            current = float(value(progress))
            notes.append(f"{name}: {value!r} is not data; saved as its value {current} at progress remaining {progress}")
            warnings.warn(
                f"TutorialSAC.save: {name} is a schedule function, not data: saved as its current value {current}. "
                f"save(path, include=[{name!r}]) pickles the function instead (the file then loads only with trusted=True)",
                stacklevel=4,
            )
            return current
        # Nothing a user saves is lost (a save at the end of a long zoo run must not fail): pickled, and said so
        notes.append(f"{name}: pickled ({error}); this file loads only with trusted=True or custom_objects")
        warnings.warn(
            f"TutorialSAC.save: {name} cannot be written as data: it is {error}. It was pickled, so this file loads "
            f"only with TutorialSAC.load(path, trusted=True), or with custom_objects={{{name!r}: ...}} (loading a "
            "pickle runs code: trust the file first). save(path, include=[...]) names such fields without this warning.",
            stacklevel=4,
        )
        return {":pickled:": base64.b64encode(cloudpickle.dumps(value)).decode()}


def save_model(model: OffPolicyAlgorithm, path: Path, exclude: Iterable[str] | None, include: Iterable[str] | None) -> None:
    """Write ``model`` to ``path`` (see ``TutorialSAC.save``)."""
    include, allowed = set(include or ()), saved_attributes(type(model))
    exclude = set(exclude or ()) - include  # as in SB3: include wins over exclude
    names = [name for name in allowed if name not in exclude] + sorted(include - set(allowed))
    attributes: dict[str, Any] = {}
    notes: list[str] = []
    for name in names:  # an allow-listed attribute is always there (else AttributeError); an included one, if it is
        if name in allowed or hasattr(model, name):
            attributes[name] = _attribute_data(model, name, getattr(model, name), include, notes)
    if "_rng_state" not in exclude:
        attributes["_rng_state"] = to_data(get_rng_state(model))
    data = json.dumps({"format": FORMAT, "notes": notes, "attributes": attributes}, indent=1)
    state_dicts, variables = torch_save_params(model)
    members = {name: getattr(recursive_getattr(model, name), "_orig_mod", recursive_getattr(model, name)).state_dict()
               for name in state_dicts}  # fmt: skip
    members["pytorch_variables"] = {name: recursive_getattr(model, name) for name in variables}

    def write(file: Any) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("data", data)
            for name, tensors in members.items():
                with archive.open(f"{name}.pth", mode="w", force_zip64=True) as member:
                    th.save(tensors, member)
            archive.writestr("_stable_baselines3_version", sb3.__version__)
            archive.writestr("system_info.txt", get_system_info(print_info=False)[1])

    write_to(path, "zip", write)


def _unreadable(path: Any, why: Any) -> ValueError:
    return FileValueError(f"{path!r} is not a readable TutorialSAC save (truncated or corrupt file?): {why}")


class ModelFile:
    """
    A model file, read in two steps: :meth:`read_data` (``data`` and the system info, bounded), then, once the model it
    describes is built, :meth:`read_tensors` (each ``*.pth`` member bounded by what that model's tensors need).
    """

    def __init__(self, path: Path):
        self.path = path
        self.start = path.tell() if isinstance(path, io.IOBase) else None

    @contextlib.contextmanager
    def _archive(self) -> Iterator[zipfile.ZipFile]:
        if self.start is not None:
            self.path.seek(self.start)  # type: ignore[union-attr]
        unreadable = partial(_unreadable, self.path)
        with open_archive(self.path, "zip", validation.MAX_MEMBERS, str(validation.MAX_MEMBERS), unreadable) as archive:
            yield archive

    def read_data(self, with_info: bool) -> tuple[Any, str]:
        """``data`` parsed as JSON (``None`` if the file has none) and ``system_info.txt`` if ``with_info``."""
        with self._archive() as archive:
            try:
                names = archive.namelist()
                data = None
                if "data" in names:
                    content = read_member(archive, "data", validation.MAX_DATA_BYTES, self.path)
                    data = parse_json(content, f"{self.path!r}: data")
                info = ""
                if with_info and "system_info.txt" in names:
                    info = read_member(archive, "system_info.txt", validation.MAX_INFO_BYTES, self.path).decode(
                        "utf-8", "replace"
                    )
            except READ_ERRORS as error:
                raise _unreadable(self.path, error) from error
        return data, info

    def read_tensors(self, caps: Callable[[str], int]) -> dict[str, Any]:
        """Every ``<name>.pth`` member by name, read with ``torch.load(weights_only=True)``, each at most ``caps(name)``."""
        tensors = {}
        with self._archive() as archive:
            try:
                for name in (name for name in archive.namelist() if name.endswith(".pth")):
                    content = read_member(archive, name, caps(name[: -len(".pth")]), self.path)
                    try:
                        loaded = th.load(io.BytesIO(content), map_location="cpu", weights_only=True)
                    except Exception as error:
                        why = f"{name} is not plain tensors: torch.load(weights_only=True) refused it, nothing from it ran"
                        raise _unreadable(self.path, f"{why} ({str(error)[:300]})") from error
                    tensors[name[: -len(".pth")]] = loaded
            except READ_ERRORS as error:
                raise _unreadable(self.path, error) from error
        return tensors


def tensor_caps(model: OffPolicyAlgorithm) -> Callable[[str], int]:
    """The most bytes each ``*.pth`` member of a file for ``model`` may inflate to: its tensors, and some slack."""

    def size(tensors: Iterable[th.Tensor]) -> int:
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    state_dicts, variables = torch_save_params(model)
    caps = {"pytorch_variables": size(recursive_getattr(model, name) for name in variables)}
    for name in state_dicts:
        target = recursive_getattr(model, name)
        if isinstance(target, th.optim.Optimizer):  # Adam: exp_avg, exp_avg_sq, max_exp_avg_sq and a step per tensor
            parameters = [param for group in target.param_groups for param in group["params"]]
            caps[name] = 3 * size(parameters) + (64 + 4 * validation.TENSOR_OVERHEAD) * len(parameters)
        else:
            # each tensor's pickling: its storage's zip entry and record, its key (a 100 x 100 critic ensemble: 40,000)
            state = target.state_dict()
            caps[name] = size(state.values()) + sum(validation.TENSOR_OVERHEAD + len(key) for key in state)
    return lambda name: caps.get(name, 0) + validation.MAX_TENSOR_SLACK


def read_model_file(path: Path, model: OffPolicyAlgorithm) -> dict[str, Any]:
    """The ``*.pth`` members of a model file for ``model``: plain tensors, bounded by what ``model`` holds."""
    return ModelFile(path).read_tensors(tensor_caps(model))


def count_parameters(policy_class: type, observation_space: spaces.Space, action_space: spaces.Space, kwargs: dict) -> int:
    """
    The numbers in the policy ``policy_class(..., **kwargs)`` would hold (actor, critics, target critics), counted on
    torch's meta device: built as the model builds it, so any policy is counted right, and nothing is allocated.
    """
    meta = type(policy_class.__name__, (policy_class,), {"device": property(lambda self: th.device("meta"))})
    with th.device("meta"):
        policy = meta(observation_space, action_space, lambda _: 0.0, **kwargs)
    return sum(tensor.numel() for tensor in policy.state_dict().values())


def _check_sizes(values: dict[str, Any], where: str) -> None:
    """The bounds of a file that is not trusted, on the values the model will be built from (nothing allocated)."""
    validation.check_file_sizes(values, where)
    try:
        parameters = count_parameters(values["policy_class"], values["observation_space"], values["action_space"],
                                      values.get("policy_kwargs") or {})  # fmt: skip
    except (*BUILD_ERRORS, ValueError) as error:  # type: ignore[misc]
        why = f"{type(error).__name__}: {error}"[:600]
        raise FileValueError(f"{where}: its policy cannot be built from its values: {why}") from error
    if parameters > validation.MAX_PARAMETERS:
        raise FileValueError(
            f"{where}, field 'policy_kwargs': the policy would hold {parameters} numbers, more than the "
            f"{validation.MAX_PARAMETERS} a file that is not trusted may describe (trusted=True lifts the bound)"
        )


def _check_last_obs(attributes: dict[str, Any], where: str) -> None:
    """The saved episode in progress must fit the spaces and ``n_envs`` (else ``force_reset=True`` drops it)."""
    space, n_envs = attributes["observation_space"], attributes.get("n_envs", 1)
    expected = {"_last_obs": space, "_last_original_obs": space, "_last_episode_starts": spaces.MultiBinary(1)}
    for name, own in expected.items():
        value = attributes.get(name)
        if value is None:
            continue
        if name == "_last_episode_starts":
            pairs: list[tuple[Any, tuple[int, ...], set[np.dtype]]] = [(value, (n_envs,), {np.dtype(bool)})]
        elif isinstance(own, spaces.Dict):
            if not (isinstance(value, dict) and set(value) == set(own.spaces)):
                raise FileValueError(f"{where}, field {name!r}: keys {sorted(value)[:5]}, not those of {own}")
            pairs = [(value[key], (n_envs, *sub.shape), {np.dtype(sub.dtype)}) for key, sub in own.spaces.items()]  # type: ignore[misc]
        else:
            pairs = [(value, (n_envs, *own.shape), {np.dtype(own.dtype)})]
        for array, shape, dtypes in pairs:
            if not (isinstance(array, np.ndarray) and array.shape == shape and array.dtype in dtypes):
                got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else repr(array)[:100]
                raise FileValueError(
                    f"{where}, field {name!r}: {got}, not {' or '.join(map(str, dtypes))} {shape} (n_envs={n_envs}); "
                    "load(..., force_reset=True) starts from a reset instead"
                )
            # whatever check_finite says: learn() would store it and train on it (NaN parameters)
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise FileValueError(
                    f"{where}, field {name!r}: NaN or infinite values; load(..., force_reset=True) starts from a reset instead"
                )


def _attributes(cls: type, path: Path, data: dict, env: Any, custom: dict, force_reset: bool, trusted: bool) -> dict:
    """The attributes a file's ``data`` describes, for ``cls(...).__dict__``; the caller's ``custom`` ones win."""
    ours = data.get("format") == FORMAT
    raw = data.get("attributes") if ours else data
    if not isinstance(raw, dict):
        raise _unreadable(path, "its data holds no attributes")
    if env is not None:  # the caller's env: the saved one (and with force_reset, its episode) is not used, nor unpickled
        raw = {name: value for name, value in raw.items() if name not in ENV_STATE[: len(ENV_STATE) if force_reset else 1]}
    pickled = sorted(name for name, value in raw.items() if name not in custom and has_pickle(value))
    if not ours:  # SB3's format: the policy class's module is in plain text beside its pickle
        module = raw.get("policy_class", {}).get("__module__") if isinstance(raw.get("policy_class"), dict) else None
        if not (isinstance(module, str) and module.startswith("sb3_tutorial_sac")):
            raise FileValueError(
                f"{path!r} was not saved by TutorialSAC: its policy class comes from {module or 'nowhere'}, not a "
                "TutorialSACPolicy. Load it with the algorithm that saved it."
            )
    if pickled and not trusted:
        origin = f"saved with save(include={pickled})" if ours else "SB3's pickled format: an older TutorialSAC save, or SB3's"
        raise FileValueError(
            f"{path!r}: {pickled} {'is a pickled object' if len(pickled) == 1 else 'are pickled objects'} ({origin}), "
            "and unpickling runs code from the file, so TutorialSAC.load never reads them by default. If you trust the "
            "file: TutorialSAC.load(path, trusted=True), then save it again for a file of data only; or give them in "
            "custom_objects."
        )
    if raw.get("env") is not None and "env" not in custom and not trusted:
        # never made nor imported: gym.make("module:Env-v0") would import the module the file names
        raise FileValueError(
            f"{path!r}, field 'env': the file names an env ({str(raw['env'])[:100]!r}), and TutorialSAC.load never makes "
            "or imports an env a file names. Pass env=... to load, or trusted=True if you trust the file."
        )
    known = {*saved_attributes(cls), *ENV_STATE, "_rng_state"}
    unknown = sorted(set(raw) - known - set(custom)) if ours else []
    if unknown and not trusted:
        raise FileValueError(
            f"{path!r} holds attributes {unknown} beyond those a TutorialSAC file holds (saved with save(include=...)?): "
            "TutorialSAC.load sets them only with trusted=True."
        )
    try:
        if ours:
            attributes = {
                name: custom[name] if name in custom else from_data(value, name, trusted) for name, value in raw.items()
            }
        else:  # trusted: SB3's reader unpickles; only the allow-list is kept (the rest is rebuilt by _setup_model)
            attributes = json_to_data(json.dumps({name: raw[name] for name in known & set(raw)}), custom)
    except ValueError as error:
        raise _unreadable(path, error) from error
    missing = [name for name in ("policy_class", "observation_space", "action_space") if name not in attributes]
    if missing:
        raise _unreadable(path, f"its data holds no {missing}")
    if not (
        isinstance(attributes["policy_class"], type) and issubclass(attributes["policy_class"], policies.TutorialSACPolicy)
    ):
        raise FileValueError(f"{path!r} was not saved by TutorialSAC: its policy class is {attributes['policy_class']!r}")
    for name in EPISODE_STATISTICS:
        if isinstance(attributes.get(name), list):
            window = attributes.get("_stats_window_size", 100)
            attributes[name] = deque(attributes[name], maxlen=window if isinstance(window, int) and window > 0 else 100)
    if isinstance(attributes.get("policy_kwargs"), dict):
        attributes["policy_kwargs"].pop("device", None)
    attributes.setdefault("policy_kwargs", {})
    return attributes


def load_model(
    cls: type[SelfTutorialSAC],
    path: Path,
    env: Any,
    device: th.device | str,
    custom_objects: dict[str, Any] | None,
    print_system_info: bool,
    force_reset: bool,
    trusted: bool,
    kwargs: dict[str, Any],
) -> SelfTutorialSAC:
    """The model ``path`` describes (see ``TutorialSAC.load``)."""
    where = repr(path)
    source = ModelFile(path)
    data, info = source.read_data(with_info=print_system_info)
    if not isinstance(data, dict):
        raise _unreadable(path, "it holds no ['data']")
    if print_system_info:
        print(f"== SAVED MODEL SYSTEM INFO ==\n{info}")
        get_system_info()
    attributes = _attributes(cls, path, data, env, dict(custom_objects or {}), force_reset, trusted)
    rng_state = attributes.pop("_rng_state", None)
    if "policy_kwargs" in kwargs and kwargs["policy_kwargs"] != attributes["policy_kwargs"]:
        raise ValueError(
            "The specified policy kwargs do not equal the stored policy kwargs. "
            f"Stored kwargs: {attributes['policy_kwargs']}, specified kwargs: {kwargs['policy_kwargs']}"
        )
    if not trusted and attributes.get("tensorboard_log") is not None and "tensorboard_log" not in kwargs:
        # Not in SB3: a file does not decide where learn() writes; the caller does. Said by learn() (a load to predict
        # or evaluate, the common case, stays quiet: TutorialSAC._setup_learn)
        attributes["_file_tensorboard_log"] = (where, attributes["tensorboard_log"])
        attributes["tensorboard_log"] = None
    engine = attributes.get("engine", "auto")
    if not trusted and engine in validation.engine_names() and engine not in FILE_ENGINES and "engine" not in kwargs:
        # Not in SB3: an engine that loads native code from the cache (the compiled one) is the caller's choice
        warnings.warn(
            f"TutorialSAC.load: {where} names engine={engine[:40]!r}; a file does not choose an engine "
            "that loads native code, so the model uses engine='auto'. Pass load(path, engine=...) (or trusted=True).",
            stacklevel=3,
        )
        attributes["engine"] = "auto"
    # One validation path: the constructor's checks on the file's values and the caller's overrides (custom_objects
    # are the caller's own, left as SB3 leaves them: rl-zoo3's enjoy gives learning_rate=0.0)
    values = {name: value for name, value in {**attributes, **kwargs}.items() if name not in (custom_objects or {})}
    if trusted:
        validation.check_arguments(values, where)
    else:
        validation.check_file_values(values, where)
        _check_sizes({**attributes, **kwargs}, where)
    # SB3's load from here on: the env, the model without networks, its attributes, _setup_model, the tensors
    if env is not None:
        env = cls._wrap_env(env, attributes.get("verbose", 0))
        check_for_correct_spaces(env, attributes["observation_space"], attributes["action_space"])
        attributes["n_envs"] = env.num_envs
    else:
        env = attributes.pop("env", None)
    _check_last_obs(attributes, where)
    try:
        model = cls(policy=attributes["policy_class"], env=env, device=device, _init_setup_model=False)  # type: ignore[call-arg]
        model.__dict__.update(attributes)
        model.__dict__.update(kwargs)
        model._setup_model()
    except BUILD_ERRORS as error:
        if trusted:
            raise
        why = f"{type(error).__name__}: {error}"[:800]
        raise FileValueError(f"{where}: no TutorialSAC model can be built from its values: {why}") from error
    tensors = source.read_tensors(tensor_caps(model))
    if "policy" not in tensors:
        raise _unreadable(path, "it holds no ['policy.pth']")
    try:
        model.set_parameters({name: value for name, value in tensors.items() if name != "pytorch_variables"}, device=device)
    except ValueError as error:
        raise FileValueError(f"{where} does not fit a TutorialSAC model: {error}") from error
    set_variables(model, tensors.get("pytorch_variables"), where)
    if rng_state is not None:
        try:
            set_rng_state(model, rng_state)
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError, OverflowError) as error:
            raise FileValueError(f"{where}, field '_rng_state': not the states of the random generators ({error})") from error
    return model


def set_variables(model: OffPolicyAlgorithm, variables: Any, where: str) -> None:
    """Copy a file's ``pytorch_variables`` (log-alpha, or the fixed alpha) into ``model``, checked, all or nothing."""
    names = torch_save_params(model)[1]
    if variables is None:
        return
    if not isinstance(variables, dict) or set(variables) - set(names):
        unknown = sorted(set(variables) - set(names)) if isinstance(variables, dict) else variables
        raise FileValueError(f"{where}: pytorch_variables holds {str(unknown)[:200]}; a TutorialSAC model of it holds {names}")
    for name, value in variables.items():
        target = recursive_getattr(model, name)
        problem = tensor_problem(value, target)
        if problem:
            raise FileValueError(f"{where} does not fit a TutorialSAC model: pytorch_variables {name}: {problem}")
    with th.no_grad():
        for name, value in variables.items():
            recursive_getattr(model, name).copy_(value)  # in place: the optimiser and the engine keep their references


def set_parameters(
    model: OffPolicyAlgorithm, load_path_or_dict: Path | dict[str, Any], exact_match: bool, device: Any
) -> None:
    """``TutorialSAC.set_parameters``: checked, then all or nothing."""
    if isinstance(load_path_or_dict, dict):
        params = load_path_or_dict
    else:
        tensors = read_model_file(load_path_or_dict, model)
        params = {name: value for name, value in tensors.items() if name != "pytorch_variables"}
        if not params:
            raise FileValueError(f"{load_path_or_dict!r} holds no parameters (truncated or corrupt file?)")
    check_parameters(model, params, exact_match)
    backup = {name: copy.deepcopy(recursive_getattr(model, name).state_dict()) for name in torch_save_params(model)[0]}
    try:
        BaseAlgorithm.set_parameters(model, params, exact_match=exact_match, device=device)
    except Exception as error:
        for name, state_dict in backup.items():
            recursive_getattr(model, name).load_state_dict(state_dict)
        raise ValueError(f"set_parameters failed, nothing was loaded: {error}") from error
