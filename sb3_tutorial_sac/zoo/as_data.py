"""rl-zoo3's readers patched, within a block, to read a run's folder as data (:func:`folder_files_as_data`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from sb3_tutorial_sac.zoo.checks import _safe_get_saved_hyperparams, _safe_get_wrapper_class, _zoo_yaml_loader
from sb3_tutorial_sac.zoo.plot_pickle import _PlotPickle
from sb3_tutorial_sac.zoo.vecnormalize import _ORIGINALS, load_vec_normalize, save_vec_normalize


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
