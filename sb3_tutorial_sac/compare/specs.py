"""What a comparison runs: the variants (an rl-zoo3 algorithm, optionally with overrides), the ablation of the
tutorial's quirks, and one run's specification (``RunSpec``, picklable: it travels to worker processes and Ray
tasks, so it lives in this one module path)."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

# The two evaluation modes of every evaluation point: SB3's way (tanh(mu)) and the tutorial's way (sampled)
MODES = ("deterministic", "stochastic")
# Reference algorithm of the "probability of improvement" column and of the report's headline
REFERENCE = "tutorial_sac"
# Name of the file that marks a finished run (and holds its protocol and timings)
RUN_FILE = "compare_run.json"
# The statuses of a run that ended and is not trained again: "ok" (trained to the budget) and "diverged" (TutorialSAC's
# guard stopped training at a NaN or an infinity: an outcome of the row's algorithm, the same on every attempt on one
# machine, so it is recorded, not retried)
FINISHED = ("ok", "diverged")
# The rows whose algorithm is TutorialSAC: the only ones an engine setting (``RunSpec.engine``) applies to
ENGINE_ALGOS = ("tutorial_sac",)
# How the zoo's lin_ schedules meet a budget below its n_timesteps (``RunSpec.schedule``), as the report states it
SCHEDULES = {
    "budget": "a budget below the zoo's n_timesteps scales its lin_ schedules to the budget",
    "zoo": "its lin_ schedules run over the zoo's n_timesteps and training stops at the budget",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a comparison: an rl-zoo3 algorithm with its zoo hyperparameters, optionally overridden.

    :param label: name in the tables and plots (the algorithm key when there are no overrides)
    :param algo: rl-zoo3 algorithm key (``tutorial_sac``, ``sac``, ``tqc``, ``td3``, ...)
    :param overrides: hyperparameters replacing the zoo's (passed to the algorithm's constructor)
    :param description: one line for the report
    :param defaults: start from the algorithm's constructor defaults instead of its zoo entry (the overrides on
        top; the budget must be given): e.g. the tutorial's own settings on a task the yml tunes
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    defaults: bool = False

    def exp_folder(self, log_folder: pathlib.Path) -> pathlib.Path:
        """The rl-zoo3 experiment folder of this variant: the log folder itself, or ``<log_folder>/<label>``
        for a variant with overrides (so that its runs never mix with the plain algorithm's)."""
        return log_folder if not (self.overrides or self.defaults) else log_folder / self.label


# The fixes of `all_fixes`: the three tutorial rules that are mathematically SB3's different choice (the rest of
# the tutorial's setup, its compute and rewards, stays)
FIXES: dict[str, dict[str, Any]] = {
    "correct_entropy": {"entropy_term": "correct"},
    "bootstrap_timeouts": {"handle_timeout_termination": True},
    "sb3_alpha_loss": {"ent_coef_loss": "sb3"},
}
ALL_FIXES: dict[str, Any] = {key: value for fix in FIXES.values() for key, value in fix.items()}
# (said of the task's yml entry, not of Pendulum-v1's: the MuJoCo rows share this description)
ALL_FIXES_DESCRIPTION = (
    "every quirk fixed at once, alpha still from 0.01: the correct tanh term, bootstrapped time limits and SB3's "
    "temperature loss, on the task's `tutorial_sac.yml` entry (its networks, batch and rewards: on Pendulum-v1 the "
    "tutorial's compute)"
)

# Ablation on Pendulum-v1: each tutorial rule that has a switch, switched alone to SB3's choice (one row each), then
# all_fixes and all_fixes less each of its fixes (leave-one-out)
ABLATION: tuple[Variant, ...] = (
    Variant(
        "tutorial_sac",
        "tutorial_sac",
        {},
        "tutorial_sac as the zoo's tutorial_sac.yml has it for the task (Pendulum-v1: the tutorial, every quirk, all "
        "TutorialSAC defaults)",
    ),
    Variant(
        "correct_entropy",
        "tutorial_sac",
        FIXES["correct_entropy"],
        "correct tanh term `log(1 - tanh(u)^2)` instead of tanh applied twice (`entropy_term='correct'`)",
    ),
    Variant(
        "bootstrap_timeouts",
        "tutorial_sac",
        FIXES["bootstrap_timeouts"],
        "the 200-step time limit bootstraps instead of being a terminal (`handle_timeout_termination=True`)",
    ),
    Variant(
        "sb3_alpha_loss",
        "tutorial_sac",
        FIXES["sb3_alpha_loss"],
        "SB3's temperature loss `-mean(log_alpha * (log_prob + target))` (`ent_coef_loss='sb3'`)",
    ),
    Variant("sb3_initial_alpha", "tutorial_sac", {"ent_coef": "auto"}, "SB3's initial alpha 1.0 (`ent_coef='auto'`)"),
    Variant(
        "raw_rewards",
        "tutorial_sac",
        {"reward_shift": 0.0, "reward_scale": 1.0},
        "SB3's reward handling: raw rewards instead of the entry's normalisation (Pendulum-v1: the tutorial's "
        "`(r + 8) / 8`) (`reward_shift=0, reward_scale=1`)",
    ),
    Variant(
        "with_replacement",
        "tutorial_sac",
        {"sample_with_replacement": True},
        "SB3's minibatch draw, with replacement, instead of `random.sample`'s distinct transitions "
        "(`sample_with_replacement=True`)",
    ),
    Variant(
        "sb3_critic_lr",
        "tutorial_sac",
        {"critic_learning_rate": 3e-4},
        "SB3's critic learning rate, `learning_rate` (3e-4), instead of the entry's own (Pendulum-v1: the tutorial's "
        "3e-3) (`critic_learning_rate=3e-4`)",
    ),
    Variant(
        "sb3_warmup",
        "tutorial_sac",
        {"learning_starts": 100},
        "SB3's 100 uniform random warm-up steps before the policy acts (`learning_starts=100`)",
    ),
    Variant(
        "sb3_schedule",
        "tutorial_sac",
        {"train_freq": 1, "gradient_steps": 1},
        "SB3's schedule, one gradient step after every env step, instead of a whole episode then as many gradient "
        "steps (`train_freq=1, gradient_steps=1`; the same number of gradient steps)",
    ),
    Variant("sb3_batch", "tutorial_sac", {"batch_size": 256}, "SB3's minibatch of 256 instead of 64 (`batch_size=256`)"),
    Variant(
        "sb3_nets",
        "tutorial_sac",
        {"policy_kwargs": "dict(net_arch=[256, 256])"},
        "SB3's [256, 256] actor trunk and critics instead of [128] and [128, 128] (`net_arch=[256, 256]`; the "
        "Softplus std head stays)",
    ),
    Variant("all_fixes", "tutorial_sac", dict(ALL_FIXES), ALL_FIXES_DESCRIPTION),
    *(
        Variant(
            f"all_fixes_but_{name}",
            "tutorial_sac",
            {key: value for key, value in ALL_FIXES.items() if key not in fix},
            f"all_fixes less `{name}` (leave-one-out: that rule as the tutorial has it)",
        )
        for name, fix in FIXES.items()
    ),
)


def _ablation_row(label: str) -> Variant:
    return next(variant for variant in ABLATION if variant.label == label)


# Ablation on a task whose yml entry already makes some of SB3's choices (MuJoCo v5: the correct tanh term,
# bootstrapped time limits, SB3-sized networks, batch 256, a warm-up, its own reward scale): the yml entry, each fix it
# makes switched back to the tutorial's rule, and each tutorial rule it keeps switched alone to SB3's choice
YML_ABLATION: tuple[Variant, ...] = (
    ABLATION[0],
    Variant(
        "tutorial_entropy",
        "tutorial_sac",
        {"entropy_term": "tutorial"},
        "the tutorial's tanh term, tanh applied twice, instead of the yml's correct `log(1 - tanh(u)^2)` "
        "(`entropy_term='tutorial'`)",
    ),
    Variant(
        "timeouts_as_terminals",
        "tutorial_sac",
        {"handle_timeout_termination": False},
        "the tutorial's rule: the time limit is a terminal, not bootstrapped as in the yml "
        "(`handle_timeout_termination=False`)",
    ),
    *(
        _ablation_row(label)
        for label in ("sb3_alpha_loss", "sb3_initial_alpha", "raw_rewards", "sb3_critic_lr", "with_replacement")
    ),
    _ablation_row("sb3_schedule"),
)
# The ablations --ablation names: Pendulum-v1's (the default) and the one around a task's yml entry
ABLATIONS: dict[str, tuple[Variant, ...]] = {"pendulum": ABLATION, "yml": YML_ABLATION}

# SAC at the tutorial's compute: its networks ([128] actor trunk, twin [128, 128] critics) and batch 64, one gradient
# step per env step as the tutorial's (200 per 200-step episode); every other setting from the zoo's sac.yml entry
COMPUTE_MATCHED = Variant(
    "sac_tutorial_nets",
    "sac",
    {"policy_kwargs": "dict(net_arch=dict(pi=[128], qf=[128, 128]))", "batch_size": 64},
    "SB3's SAC at the tutorial's compute: its networks (`net_arch=dict(pi=[128], qf=[128, 128])`) and batch 64, "
    "the rest of the zoo's `sac.yml` entry",
)
# TutorialSAC's reward scale, swept around the Pendulum-v1 default 1/8 (the shift stays 8): the tutorial's scale
# was set by a rule of thumb, never tuned; these rows measure how much that matters
REWARD_SCALES: tuple[Variant, ...] = tuple(
    Variant(f"reward_scale_{scale:g}", "tutorial_sac", {"reward_scale": scale}, f"tutorial_sac with `reward_scale={scale:g}`")
    for scale in (1 / 4, 1 / 16)
)
# The tutorial's own settings on a task whose yml entry changes them (LunarLanderContinuous-v3, MuJoCo): TutorialSAC's
# constructor defaults, with only the reward shift removed (the tutorial's +8 is Pendulum-v1's, and on a task whose
# episodes end early a shift is a bonus or a cost per step alive); the scale stays the tutorial's 1/8
TUTORIAL_DEFAULTS = Variant(
    "tutorial_defaults",
    "tutorial_sac",
    {"reward_shift": 0.0, "reward_scale": 0.125},
    "TutorialSAC's defaults (the tutorial's networks, batch 64, no warm-up, every quirk), not the yml entry; only "
    "the reward shift removed (`reward_shift=0`, scale the tutorial's 1/8)",
    defaults=True,
)
ALL_FIXES_DEFAULTS = Variant(
    "all_fixes_defaults",
    "tutorial_sac",
    {**TUTORIAL_DEFAULTS.overrides, **ALL_FIXES},
    "`tutorial_defaults` with every quirk fixed (the correct tanh term, bootstrapped time limits, SB3's temperature "
    "loss): the tutorial's compute",
    defaults=True,
)
# Every named row `--variants` can add to a comparison (beside the plain algorithms of `--algos`)
VARIANTS: dict[str, Variant] = {
    variant.label: variant
    for variant in (*ABLATION[1:], *YML_ABLATION[1:3], COMPUTE_MATCHED, *REWARD_SCALES, TUTORIAL_DEFAULTS, ALL_FIXES_DEFAULTS)
}
# Why the ablation has no "one critic optimiser" row (written into the report)
ABLATION_NOTE = (
    "No row for SB3's single critic optimiser: TutorialSAC already steps both critics with one Adam holding one "
    "parameter group per critic, which is the tutorial's two Adams exactly. SB3's form (one group over both "
    "critics on `0.5 * (mse_1 + mse_2)`) differs from it only by the factor 0.5 on the loss and by both critics "
    "sharing one learning rate (here both use 3e-3 anyway). Adam's per-parameter update divides the gradient by "
    "its running RMS, so a constant factor on the loss changes the step only through `eps` (1e-8): the two are "
    "the same algorithm up to that, and the variant cannot be expressed without changing the algorithm file, so "
    "it is left out. The order of the temperature step has no switch either: it is in the `sac` row of the "
    "comparison, with SB3's other choices."
)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; picklable, so it travels to worker processes and Ray tasks.

    :param variant: algorithm and hyperparameter overrides
    :param env: Gymnasium environment id
    :param seed: random seed (of the algorithm, the training env and the evaluation env, as rl-zoo3 does)
    :param budget: env steps to train; 0 takes the zoo's ``n_timesteps``
    :param eval_freq: evaluate every this many env steps
    :param eval_episodes: episodes per evaluation and policy mode
    :param log_folder: the comparison's log folder (experiment folders live inside)
    :param threads: torch CPU threads
    :param device: torch device
    :param schedule: how the zoo's ``lin_`` schedules meet a budget below its ``n_timesteps``: ``"budget"``
        scales them to the budget (they reach 0 at its end), ``"zoo"`` runs them over the zoo's ``n_timesteps``
        and stops at the budget (the zoo's run, cut short)
    :param engine: ``TutorialSAC(engine=...)`` of the TutorialSAC rows (``ENGINE_ALGOS``; other algorithms have no
        engine): ``"auto"`` (the default: bit for bit the tutorial's update) or a named engine, e.g. ``"compiled"``
        (the same algorithm, rounded differently: faster at SB3's network sizes)
    """

    variant: Variant
    env: str
    seed: int
    budget: int
    eval_freq: int
    eval_episodes: int
    log_folder: str
    threads: int = 1
    device: str = "cpu"
    schedule: str = "budget"
    engine: str = "auto"

    @property
    def key(self) -> str:
        return f"{self.variant.label} {self.env} seed {self.seed}"

    def run_dir(self, log_folder: pathlib.Path | None = None) -> pathlib.Path:
        """``<exp_folder>/<algo>/<env>_<seed>``: rl-zoo3's layout, the seed as run id."""
        root = self.variant.exp_folder(pathlib.Path(log_folder if log_folder is not None else self.log_folder))
        return root / self.variant.algo / f"{self.env}_{self.seed}"

    def protocol(self) -> dict[str, Any]:
        """What must match for a finished run to be reused (a setting at its default is left out, so records
        written before it existed still match)."""
        protocol: dict[str, Any] = {
            "algo": self.variant.algo,
            "overrides": self.variant.overrides,
            "env": self.env,
            "seed": self.seed,
            "budget": self.budget,
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
        }
        if self.variant.defaults:
            protocol["defaults"] = True
        if self.schedule != "budget":
            protocol["schedule"] = self.schedule
        if self.uses_engine:
            protocol["engine"] = self.engine
        return protocol

    @property
    def uses_engine(self) -> bool:
        """Whether the run trains with an engine other than the default (a TutorialSAC row, ``engine`` not auto)."""
        return self.engine != "auto" and self.variant.algo in ENGINE_ALGOS


def make_specs(
    variants: Sequence[Variant],
    envs: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    eval_freq: int,
    eval_episodes: int,
    log_folder: pathlib.Path,
    threads: int = 1,
    device: str = "cpu",
    schedule: str = "budget",
    engine: str = "auto",
) -> list[RunSpec]:
    """The grid of runs: every environment x variant x seed.

    :raises ValueError: an engine ``TutorialSAC(engine=...)`` does not accept, or an unknown schedule
    """
    from sb3_tutorial_sac.engines import engine_names

    if engine not in engine_names():
        raise ValueError(f"engine={engine!r}: TutorialSAC's engine is one of {', '.join(map(repr, engine_names()))}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: the schedule is one of {', '.join(map(repr, SCHEDULES))}")
    # Seed-major order: a grid stopped half-way has the same number of seeds of every algorithm
    return [
        RunSpec(variant, env, seed, budget, eval_freq, eval_episodes, str(log_folder), threads, device, schedule, engine)
        for env in envs
        for seed in seeds
        for variant in variants
    ]
