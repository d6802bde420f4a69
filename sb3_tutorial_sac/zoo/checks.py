"""A run's folder read as data (no code from it runs unless ``--trusted``): ``config.yml`` and ``args.yml`` with a safe
YAML loader, a ``normalize`` string as literals, wrappers and their keyword arguments checked as values."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable
from typing import Any

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
