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
is a ``ValueError`` naming the file and the field. Also here: atomic writes that keep the file's permission bits, the
random generators' states, and the all-or-nothing checks of ``set_parameters``.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import inspect
import io
import json
import math
import os
import pathlib
import random
import re
import stat
import uuid
import warnings
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import cloudpickle
import numpy as np
import stable_baselines3 as sb3
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import json_to_data, open_path, recursive_getattr
from stable_baselines3.common.utils import check_for_correct_spaces, get_system_info

from sb3_tutorial_sac import policies, validation
from sb3_tutorial_sac.data import NotDataError, from_data, has_pickle, to_data
from sb3_tutorial_sac.validation import FileValueError

if TYPE_CHECKING:
    from sb3_tutorial_sac.tutorial_sac import TutorialSAC

SelfTutorialSAC = TypeVar("SelfTutorialSAC", bound="TutorialSAC")

Path = str | pathlib.Path | io.BufferedIOBase

FORMAT = "sb3_tutorial_sac/1"
# The allow-list: the constructor's arguments (as attributes, but these) and SB3's state that a model needs
NOT_SAVED, RENAMED = ("self", "policy", "env", "device", "_init_setup_model"), {"stats_window_size": "_stats_window_size"}
# The episode in progress, as arrays (SB3 saves them too): load(env=env, force_reset=False) continues it
LAST_OBS = ("_last_obs", "_last_original_obs", "_last_episode_starts")
STATE = (
    *("policy_class", "observation_space", "action_space", "n_envs", "num_timesteps", "_total_timesteps"),
    *("_num_timesteps_at_start", "_n_updates", "_episode_num", "_current_progress_remaining"),
    *LAST_OBS,
)
STATISTICS = ("ep_info_buffer", "ep_success_buffer")  # left out, with a note, if an env put non-data into them
ENV_STATE = ("env", *LAST_OBS)  # the VecEnv only with include=["env"] (pickled)
# The engines a file that is not trusted may choose (others, the compiled one, only when the caller asks at load)
FILE_ENGINES = ("auto", "fast", "reference")
SCHEDULES = ("learning_rate", "critic_learning_rate", "ent_coef_learning_rate")
READ_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, RuntimeError, OSError)
READ_ERRORS += (UnicodeDecodeError, json.JSONDecodeError, NotImplementedError)  # data that is not JSON, odd zips
# What may go wrong when a model is built from a file's values that passed the checks (a last net: a ValueError)
BUILD_ERRORS: tuple[type[Exception], ...] = (TypeError, KeyError, AttributeError, IndexError, RuntimeError, AssertionError)
BUILD_ERRORS += (OverflowError, ZeroDivisionError, RecursionError, MemoryError, NotImplementedError)


# ----------------------------------------------------------------------------------------------- writing files


def atomic_write(path: str | pathlib.Path, suffix: str, write: Callable[[io.BufferedIOBase], object]) -> None:
    """
    Write a file through a temporary file in the same directory, renamed over ``path`` only once complete
    (``os.replace`` is atomic on POSIX and Windows): an interrupted or failed write leaves the old file as it was.
    A file replaced keeps its permission bits; a new one gets those of ``open()``.

    :param path: destination; as in SB3's ``open_path``, ``.<suffix>`` is added when it has no suffix
    :param suffix: the default suffix (``"zip"``, ``"pkl"``)
    :param write: writes the content to the open binary file it is given (and may close it)
    """
    path = pathlib.Path(path)
    if path.suffix == "" and suffix:
        path = pathlib.Path(f"{path}.{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # the file replaced keeps its permission bits (a private 0600 file)
    except OSError:
        mode = None  # a new file: the mode open() gives it (0666 less the umask)
    try:
        # created private, so that a private file's content is never readable by others while it is written
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
        with open(descriptor, "wb") as file:
            write(file)  # type: ignore[arg-type]
        if mode is not None:
            os.chmod(temporary, mode)
        # flush to disk before the rename, so that a crash cannot leave a renamed but empty file
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _write(path: Path, suffix: str, write: Callable[[Any], None]) -> None:
    if isinstance(path, (str, pathlib.Path)):
        atomic_write(path, suffix, write)
    else:
        write(path)


# ----------------------------------------------------------------------------------------------- model files


def saved_attributes(cls: type[TutorialSAC]) -> list[str]:
    """The allow-list of a model file's ``data``: the constructor's arguments and SB3's state (``STATE``)."""
    arguments = [RENAMED.get(name, name) for name in inspect.signature(cls.__init__).parameters]
    return [name for name in arguments if name not in NOT_SAVED] + list(STATE) + list(STATISTICS)


def excluded_save_params(model: TutorialSAC) -> list[str]:
    """Every attribute :func:`save_model` leaves out: all but the allow-list (``_setup_model`` rebuilds them)."""
    return sorted(set(vars(model)) - set(saved_attributes(type(model))))


def torch_save_params(model: TutorialSAC) -> tuple[list[str], list[str]]:
    """The state dicts (``<name>.pth``) and the tensors (``pytorch_variables.pth``) of a model file."""
    # Tutorial rule: four optimiser states (actor, critic 1, critic 2, alpha); the two critics' Adams are
    # the two parameter groups of critic.optimizer
    state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
    if model.ent_coef_optimizer is not None:
        return [*state_dicts, "ent_coef_optimizer"], ["log_ent_coef"]
    return state_dicts, ["ent_coef_tensor"]


def _attribute_data(model: TutorialSAC, name: str, value: Any, include: set[str], notes: list[str]) -> Any:
    """``value`` as data; else pickled if included, the current value of a schedule, no statistics, or pickled with a
    warning (the file then loads only with ``trusted=True``)."""
    try:
        return to_data(value)
    except NotDataError as error:
        if name in include:
            notes.append(f"{name}: pickled (save(include=[{name!r}])); this file loads only with trusted=True")
            return {":pickled:": base64.b64encode(cloudpickle.dumps(value)).decode()}
        if name in STATISTICS:
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


def save_model(model: TutorialSAC, path: Path, exclude: Iterable[str] | None, include: Iterable[str] | None) -> None:
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

    _write(path, "zip", write)


def _unreadable(path: Any, why: Any) -> ValueError:
    return FileValueError(f"{path!r} is not a readable TutorialSAC save (truncated or corrupt file?): {why}")


# ----------------------------------------------------------------------------------------------- reading, bounded


@contextlib.contextmanager
def open_archive(
    path: Path, suffix: str, max_members: int, limit: str, unreadable: Callable[[Exception], Exception]
) -> Iterator[zipfile.ZipFile]:
    """
    A saved file's zip archive, its members counted before anything is read; the file is closed after use where this
    opened it (a path), left open where the caller gave a file object.

    :param path: a path or a file object
    :param suffix: the suffix :func:`open_path` adds to a path without one
    :param max_members: more members than this raise a :class:`FileValueError` (naming ``limit``)
    :param unreadable: the exception to raise when the file is not a readable zip (a missing file raises as it is)
    """
    file = open_path(path, "r", suffix=suffix)
    try:
        try:
            archive = zipfile.ZipFile(file)
        except READ_ERRORS as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise unreadable(error) from error
        with archive:
            members = len(archive.infolist())
            if members > max_members:
                raise FileValueError(f"{path!r} holds {members} members, more than {limit}")
            yield archive
    finally:
        if isinstance(path, (str, pathlib.Path)):
            file.close()


def read_member(archive: zipfile.ZipFile, name: str, cap: int, path: Any) -> bytes:
    """
    A zip member's content, refused before it is inflated if it says it is larger than ``cap`` bytes (``zipfile``
    never inflates a member beyond the size its header gives).
    """
    info = archive.getinfo(name)
    if info.file_size > cap:
        raise FileValueError(
            f"{path!r}: its member {name} inflates to {info.file_size} bytes, more than the {cap} bytes it may hold "
            "(a zip bomb, or a model beyond the bounds of sb3_tutorial_sac.validation)"
        )
    with archive.open(info) as member:
        content = member.read(cap + 1)
    if len(content) > cap:  # (cannot happen with zipfile's own reader; kept for any other)
        raise FileValueError(f"{path!r}: its member {name} is larger than {cap} bytes")
    return content


# Linear-time pieces of the depth check: the escapes that matter (a backslash's and a quote's) dropped first, so that
# every '"' left delimits a string and no pattern backtracks over a run of '\\"' (an unterminated one was quadratic
# with the one-pass string pattern of earlier versions)
_STRINGS = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_CHUNK = 2**22


def json_depth(content: bytes) -> int:
    """How deep ``content`` (JSON text) nests its lists and objects, in time linear in its length (strings skipped)."""
    unescaped = content.replace(b"\\\\", b"").replace(b'\\"', b"")  # pairs left to right, as JSON reads them
    brackets = _STRINGS.sub(b'""', unescaped).translate(None, _NOT_BRACKETS)
    deepest = depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):  # in chunks: a 64 MiB member never needs 8 bytes a bracket
        chunk = np.frombuffer(brackets, dtype=np.uint8, count=min(_DEPTH_CHUNK, len(brackets) - start), offset=start)
        running = np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def parse_json(content: bytes, where: str) -> Any:
    """
    JSON as data, in time linear in its length, with its bounds applied as it is read: nesting at most
    ``MAX_JSON_DEPTH`` deep, checked before it is parsed (Python's parser would raise a ``RecursionError``); integers of
    at most ``MAX_INT_DIGITS`` digits (Python's ``int`` of a long one takes time quadratic in its digits, and a number
    like 10**400 would overflow the bounds' arithmetic); no key given twice in one object (JSON keeps the last one
    silently). Any refusal is a :class:`FileValueError` naming ``where``.
    """
    deepest = json_depth(content)
    if deepest > validation.MAX_JSON_DEPTH:
        raise FileValueError(f"{where} is nested more than {validation.MAX_JSON_DEPTH} deep")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            counts = collections.Counter(key for key, _ in pairs)
            twice = sorted(key for key, count in counts.items() if count > 1)
            raise FileValueError(f"{where} gives the key{'s' if len(twice) > 1 else ''} {twice[:5]} twice in one object")
        return result

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > validation.MAX_INT_DIGITS:
            raise FileValueError(
                f"{where} holds an integer of {len(text.lstrip('-'))} digits, more than the {validation.MAX_INT_DIGITS} "
                f"a file may give ({text[:20]}...)"
            )
        return int(text)

    try:
        return json.loads(content.decode("utf-8"), object_pairs_hook=no_duplicates, parse_int=integer)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise FileValueError(f"{where} is not JSON: {str(error)[:200]}") from error


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


def tensor_caps(model: TutorialSAC) -> Callable[[str], int]:
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


def read_model_file(path: Path, model: TutorialSAC) -> dict[str, Any]:
    """The ``*.pth`` members of a model file for ``model``: plain tensors, bounded by what ``model`` holds."""
    return ModelFile(path).read_tensors(tensor_caps(model))


def count_parameters(policy_class: type, observation_space: spaces.Space, action_space: spaces.Space, kwargs: dict) -> int:
    """The numbers in the policy ``policy_class(..., **kwargs)`` would hold, counted on torch's meta device (no memory)."""
    meta = type(policy_class.__name__, (policy_class,), {"device": property(lambda self: th.device("meta"))})
    with th.device("meta"):
        policy = meta(observation_space, action_space, lambda _: 0.0, **kwargs)
    return sum(tensor.numel() for tensor in policy.state_dict().values())


# Activations without parameters: with them, an MLP policy on a flat Box is counted from its widths alone
PLAIN_ACTIVATIONS = (th.nn.ReLU, th.nn.Tanh, th.nn.ELU, th.nn.LeakyReLU, th.nn.SiLU, th.nn.GELU, th.nn.Sigmoid)
PLAIN_KWARGS = {"net_arch", "n_critics", "activation_fn", "optimizer_class", "optimizer_kwargs", "share_features_extractor"}


def _mlp_numbers(values: dict[str, Any]) -> int | None:
    """
    The numbers of a TutorialSACPolicy of MLPs on a flat Box (the tutorial's kind of model), from its widths; ``None``
    for any other policy (then :func:`count_parameters` builds it on the meta device).
    """
    kwargs, space = values.get("policy_kwargs") or {}, values["observation_space"]
    plain = set(kwargs) <= PLAIN_KWARGS and kwargs.get("activation_fn", th.nn.ReLU) in PLAIN_ACTIVATIONS
    if not (plain and values["policy_class"] is policies.MlpPolicy and type(space) is spaces.Box and len(space.shape) == 1):
        return None
    net_arch = kwargs.get("net_arch")
    if net_arch is None:  # absent or None: the policy's default (TutorialSACPolicy: the tutorial's widths)
        net_arch = dict(pi=[128], qf=[128, 128])
    actor, critic = (net_arch["pi"], net_arch["qf"]) if isinstance(net_arch, dict) else (net_arch, net_arch)
    inputs, actions = int(space.shape[0]), int(math.prod(values["action_space"].shape))

    def mlp(widths: list[int], first: int) -> int:
        return sum((a + 1) * b for a, b in zip([first, *widths[:-1]], widths))

    last = actor[-1] if actor else inputs
    critic_numbers = mlp([*critic, 1], inputs + actions)
    return mlp(actor, inputs) + 2 * (last + 1) * actions + 2 * kwargs.get("n_critics", 2) * critic_numbers


def _check_sizes(values: dict[str, Any], where: str) -> None:
    """The bounds of a file that is not trusted, on the values the model will be built from (nothing allocated)."""
    validation.check_file_sizes(values, where)
    try:
        parameters = _mlp_numbers(values)
        if parameters is None:
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
    for name in STATISTICS:
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


def set_variables(model: TutorialSAC, variables: Any, where: str) -> None:
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


# ----------------------------------------------------------------------------------------------- random generators


def get_rng_state(model: TutorialSAC) -> dict[str, Any]:
    """The states of the random generators that ``learn()`` draws from (see ``TutorialSAC.save``)."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": (version, np.array(internal, dtype=np.uint32), gauss),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
    }
    if model.device.type == "cuda":
        state["cuda"] = th.cuda.get_rng_state(model.device)
    if model.action_space is not None and model.action_space._np_random is not None:
        state["action_space"] = model.action_space.np_random.bit_generator.state
    return state


def set_rng_state(model: TutorialSAC, state: dict[str, Any]) -> None:
    """
    Put back the random generators' states of :func:`get_rng_state` (also read back from a file): all or nothing, a
    state that a generator refuses leaves every generator as it was.
    """
    before = get_rng_state(model)
    try:
        _set_rng_state(model, state)
    except BaseException:
        _set_rng_state(model, before)
        raise


def _set_rng_state(model: TutorialSAC, state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(word) for word in internal), gauss))
    np.random.set_state(state["numpy"])
    th.set_rng_state(th.as_tensor(state["torch"], dtype=th.uint8))
    if "cuda" in state and model.device.type == "cuda":
        th.cuda.set_rng_state(th.as_tensor(state["cuda"], dtype=th.uint8), model.device)
    if "action_space" in state and model.action_space is not None:
        model.action_space.np_random.bit_generator.state = state["action_space"]


# ----------------------------------------------------------------------------------------------- parameters


def set_parameters(model: TutorialSAC, load_path_or_dict: Path | dict[str, Any], exact_match: bool, device: Any) -> None:
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


def tensor_problem(given: Any, own: th.Tensor, shape: tuple[int, ...] | None = None) -> str | None:
    """What keeps ``given`` from replacing ``own``: not a tensor, another dtype or shape, a NaN or an infinity."""
    shape = tuple(own.shape) if shape is None else shape
    if not isinstance(given, th.Tensor):
        return f"a {type(given).__name__}, not a tensor"
    if given.dtype != own.dtype or tuple(given.shape) != shape:
        return f"{given.dtype} of shape {tuple(given.shape)} given, {own.dtype} of shape {shape} in this model"
    if (given.is_floating_point() or given.is_complex()) and not bool(th.isfinite(given).all()):
        return "not finite (NaN or infinity)"
    return None


def check_parameters(model: TutorialSAC, params: dict[str, Any], exact_match: bool) -> None:
    """
    Raise a ``ValueError`` if ``params`` do not fit ``model``'s objects: names, keys, and every tensor (dtype, shape,
    finite), optimiser states included (their parameters, shapes, dtypes and values).
    """
    names = torch_save_params(model)[0]
    unknown = sorted(set(params) - set(names))
    missing = sorted(set(names) - set(params)) if exact_match else []
    if unknown or missing:
        raise ValueError(
            f"The parameters do not match this TutorialSAC model's objects {names}: unknown {unknown}, "
            f"missing {missing}. Nothing was loaded."
        )
    problems: list[str] = []
    for name, given in params.items():
        target = recursive_getattr(model, name)
        if not isinstance(given, dict):
            problems.append(f"{name}: a {type(given).__name__}, not a state dict")
        elif isinstance(target, th.optim.Optimizer):
            problems += optimizer_state_problems(name, target, given)
        else:
            own = target.state_dict()
            if exact_match and set(given) != set(own):
                problems.append(
                    f"{name}: missing keys {sorted(set(own) - set(given))[:5]}, "
                    f"unexpected keys {sorted(map(str, set(given) - set(own)))[:5]}"
                )
            for key in sorted(set(given) & set(own)):
                problem = tensor_problem(given[key], own[key])
                if problem and "shape" in problem and isinstance(given[key], th.Tensor) and given[key].dtype == own[key].dtype:
                    problem = f"shape {tuple(given[key].shape)} given, {tuple(own[key].shape)} in this model"
                if problem:
                    problems.append(f"{name}.{key}: {problem}")
    if problems:
        raise ValueError(
            "The parameters do not fit this TutorialSAC model (saved with another net_arch, other spaces or "
            f"another algorithm, or not parameters at all); nothing was loaded: {'; '.join(problems[:5])}"
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        )


# Optimiser states that are sums of squares (never negative), by torch's names
SQUARES = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta")
# The largest step count (and scalar state) a file may give: exact as a float, and an int64 once counted on (3e38 made
# learn() fail with an OverflowError)
MAX_STEP = 2**53


def adam_state_keys(optimizer: th.optim.Optimizer, index: int) -> set[str] | None:
    """The state keys torch's ``Adam`` (``AdamW``) keeps for a parameter of group ``index`` once it has stepped (the
    engines read each of them); ``None`` for other optimisers."""
    if not isinstance(optimizer, (th.optim.Adam, th.optim.AdamW)):
        return None
    amsgrad = bool(optimizer.param_groups[index].get("amsgrad", False))
    return {"step", "exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ())}


def _group_problems(name: str, index: int, group: dict[str, Any], own_group: dict[str, Any]) -> list[str]:
    """A parameter group's settings: the same keys as this model's; flags equal to its own; numbers finite, >= 0."""
    unknown = sorted(map(str, set(group) - set(own_group)))
    if unknown:
        return [f"{name} group {index}: settings {unknown[:5]} that torch's {type(own_group).__name__} has not"]
    problems = []
    for key, value in group.items():
        own = own_group[key]
        if key == "params":
            continue
        if key == "betas":
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(
                    validation.is_finite_number(beta) and 0 <= beta < 1 for beta in value)):  # fmt: skip
                problems.append(f"{name} group {index} betas: {str(value)[:80]}, not two numbers in [0, 1)")
        elif isinstance(own, bool) or own is None or isinstance(own, str):
            if value != own:  # fused, foreach, amsgrad, capturable, ...: the model's own implementation
                problems.append(f"{name} group {index} {key}: {value!r} given, {own!r} in this model")
        elif validation._is_number(own):
            if not (validation.is_finite_number(value) and value >= 0):
                problems.append(f"{name} group {index} {key}: {str(value)[:80]}, not a finite number >= 0")
        elif isinstance(own, th.Tensor):
            if not (isinstance(value, th.Tensor) and value.numel() == 1 and bool(th.isfinite(value).all()) and value >= 0):
                problems.append(f"{name} group {index} {key}: {value!r}, not a finite number >= 0")
        elif value != own:
            problems.append(f"{name} group {index} {key}: {value!r} given, {own!r} in this model")
    return problems


def optimizer_state_problems(name: str, optimizer: th.optim.Optimizer, given: dict[str, Any]) -> list[str]:
    """
    What keeps ``given`` (an optimiser ``state_dict()``) from fitting ``optimizer``: group counts and settings,
    parameter counts, states only for the parameters of its groups, each state tensor of its parameter's shape and
    dtype (a step: a number), finite, sums of squares never negative. (``torch``'s ``load_state_dict`` checks only the
    counts; with TutorialSAC's flat buffers, one tensor per group, a state of the wrong size would load and fail at the
    next step, and a NaN would make every prediction NaN.)
    """
    groups = given.get("param_groups")
    states = given.get("state")
    if not isinstance(groups, list) or not isinstance(states, dict) or not all(isinstance(g, dict) for g in groups):
        return [f"{name}: not an optimizer state dict (no param_groups / state)"]
    if len(groups) != len(optimizer.param_groups):
        return [f"{name}: {len(groups)} parameter groups given, {len(optimizer.param_groups)} in this model"]
    problems = []
    parameters: dict[Any, tuple[int, th.Tensor]] = {}
    for index, (group, own_group) in enumerate(zip(groups, optimizer.param_groups)):
        ids = group.get("params", ())
        if not isinstance(ids, list) or len(ids) != len(own_group["params"]):
            given_count, own_count = len(ids) if isinstance(ids, list) else ids, len(own_group["params"])
            problems.append(f"{name} group {index}: {given_count} tensors given, {own_count} in this model")
            continue
        problems += _group_problems(name, index, group, own_group)
        parameters.update((key, (index, param)) for key, param in zip(ids, own_group["params"]))
    strangers = sorted(map(str, set(states) - set(parameters)))
    if strangers:
        problems.append(f"{name}: states for parameters {strangers[:5]}, which none of its groups holds")
    for key, (index, param) in parameters.items():
        state = states.get(key, {})
        if not isinstance(state, dict):
            problems.append(f"{name} group {index} state of parameter {key}: a {type(state).__name__}, not a dict")
            continue
        required = adam_state_keys(optimizer, index)
        if state and required is not None and set(state) != required:
            problems.append(
                f"{name} group {index} state of parameter {key}: {sorted(map(str, state))[:6]}, where "
                f"{type(optimizer).__name__} keeps {sorted(required)} (learn() reads each of them)"
            )
        for state_key, value in state.items():
            where = f"{name} group {index} state {state_key}"
            if state_key == "step" or (isinstance(value, th.Tensor) and value.dim() == 0):
                number = value.item() if isinstance(value, th.Tensor) and value.numel() == 1 else value
                ok = validation.is_finite_number(number) and 0 <= number <= MAX_STEP
                ok = ok and (state_key != "step" or float(number).is_integer())
                if not ok or (isinstance(value, th.Tensor) and not value.is_floating_point()):
                    what = "an integer in [0, 2**53]" if state_key == "step" else "a finite number >= 0"
                    problems.append(f"{where}: {str(value)[:80]}, not {what}")
                continue
            problem = tensor_problem(value, param)
            if problem and "shape" in problem and isinstance(value, th.Tensor) and value.dtype == param.dtype:
                problem = f"shape {tuple(value.shape)} given, {tuple(param.shape)} in this model"
            if problem is None and state_key in SQUARES and bool((value < 0).any()):
                problem = "negative values in a sum of squares"
            if problem:
                problems.append(f"{where}: {problem}")
    return problems
