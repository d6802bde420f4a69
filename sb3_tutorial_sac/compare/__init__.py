"""Side-by-side comparison of TutorialSAC with SB3's SAC (and any rl-zoo3 algorithm): many seeds, one protocol.

``sb3-tutorial-sac compare`` (also ``python -m sb3_tutorial_sac.compare``) trains every algorithm on every
environment for every seed with its own rl-zoo3 hyperparameters (``sac`` from the zoo's ``sac.yml``,
``tutorial_sac`` from the project's ``hyperparams/tutorial_sac.yml``; ``--variants`` adds named rows: the
compute-matched SAC, reward-scale rows, ablation rows), all under one protocol: training stops at exactly the
budget for every algorithm; every ``eval_freq`` env steps, ``eval_episodes`` episodes with the deterministic
policy (SB3's way) and as many with the stochastic policy (the tutorial's way), raw returns (``Monitor``). Runs
are written in rl-zoo3's layout, ``<log_folder>/<algo>/<env>_<seed>/`` with ``evaluations.npz`` (``results`` =
deterministic, as the zoo's ``EvalCallback``; ``results_stochastic`` beside it; ``train_seconds`` and
``train_cpu_seconds``, wall-clock and process CPU training seconds at each evaluation point), ``0.monitor.csv``,
``config.yml`` (the budget and schedules used) and the model, so rl-zoo3's own plotting scripts read them too.
Then a report is written next to the runs and printed:

* ``<name>_evaluations.csv``: one row per run, evaluation point and policy mode;
* ``<name>_runs.csv``: one row per run (status, error, wall-clock and CPU seconds, env steps per second);
* ``<name>_<env>.png``: learning curves, mean and 95% bootstrap band per algorithm, against env steps (the points
  every run has, the scoring points shaded) and against training seconds (one common time grid);
* ``<name>.md``: per environment, the scoring rule, one sentence per algorithm against the reference (which ends
  higher, which reaches the threshold in fewer env steps and in fewer training seconds: each said only when the
  bootstrap interval of P excludes 0.5 and an exact rank test agrees, else "inconclusive at n runs"), a table
  (scores, IQM with 95% CI, medians to the threshold with CIs, CPU and wall seconds, P with CI and p), every pair
  when there are more than two algorithms, and where each algorithm's hyperparameters come from; across tasks
  (several environments, or ``--aggregate`` over several log folders): normalised scores, IQM, performance
  profile and average probability of improvement.

Runs go in parallel on this machine (``--jobs``) or on a Ray cluster (``--backend ray --address ...``), with a
live progress display. Finished runs are found and skipped (resume by running the same command again); a run
that raises is reported with its error and the others go on. ``--ablation`` trains TutorialSAC with each
tutorial quirk switched to SB3's choice, one at a time. ``--report-only`` rebuilds the report from the records
alone (seeded bootstrap, no clock): the same records give the same report.

Modules, by job: ``specs`` (what runs: ``Variant``, ``ABLATION``, ``VARIANTS``, ``RunSpec``, ``make_specs``),
``runs`` (one run through rl-zoo3's ``ExperimentManager``, its callbacks and record), ``backends`` (local worker
processes, Ray, ``run_all``), ``progress`` (the live display), ``stats`` (the scoring rule, IQM, probability of
improvement, bootstrap CIs, rank tests, verdicts, steps and seconds to a threshold, ``summarise``), ``plots``
(learning curves), ``aggregate`` (across tasks), ``provenance`` (where hyperparameters come from), ``report``
(``collect``, the sentences, the tables, ``write_report``), ``grid`` (``compare()``), ``cli`` (the command).
"""

from sb3_tutorial_sac.compare.backends import run_all
from sb3_tutorial_sac.compare.cli import main
from sb3_tutorial_sac.compare.grid import compare
from sb3_tutorial_sac.compare import aggregate, plots, stats
from sb3_tutorial_sac.compare.plots import plot_curves
from sb3_tutorial_sac.compare.progress import ProgressDisplay
from sb3_tutorial_sac.compare.report import DEFAULT_THRESHOLDS, collect, headline, markdown_table, write_report
from sb3_tutorial_sac.compare.runs import DualEvalCallback, load_record, record_config, train_one
from sb3_tutorial_sac.compare.specs import (
    ABLATION,
    ABLATION_NOTE,
    ABLATIONS,
    YML_ABLATION,
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
    SCORE_LAST,
    bootstrap_ci,
    common_steps,
    iqm,
    probability_of_improvement,
    rank_test,
    scores,
    scoring_steps,
    seconds_to_threshold,
    steps_to_threshold,
    summarise,
    verdict,
)

__all__ = [
    "ABLATION",
    "ABLATIONS",
    "ABLATION_NOTE",
    "BOOTSTRAP_REPS",
    "BOOTSTRAP_SEED",
    "COMPUTE_MATCHED",
    "DEFAULT_THRESHOLDS",
    "MODES",
    "REFERENCE",
    "REWARD_SCALES",
    "RUN_FILE",
    "SCORE_LAST",
    "VARIANTS",
    "YML_ABLATION",
    "DualEvalCallback",
    "ProgressDisplay",
    "RunSpec",
    "Variant",
    "aggregate",
    "bootstrap_ci",
    "collect",
    "common_steps",
    "compare",
    "headline",
    "iqm",
    "load_record",
    "main",
    "make_specs",
    "markdown_table",
    "plot_curves",
    "plots",
    "probability_of_improvement",
    "rank_test",
    "record_config",
    "run_all",
    "scores",
    "scoring_steps",
    "seconds_to_threshold",
    "stats",
    "steps_to_threshold",
    "summarise",
    "train_one",
    "verdict",
    "write_report",
]
