"""Side-by-side comparison of TutorialSAC with SB3's SAC (and any rl-zoo3 algorithm): many seeds, one protocol.

``sb3-tutorial-sac compare`` (also ``python -m sb3_tutorial_sac.compare``) trains every algorithm on every
environment for every seed with its own rl-zoo3 hyperparameters (``sac`` from the zoo's ``sac.yml``,
``tutorial_sac`` from the project's ``hyperparams/tutorial_sac.yml``), all under one evaluation protocol:
every ``eval_freq`` env steps, ``eval_episodes`` episodes with the deterministic policy (SB3's way) and as
many with the stochastic policy (the tutorial's way), raw returns (``Monitor``). Runs are written in rl-zoo3's
layout, ``<log_folder>/<algo>/<env>_<seed>/`` with ``evaluations.npz`` (``results`` = deterministic, as the
zoo's ``EvalCallback``; ``results_stochastic`` beside it; ``train_seconds``, the training seconds at each
evaluation point), ``0.monitor.csv``, ``config.yml`` and the model, so rl-zoo3's own plotting scripts read them
too. Then a report is written next to the runs and printed:

* ``<name>_evaluations.csv``: one row per run, evaluation point and policy mode;
* ``<name>_runs.csv``: one row per run (status, error, wall-clock and training seconds, env steps per second);
* ``<name>_<env>.png``: learning curves, mean and 95% bootstrap confidence band per algorithm, against env steps
  and against training seconds;
* ``<name>.md``: per environment, one sentence answering the question first (which algorithm ends higher, which
  reaches the threshold in fewer env steps and in fewer training seconds), then a table (final return mean +/- std
  and IQM with 95% CI, deterministic and stochastic; median env steps and training seconds to reach a threshold;
  seconds per run; env steps per second; the probability that the reference algorithm improves on each other one).

Runs go in parallel on this machine (``--jobs``) or on a Ray cluster (``--backend ray --address ...``), with a
live progress display. Finished runs are found and skipped (resume by running the same command again); a run
that raises is reported with its error and the others go on. ``--ablation`` trains TutorialSAC with each
tutorial quirk switched to SB3's choice, one at a time.

Modules, by job: ``specs`` (what runs: ``Variant``, ``ABLATION``, ``RunSpec``, ``make_specs``), ``runs`` (one
run through rl-zoo3's ``ExperimentManager``, its callbacks and record), ``backends`` (local worker processes,
Ray, ``run_all``), ``progress`` (the live display), ``stats`` (IQM, probability of improvement, bootstrap CIs,
steps and seconds to a threshold, ``summarise``), ``plots`` (learning curves), ``report`` (``collect``, the
headline sentence, the markdown table, ``write_report``), ``grid`` (``compare()``), ``cli`` (the command).
"""

from sb3_tutorial_sac.compare.backends import run_all
from sb3_tutorial_sac.compare.cli import main
from sb3_tutorial_sac.compare.grid import compare
from sb3_tutorial_sac.compare.plots import plot_curves
from sb3_tutorial_sac.compare.progress import ProgressDisplay
from sb3_tutorial_sac.compare.report import DEFAULT_THRESHOLDS, collect, headline, markdown_table, write_report
from sb3_tutorial_sac.compare.runs import DualEvalCallback, load_record, record_config, train_one
from sb3_tutorial_sac.compare.specs import (
    ABLATION,
    ABLATION_NOTE,
    COMPUTE_MATCHED,
    MODES,
    REFERENCE,
    REWARD_SCALES,
    RUN_FILE,
    VARIANTS,
    RunSpec,
    Variant,
    make_specs,
)
from sb3_tutorial_sac.compare.stats import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    bootstrap_ci,
    iqm,
    probability_of_improvement,
    seconds_to_threshold,
    steps_to_threshold,
    summarise,
)

__all__ = [
    "ABLATION",
    "ABLATION_NOTE",
    "BOOTSTRAP_REPS",
    "BOOTSTRAP_SEED",
    "COMPUTE_MATCHED",
    "DEFAULT_THRESHOLDS",
    "MODES",
    "REFERENCE",
    "REWARD_SCALES",
    "RUN_FILE",
    "VARIANTS",
    "DualEvalCallback",
    "ProgressDisplay",
    "RunSpec",
    "Variant",
    "bootstrap_ci",
    "collect",
    "compare",
    "headline",
    "iqm",
    "load_record",
    "main",
    "make_specs",
    "markdown_table",
    "plot_curves",
    "probability_of_improvement",
    "record_config",
    "run_all",
    "seconds_to_threshold",
    "steps_to_threshold",
    "summarise",
    "train_one",
    "write_report",
]
