"""One run: rl-zoo3's ``ExperimentManager`` with an evaluation callback that records both policy modes and the
training seconds (wall clock and process CPU) at each evaluation point and stops training at exactly the budget,
written in the zoo's layout; and the record that marks it finished.

Protocol of a run (the same for every algorithm):

* training stops at the env step that reaches the budget, for every algorithm: TutorialSAC collects whole
  episodes before it trains (the tutorial's schedule), so without the stop its last episode would carry it past
  the budget on tasks whose episodes vary in length. The gradient steps due after that last env step are not
  taken; no evaluation sees them (an evaluation at env step t runs before the gradient steps of step t, for SAC's
  one step as for TutorialSAC's episode), so every algorithm is evaluated at the same env steps;
* a budget that overrides the zoo's ``n_timesteps`` scales the zoo's ``lin_<x>`` schedules to the budget: SB3
  computes a schedule from the progress ``1 - num_timesteps / total_timesteps``, and rl-zoo3 calls
  ``learn(budget)``, so ``lin_7.3e-4`` decays from 7.3e-4 to 0 over the budget (as ``rl_zoo3.train -n`` does).
  The run's ``config.yml`` records what was used: ``n_timesteps`` = the budget, ``n_timesteps_zoo`` = the zoo's,
  and ``schedules`` = how each schedule ran;
* seconds at each evaluation point, evaluations excluded: ``train_seconds`` (wall clock, ``time.perf_counter``)
  and ``train_cpu_seconds`` (this process's CPU time, ``time.process_time``; one torch thread per run, so it does
  not count time the process spent waiting for a core on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pathlib
import shutil
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_tutorial_sac.compare.record_provenance import run_provenance
from sb3_tutorial_sac.compare.specs import FINISHED, MODES, RUN_FILE, RunSpec
from sb3_tutorial_sac.guard import NonFiniteError
from sb3_tutorial_sac.zoo import hyperparams_path, register

# A run's record: its protocol, status ("ok", "diverged", "failed", "missing"), error and timings (JSON,
# compare_run.json)
Record = dict[str, Any]
# A progress event: {"key": RunSpec.key, "event": "start" | "steps", "steps": env steps, "total": env steps}
Event = dict[str, Any]
Reporter = Callable[[Event], None]


class DualEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` with both policy modes: ``results`` (deterministic, rl-zoo3's key) and
    ``results_stochastic`` in ``evaluations.npz``; also times itself so that training time excludes it, and
    saves the training seconds at each evaluation point (``train_seconds``: wall clock; ``train_cpu_seconds``:
    process CPU time). Stops training at the env step that reaches ``budget`` (every algorithm evaluated at the
    same env steps).

    :param eval_env: the evaluation env (rl-zoo3's, seeded like the training env)
    :param spec: the run (evaluation episodes and frequency)
    :param run_dir: where ``evaluations.npz`` goes
    :param n_envs: training envs (the frequency counts calls, one per step of all of them, as rl-zoo3)
    :param budget: env steps after which training stops (0: never stop it here)
    """

    def __init__(self, eval_env: VecEnv, spec: RunSpec, run_dir: pathlib.Path, n_envs: int, budget: int = 0) -> None:
        super().__init__(
            eval_env,
            n_eval_episodes=spec.eval_episodes,
            eval_freq=max(spec.eval_freq // n_envs, 1),  # per env step of each of n_envs, as rl-zoo3
            log_path=str(run_dir),
            deterministic=True,
            verbose=0,
        )
        self.stochastic_results: list[list[float]] = []
        self.stochastic_lengths: list[list[int]] = []
        self.budget = budget
        self.eval_seconds = 0.0
        self.eval_cpu_seconds = 0.0
        # training seconds (evaluations excluded) at each evaluation point, for curves against compute
        self.train_seconds: list[float] = []
        self.train_cpu_seconds: list[float] = []
        self._train_start = time.perf_counter()
        self._train_cpu_start = time.process_time()

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self._train_start = time.perf_counter()
        self._train_cpu_start = time.process_time()

    def _evaluate(self) -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        self.train_seconds.append(start - self._train_start - self.eval_seconds)
        self.train_cpu_seconds.append(cpu_start - self._train_cpu_start - self.eval_cpu_seconds)
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        runs: dict[str, tuple[list[float], list[int]]] = {}
        for mode in MODES:
            returns, lengths = evaluate_policy(
                self.model,
                self.eval_env,
                n_eval_episodes=self.n_eval_episodes,
                deterministic=mode == "deterministic",
                return_episode_rewards=True,
                warn=False,
            )
            assert isinstance(returns, list) and isinstance(lengths, list)  # return_episode_rewards=True
            runs[mode] = returns, lengths
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(runs["deterministic"][0])
        self.evaluations_length.append(runs["deterministic"][1])
        self.stochastic_results.append(runs["stochastic"][0])
        self.stochastic_lengths.append(runs["stochastic"][1])
        assert self.log_path is not None
        np.savez(
            self.log_path,
            timesteps=self.evaluations_timesteps,
            results=self.evaluations_results,
            ep_lengths=self.evaluations_length,
            results_stochastic=self.stochastic_results,
            ep_lengths_stochastic=self.stochastic_lengths,
            train_seconds=self.train_seconds,
            train_cpu_seconds=self.train_cpu_seconds,
        )
        for mode in MODES:
            self.logger.record(f"eval/mean_reward_{mode}", float(np.mean(runs[mode][0])))
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        self.eval_seconds += time.perf_counter() - start
        self.eval_cpu_seconds += time.process_time() - cpu_start

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self._evaluate()
        # Stop at the budget: TutorialSAC's whole-episode collection would otherwise run past it (a learn() call
        # only checks the budget between rollouts); the same rule for every algorithm
        return not (self.budget > 0 and self.num_timesteps >= self.budget)

    def _on_training_end(self) -> None:
        # The last evaluation point is the end of training, whatever the budget's remainder
        if not self.evaluations_timesteps or self.evaluations_timesteps[-1] != self.num_timesteps:
            self._evaluate()


class ProgressReport(BaseCallback):
    """Sends ``{"key", "event": "steps", "steps"}`` to the progress display every ``every_seconds``."""

    def __init__(self, report: Reporter | None, key: str, every_seconds: float = 0.5) -> None:
        super().__init__()
        self.report = report
        self.key = key
        self.every_seconds = every_seconds
        self._last = 0.0

    def _on_step(self) -> bool:
        now = time.monotonic()
        if self.report is not None and now - self._last >= self.every_seconds:
            self._last = now
            self.report({"key": self.key, "event": "steps", "steps": self.num_timesteps})
        return True


def train_one(spec: RunSpec, report: Reporter | None = None) -> Record:
    """Train and evaluate one run with rl-zoo3's ``ExperimentManager``; write it to ``spec.run_dir()``.

    Never raises for a failing run: the error and its traceback are returned (and written to ``error.txt``). A run
    whose training TutorialSAC's guard stopped (:class:`~sb3_tutorial_sac.NonFiniteError`) is ``diverged``: recorded
    like a finished run, with the env step it reached and its evaluations up to there.

    :param spec: the run
    :param report: called with progress events (``{"key", "event", "steps"}``)
    :return: the run's record (also written to ``compare_run.json`` when it finished)
    """
    run_dir = spec.run_dir()
    if run_dir.exists():  # a partial or failed earlier attempt: start again from scratch
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    record: Record = {"protocol": spec.protocol(), "label": spec.variant.label, "status": "failed"}
    start = time.perf_counter()
    log = io.StringIO()
    try:
        # The zoo prints its hyperparameters and paths: keep that in the run folder, not on the progress display
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            record.update(_train_with_zoo(spec, run_dir, report))
    except Exception as error:  # a failing run is reported, the others go on
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
        (run_dir / "error.txt").write_text(record["traceback"])
    record["wall_seconds"] = time.perf_counter() - start
    (run_dir / "stdout.log").write_text(log.getvalue())
    if record["status"] in FINISHED:
        (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2, default=str))
    return record


def _train_with_zoo(spec: RunSpec, run_dir: pathlib.Path, report: Reporter | None) -> Record:
    th.set_num_threads(spec.threads)
    register()  # tutorial_sac into rl-zoo3's ALGOS
    config, hyperparams_source = _zoo_config(spec, run_dir)
    args = argparse.Namespace(**{k: v for k, v in spec.protocol().items() if k != "overrides"}, label=spec.variant.label)
    # schedule "zoo": the zoo's n_timesteps (its lin_ schedules run over them), training stopped at the budget below
    n_timesteps = 0 if spec.schedule == "zoo" else spec.budget
    manager = ExperimentManager(
        args,
        spec.variant.algo,
        spec.env,
        str(spec.variant.exp_folder(pathlib.Path(spec.log_folder))),
        n_timesteps=n_timesteps,
        eval_freq=0,  # the zoo's own EvalCallback is replaced by the dual one below
        hyperparams=_hyperparams(spec),
        seed=spec.seed,
        log_interval=-1,  # the algorithm's default logging interval (rl-zoo3's command-line default)
        verbose=0,
        device=spec.device,
        config=str(config),  # the zoo's <algo>.yml; the project's tutorial_sac.yml
    )
    # rl-zoo3 numbers runs 1, 2, ...; here the run id is the seed, so that finished runs can be found again
    manager.save_path = str(run_dir)
    manager.params_path = str(run_dir / spec.env)
    setup = manager.setup_experiment()
    assert setup is not None
    model, saved_hyperparams = setup
    budget = spec.budget or manager.n_timesteps
    schedules = record_config(run_dir / spec.env / "config.yml", saved_hyperparams, manager.n_timesteps, budget)
    eval_env = manager.create_envs(1, eval_env=True)
    eval_callback = DualEvalCallback(eval_env, spec, run_dir, manager.n_envs, budget=budget)
    manager.callbacks += [eval_callback, ProgressReport(report, spec.key)]
    if report is not None:
        report({"key": spec.key, "event": "start", "steps": 0, "total": manager.n_timesteps})
    start, cpu_start = time.perf_counter(), time.process_time()
    outcome: Record = {"status": "ok"}
    try:
        manager.learn(model)
    except NonFiniteError as error:  # the algorithm diverged (a NaN or an infinity): its outcome, not the harness's
        outcome = {"status": "diverged", "error": f"NonFiniteError: {error}", "diverged_at": int(model.num_timesteps)}
    learn_seconds, learn_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if outcome["status"] == "ok" and model.num_timesteps < budget:  # rl-zoo3's learn() swallows KeyboardInterrupt
        raise RuntimeError(f"training stopped at {model.num_timesteps} of {budget} env steps (interrupted)")
    if outcome["status"] == "ok":
        manager.save_trained_model(model)
    train_seconds = learn_seconds - eval_callback.eval_seconds
    return {
        **outcome,
        "hyperparams": hyperparams_source,
        "schedules": schedules,
        "stop_at_budget": True,
        "env_steps": int(model.num_timesteps),
        "train_seconds": train_seconds,
        "train_cpu_seconds": learn_cpu_seconds - eval_callback.eval_cpu_seconds,
        "eval_seconds": eval_callback.eval_seconds,
        "steps_per_second": model.num_timesteps / train_seconds,
        "provenance": run_provenance(model, spec.threads),
    }


def _hyperparams(spec: RunSpec) -> dict[str, Any]:
    """The row's overrides of the zoo entry, and the grid's engine where the row trains TutorialSAC with one."""
    hyperparams = dict(spec.variant.overrides)
    if spec.uses_engine:  # a constructor argument of TutorialSAC: rl-zoo3 passes it on, config.yml records it
        hyperparams["engine"] = spec.engine
    return hyperparams


def record_config(
    path: pathlib.Path, saved_hyperparams: dict[str, Any], n_timesteps: int, budget: int | None = None
) -> dict[str, str]:
    """Rewrite the run's ``config.yml`` (rl-zoo3 writes the zoo entry as read) with what the run used.

    ``n_timesteps`` becomes the budget trained (the zoo's value, when it differs, goes to ``n_timesteps_zoo``);
    each schedule (``lin_<x>`` string of the entry) is described under ``schedules``: rl-zoo3 turns it into a
    function of the progress ``1 - num_timesteps / n_timesteps`` and calls ``learn(n_timesteps)``, so it runs from
    ``<x>`` to 0 over ``n_timesteps``: scaled to the budget when that is the budget, else (schedule ``"zoo"``) the
    zoo's schedule stopped at the budget.

    :param path: the run's ``config.yml``
    :param saved_hyperparams: the entry as rl-zoo3 saved it (``setup_experiment``'s second value)
    :param n_timesteps: the env steps ``learn`` was called with
    :param budget: the env steps the run trains (default: ``n_timesteps``)
    :return: the description of each schedule, by hyperparameter (empty when there is none)
    """
    budget = n_timesteps if budget is None else budget
    config = dict(saved_hyperparams)
    zoo_steps = config.get("n_timesteps")

    def describe(value: str) -> str:
        start = float(value.split("_", 1)[1])
        if budget == n_timesteps:
            return f"{value}: linear from {value.split('_', 1)[1]} to 0 over {n_timesteps} env steps (scaled to the budget)"
        end = start * (1 - budget / n_timesteps)
        return (
            f"{value}: linear from {value.split('_', 1)[1]} to 0 over the zoo's {n_timesteps} env steps, stopped at "
            f"{budget} (at {end:.3g} there)"
        )

    schedules = {key: describe(value) for key, value in config.items() if isinstance(value, str) and value.startswith("lin_")}
    if zoo_steps is not None and int(float(zoo_steps)) != budget:
        config["n_timesteps_zoo"] = int(float(zoo_steps))
    config["n_timesteps"] = budget
    if schedules:
        config["schedules"] = schedules
    # rl-zoo3's own format (a sorted OrderedDict), so that its scripts read the file as before
    path.write_text(yaml.dump(OrderedDict((key, config[key]) for key in sorted(config))))
    return schedules


def _zoo_config(spec: RunSpec, run_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The hyperparameters file of a run, and where its entry comes from.

    rl-zoo3 has no entry for some algorithm and task pairs (SAC on the MuJoCo v5 tasks, e.g. InvertedPendulum-v5):
    such a run uses the algorithm's own defaults (SB3's SAC defaults), written to ``<run_dir>/<algo>.yml``.
    """
    config = hyperparams_path(spec.variant.algo)
    entries = yaml.safe_load(config.read_text()) or {}
    if not spec.variant.defaults and (spec.env in entries or "default" in entries):
        return config, f"rl-zoo3 {config.name}"
    if spec.budget <= 0:
        raise ValueError(
            f"{config} has no {spec.env} entry (and so no n_timesteps), or the row asks for the defaults: give a budget"
        )
    fallback = run_dir / config.name
    fallback.write_text(yaml.safe_dump({spec.env: {"policy": "MlpPolicy", "n_timesteps": spec.budget}}))
    if spec.variant.defaults:
        return fallback, f"{spec.variant.algo} defaults (the row asks for them, not the {config.name} entry)"
    return fallback, f"{spec.variant.algo} defaults (no {spec.env} entry in rl-zoo3's {config.name})"


def load_record(spec: RunSpec) -> Record | None:
    """The record of a finished run with the same protocol, None when there is none.

    :raises ValueError: a finished run with a different protocol is in the way (never overwritten silently)
    """
    path = spec.run_dir() / RUN_FILE
    if not path.is_file():
        return None
    record: Record = json.loads(path.read_text())
    if record.get("status") not in FINISHED:
        return None
    if record["protocol"] != json.loads(json.dumps(spec.protocol())):
        raise ValueError(
            f"{spec.run_dir()} holds a finished run with another protocol ({record['protocol']}); "
            "use another --log-folder or delete it"
        )
    return record
