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

The package, by job (rl-zoo3's own layout: a harness split so that each file reads at once):

- :mod:`~sb3_tutorial_sac.zoo.registration`: ``tutorial_sac`` in the zoo's tables, its hyperparameters file, its Optuna
  sampler and converter;
- :mod:`~sb3_tutorial_sac.zoo.checks`: ``config.yml`` and ``args.yml`` read as data, wrappers checked as values;
- :mod:`~sb3_tutorial_sac.zoo.vecnormalize`: VecNormalize statistics written and read as data;
- :mod:`~sb3_tutorial_sac.zoo.plot_pickle`: ``plot_from_file``'s pickle read as containers and arrays only;
- :mod:`~sb3_tutorial_sac.zoo.as_data`: rl-zoo3's readers patched within a block (:func:`folder_files_as_data`);
- :mod:`~sb3_tutorial_sac.zoo.cli`: ``sb3-tutorial-sac-zoo`` (:func:`main`).

Every public name is importable from ``sb3_tutorial_sac.zoo`` itself.
"""

from sb3_tutorial_sac.zoo.as_data import folder_files_as_data
from sb3_tutorial_sac.zoo.checks import (
    MAX_STACK,
    MAX_WRAPPER_DEPTH,
    MAX_WRAPPER_INT,
    MAX_WRAPPER_ITEMS,
    PATH_WORDS,
    STACK_KEYWORDS,
    TRUSTED_HINT,
    WRAPPER_MODULES,
    RefusedError,
    check_stack_size,
    check_wrapper_kwargs,
)
from sb3_tutorial_sac.zoo.cli import SCRIPTS, main
from sb3_tutorial_sac.zoo.cli import _short_runs_hints as _short_runs_hints
from sb3_tutorial_sac.zoo.cli import _with_default_conf_file as _with_default_conf_file
from sb3_tutorial_sac.zoo.plot_pickle import MAX_PLOT_ARRAY_BYTES, PLOT_GLOBALS
from sb3_tutorial_sac.zoo.plot_pickle import _multiarray as _multiarray
from sb3_tutorial_sac.zoo.plot_pickle import _PlotPickle as _PlotPickle
from sb3_tutorial_sac.zoo.plot_pickle import _PlotUnpickler as _PlotUnpickler
from sb3_tutorial_sac.zoo.registration import (
    ALGO,
    NET_WIDTHS,
    convert_tutorial_sac_params,
    hyperparams_path,
    params_argument,
    register,
    sample_tutorial_sac_params,
)
from sb3_tutorial_sac.zoo.vecnormalize import (
    VECNORMALIZE_FORMAT,
    load_vec_normalize,
    save_vec_normalize,
    vec_normalize_data_path,
)

__all__ = [
    "ALGO",
    "MAX_PLOT_ARRAY_BYTES",
    "MAX_STACK",
    "MAX_WRAPPER_DEPTH",
    "MAX_WRAPPER_INT",
    "MAX_WRAPPER_ITEMS",
    "NET_WIDTHS",
    "PATH_WORDS",
    "PLOT_GLOBALS",
    "SCRIPTS",
    "STACK_KEYWORDS",
    "TRUSTED_HINT",
    "VECNORMALIZE_FORMAT",
    "WRAPPER_MODULES",
    "RefusedError",
    "check_stack_size",
    "check_wrapper_kwargs",
    "convert_tutorial_sac_params",
    "folder_files_as_data",
    "hyperparams_path",
    "load_vec_normalize",
    "main",
    "params_argument",
    "register",
    "sample_tutorial_sac_params",
    "save_vec_normalize",
    "vec_normalize_data_path",
]
