"""Side-by-side comparison of TutorialSAC with SB3's SAC (and any rl-zoo3 algorithm): many seeds, one protocol.

``sb3-tutorial-sac compare`` (also ``python -m sb3_tutorial_sac.compare``) trains every algorithm on every
environment for every seed with its own rl-zoo3 hyperparameters (``sac`` from the zoo's ``sac.yml``,
``tutorial_sac`` from the project's ``hyperparams/tutorial_sac.yml``), all under one evaluation protocol:
every ``eval_freq`` env steps, ``eval_episodes`` episodes with the deterministic policy (SB3's way) and as
many with the stochastic policy (the tutorial's way), raw returns (``Monitor``). Runs are written in rl-zoo3's
layout, ``<log_folder>/<algo>/<env>_<seed>/`` with ``evaluations.npz`` (``results`` = deterministic, as the
zoo's ``EvalCallback``; ``results_stochastic`` beside it), ``0.monitor.csv``, ``config.yml`` and the model,
so rl-zoo3's own plotting scripts read them too. Then a report is written next to the runs and printed:

* ``<name>_evaluations.csv``: one row per run, evaluation point and policy mode;
* ``<name>_runs.csv``: one row per run (status, error, wall-clock and training seconds, env steps per second);
* ``<name>_<env>.png``: learning curves, mean and 95% bootstrap confidence band per algorithm;
* ``<name>.md``: one table per environment (final return mean +/- std and IQM with 95% CI, deterministic and
  stochastic; median env steps to reach a threshold; seconds per run; env steps per second; the probability
  that the reference algorithm improves on each other one).

Runs go in parallel on this machine (``--jobs``) or on a Ray cluster (``--backend ray --address ...``), with a
live progress display. Finished runs are found and skipped (resume by running the same command again); a run
that raises is reported with its error and the others go on. ``--ablation`` trains TutorialSAC with each
tutorial quirk switched to SB3's choice, one at a time.

The statistics follow rliable's definitions (Agarwal et al., 2021; rliable itself does not import with this
project's pandas/arch versions), written with numpy/scipy: IQM = ``scipy.stats.trim_mean(x, 0.25)``,
probability of improvement ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs (the Mann-Whitney U statistic
divided by ``n * m``), 95% percentile-bootstrap confidence intervals over runs (``scipy.stats.bootstrap``,
each algorithm's runs resampled independently, fixed seed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sb3_tutorial_sac.cli import COMMANDS

# Threshold on the mean evaluation return used for "env steps to reach" (otherwise the env's reward_threshold)
DEFAULT_THRESHOLDS: dict[str, float] = {"Pendulum-v1": -200.0}
# Reference algorithm of the "probability of improvement" column
REFERENCE = "tutorial_sac"
MODES = ("deterministic", "stochastic")
# Name of the file that marks a finished run (and holds its protocol and timings)
RUN_FILE = "compare_run.json"
BOOTSTRAP_REPS = 5000
BOOTSTRAP_SEED = 0


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a comparison: an rl-zoo3 algorithm with its zoo hyperparameters, optionally overridden.

    :param label: name in the tables and plots (the algorithm key when there are no overrides)
    :param algo: rl-zoo3 algorithm key (``tutorial_sac``, ``sac``, ``tqc``, ``td3``, ...)
    :param overrides: hyperparameters replacing the zoo's (passed to the algorithm's constructor)
    :param description: one line for the report
    """

    label: str
    algo: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""

    def exp_folder(self, log_folder: pathlib.Path) -> pathlib.Path:
        """The rl-zoo3 experiment folder of this variant: the log folder itself, or ``<log_folder>/<label>``
        for a variant with overrides (so that its runs never mix with the plain algorithm's)."""
        return log_folder if not self.overrides else log_folder / self.label


# Ablation on Pendulum-v1: each tutorial quirk switched to SB3's choice, one at a time (TutorialSAC's switches)
ABLATION: tuple[Variant, ...] = (
    Variant("tutorial_sac", "tutorial_sac", {}, "the tutorial, every quirk (all TutorialSAC defaults)"),
    Variant(
        "correct_entropy",
        "tutorial_sac",
        {"entropy_term": "correct"},
        "correct tanh term `log(1 - tanh(u)^2)` instead of tanh applied twice (`entropy_term='correct'`)",
    ),
    Variant(
        "bootstrap_timeouts",
        "tutorial_sac",
        {"handle_timeout_termination": True},
        "the 200-step time limit bootstraps instead of being a terminal (`handle_timeout_termination=True`)",
    ),
    Variant(
        "sb3_alpha_loss",
        "tutorial_sac",
        {"ent_coef_loss": "sb3"},
        "SB3's temperature loss `-mean(log_alpha * (log_prob + target))` (`ent_coef_loss='sb3'`)",
    ),
    Variant("sb3_initial_alpha", "tutorial_sac", {"ent_coef": "auto"}, "SB3's initial alpha 1.0 (`ent_coef='auto'`)"),
    Variant(
        "raw_rewards",
        "tutorial_sac",
        {"reward_shift": 0.0, "reward_scale": 1.0},
        "SB3's reward handling: raw rewards, no `(r + 8) / 8` (`reward_shift=0, reward_scale=1`)",
    ),
    Variant(
        "all_fixes",
        "tutorial_sac",
        {"entropy_term": "correct", "handle_timeout_termination": True, "ent_coef_loss": "sb3"},
        "every quirk fixed at once, alpha still from 0.01: the correct tanh term, bootstrapped time limits and SB3's "
        "temperature loss (the tutorial's networks, batch and rewards: its compute)",
    ),
)
# Why the ablation has no "one critic optimiser" row (written into the report)
ABLATION_NOTE = (
    "No row for SB3's single critic optimiser: TutorialSAC already steps both critics with one Adam holding one "
    "parameter group per critic, which is the tutorial's two Adams exactly. SB3's form (one group over both "
    "critics on `0.5 * (mse_1 + mse_2)`) differs from it only by the factor 0.5 on the loss and by both critics "
    "sharing one learning rate (here both use 3e-3 anyway). Adam's per-parameter update divides the gradient by "
    "its running RMS, so a constant factor on the loss changes the step only through `eps` (1e-8): the two are "
    "the same algorithm up to that, and the variant cannot be expressed without changing the algorithm file, so "
    "it is left out. The other differences of SB3's SAC (networks, batch, warm-up, schedule, the order of the "
    "temperature step) are in the `sac` row of the comparison, not in single-switch rows."
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

    @property
    def key(self) -> str:
        return f"{self.variant.label} {self.env} seed {self.seed}"

    def run_dir(self, log_folder: pathlib.Path | None = None) -> pathlib.Path:
        """``<exp_folder>/<algo>/<env>_<seed>``: rl-zoo3's layout, the seed as run id."""
        root = self.variant.exp_folder(pathlib.Path(log_folder if log_folder is not None else self.log_folder))
        return root / self.variant.algo / f"{self.env}_{self.seed}"

    def protocol(self) -> dict[str, Any]:
        """What must match for a finished run to be reused."""
        return {
            "algo": self.variant.algo,
            "overrides": self.variant.overrides,
            "env": self.env,
            "seed": self.seed,
            "budget": self.budget,
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
        }


# ---------------------------------------------------------------------------------------------------------------
# rl-zoo3 glue
# ---------------------------------------------------------------------------------------------------------------


def _make_eval_callback(eval_env: Any, spec: RunSpec, run_dir: pathlib.Path, n_envs: int) -> Any:
    """An ``EvalCallback`` that records the deterministic and the stochastic policy at every evaluation."""
    import numpy as np
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    class DualEvalCallback(EvalCallback):
        """SB3's ``EvalCallback`` with both policy modes: ``results`` (deterministic, rl-zoo3's key) and
        ``results_stochastic`` in ``evaluations.npz``; also times itself so that training time excludes it."""

        def __init__(self) -> None:
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
            self.eval_seconds = 0.0
            # training seconds (evaluations excluded) at each evaluation point, for curves against compute
            self.train_seconds: list[float] = []
            self._train_start = time.perf_counter()

        def _on_training_start(self) -> None:
            super()._on_training_start()
            self._train_start = time.perf_counter()

        def _evaluate(self) -> None:
            start = time.perf_counter()
            self.train_seconds.append(start - self._train_start - self.eval_seconds)
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
            )
            for mode in MODES:
                self.logger.record(f"eval/mean_reward_{mode}", float(np.mean(runs[mode][0])))
            self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
            self.logger.dump(self.num_timesteps)
            self.eval_seconds += time.perf_counter() - start

        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
                self._evaluate()
            return True

        def _on_training_end(self) -> None:
            # The last evaluation point is the end of training, whatever the budget's remainder
            if not self.evaluations_timesteps or self.evaluations_timesteps[-1] != self.num_timesteps:
                self._evaluate()

    return DualEvalCallback()


def _make_progress_callback(report: Callable[[dict[str, Any]], None] | None, key: str, every_seconds: float = 0.5) -> Any:
    """A callback that sends ``{"key", "steps"}`` to the progress display every ``every_seconds``."""
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressReport(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self._last = 0.0

        def _on_step(self) -> bool:
            now = time.monotonic()
            if report is not None and now - self._last >= every_seconds:
                self._last = now
                report({"key": key, "event": "steps", "steps": self.num_timesteps})
            return True

    return ProgressReport()


def train_one(spec: RunSpec, report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and evaluate one run with rl-zoo3's ``ExperimentManager``; write it to ``spec.run_dir()``.

    Never raises for a failing run: the error and its traceback are returned (and written to ``error.txt``).

    :param spec: the run
    :param report: called with progress events (``{"key", "event", "steps"}``)
    :return: the run's record (also written to ``compare_run.json`` when it finished)
    """
    run_dir = spec.run_dir()
    if run_dir.exists():  # a partial or failed earlier attempt: start again from scratch
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    record: dict[str, Any] = {"protocol": spec.protocol(), "label": spec.variant.label, "status": "failed"}
    start = time.perf_counter()
    log = io.StringIO()
    try:
        # The zoo prints its hyperparameters and paths: keep that in the run folder, not on the progress display
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            record.update(_train_with_zoo(spec, run_dir, report))
        record["status"] = "ok"
    except Exception as error:  # a failing run is reported, the others go on
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
        (run_dir / "error.txt").write_text(record["traceback"])
    record["wall_seconds"] = time.perf_counter() - start
    (run_dir / "stdout.log").write_text(log.getvalue())
    if record["status"] == "ok":
        (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2, default=str))
    return record


def _train_with_zoo(spec: RunSpec, run_dir: pathlib.Path, report: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    import torch as th
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_tutorial_sac.zoo import register

    th.set_num_threads(spec.threads)
    register()  # tutorial_sac into rl-zoo3's ALGOS
    config, hyperparams_source = _zoo_config(spec, run_dir)
    args = argparse.Namespace(**{k: v for k, v in spec.protocol().items() if k != "overrides"}, label=spec.variant.label)
    manager = ExperimentManager(
        args,
        spec.variant.algo,
        spec.env,
        str(spec.variant.exp_folder(pathlib.Path(spec.log_folder))),
        n_timesteps=spec.budget,
        eval_freq=0,  # the zoo's own EvalCallback is replaced by the dual one below
        hyperparams=dict(spec.variant.overrides),
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
    model, _ = setup
    eval_callback = _make_eval_callback(manager.create_envs(1, eval_env=True), spec, run_dir, manager.n_envs)
    manager.callbacks += [eval_callback, _make_progress_callback(report, spec.key)]
    if report is not None:
        report({"key": spec.key, "event": "start", "steps": 0, "total": manager.n_timesteps})
    start = time.perf_counter()
    manager.learn(model)
    learn_seconds = time.perf_counter() - start
    if model.num_timesteps < manager.n_timesteps:  # rl-zoo3's learn() swallows KeyboardInterrupt: not a finished run
        raise RuntimeError(f"training stopped at {model.num_timesteps} of {manager.n_timesteps} env steps (interrupted)")
    manager.save_trained_model(model)
    train_seconds = learn_seconds - eval_callback.eval_seconds
    return {
        "hyperparams": hyperparams_source,
        "env_steps": int(model.num_timesteps),
        "train_seconds": train_seconds,
        "eval_seconds": eval_callback.eval_seconds,
        "steps_per_second": model.num_timesteps / train_seconds,
    }


def _zoo_config(spec: RunSpec, run_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The hyperparameters file of a run, and where its entry comes from.

    rl-zoo3 has no entry for some algorithm and task pairs (SAC on the MuJoCo v5 tasks, e.g. InvertedPendulum-v5):
    such a run uses the algorithm's own defaults (SB3's SAC defaults), written to ``<run_dir>/<algo>.yml``.
    """
    import yaml

    from sb3_tutorial_sac.zoo import hyperparams_path

    config = hyperparams_path(spec.variant.algo)
    entries = yaml.safe_load(config.read_text()) or {}
    if spec.env in entries or "default" in entries:
        return config, f"rl-zoo3 {config.name}"
    if spec.budget <= 0:
        raise ValueError(f"{config} has no {spec.env} entry (and so no n_timesteps): give a budget")
    fallback = run_dir / config.name
    fallback.write_text(yaml.safe_dump({spec.env: {"policy": "MlpPolicy", "n_timesteps": spec.budget}}))
    return fallback, f"{spec.variant.algo} defaults (no {spec.env} entry in rl-zoo3's {config.name})"


def load_record(spec: RunSpec) -> dict[str, Any] | None:
    """The record of a finished run with the same protocol, None when there is none.

    :raises ValueError: a finished run with a different protocol is in the way (never overwritten silently)
    """
    path = spec.run_dir() / RUN_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("status") != "ok":
        return None
    if record["protocol"] != json.loads(json.dumps(spec.protocol())):
        raise ValueError(
            f"{spec.run_dir()} holds a finished run with another protocol ({record['protocol']}); "
            "use another --log-folder or delete it"
        )
    return record


# ---------------------------------------------------------------------------------------------------------------
# Backends: local processes and Ray
# ---------------------------------------------------------------------------------------------------------------


def _worker_init(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


def _train_one_with_queue(spec: RunSpec, queue: Any) -> dict[str, Any]:
    return train_one(spec, queue.put if queue is not None else None)


def _drain(queue: Any, on_event: Callable[[dict[str, Any]], None]) -> None:
    import queue as queue_module

    while True:
        try:
            event = queue.get_nowait()
        except queue_module.Empty:
            return
        on_event(event)


def _run_local(
    specs: Sequence[RunSpec], jobs: int, on_event: Callable[[dict[str, Any]], None]
) -> Iterable[tuple[RunSpec, dict[str, Any]]]:
    """Each run in a worker process (spawned: a fresh interpreter, no torch state shared), ``jobs`` at a time."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        queue = manager.Queue()
        threads = specs[0].threads if specs else 1
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
            futures = {pool.submit(_train_one_with_queue, spec, queue): spec for spec in specs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(queue, on_event)
                for future in done:
                    spec = futures[future]
                    try:
                        record = future.result()
                    except Exception as error:  # the worker process itself died (e.g. killed for memory)
                        record = _crashed_record(spec, error)
                    yield spec, record


def _crashed_record(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    return {
        "protocol": spec.protocol(),
        "label": spec.variant.label,
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
    }


def _ray_train_one(spec: RunSpec, queue: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Ray task: train in a scratch folder on the worker node, return the record and the run folder's files."""
    _worker_init(spec.threads)
    with tempfile.TemporaryDirectory(prefix="sb3_tutorial_sac_compare_") as scratch:
        remote_spec = dataclasses.replace(spec, log_folder=scratch)
        record = train_one(remote_spec, queue.put if queue is not None else None)
        run_dir = remote_spec.run_dir()
        files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return record, files


def _run_ray(
    specs: Sequence[RunSpec], address: str | None, on_event: Callable[[dict[str, Any]], None]
) -> Iterable[tuple[RunSpec, dict[str, Any]]]:
    """Each run as a Ray task (one CPU); results come back to this machine into the same log folder."""
    import ray
    from ray.util.queue import Queue

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_train_one)
    queue = Queue()
    try:
        refs = {task.remote(spec, queue): spec for spec in specs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.25)
            _drain(queue, on_event)
            for ref in done:
                spec = refs[ref]
                try:
                    record, files = ray.get(ref)
                except Exception as error:  # the task could not run (node lost, worker killed, ...)
                    yield spec, _crashed_record(spec, error)
                    continue
                run_dir = spec.run_dir()
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                for name, content in files.items():
                    (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
                    (run_dir / name).write_bytes(content)
                yield spec, record
    finally:
        _drain(queue, on_event)
        ray.kill(queue.actor)  # type: ignore[arg-type]


class ProgressDisplay:
    """A live ``rich`` display: one bar per run (queued, running, done, skipped, failed)."""

    def __init__(self, specs: Sequence[RunSpec], enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        # Without a live display (a log file, --no-progress), one line per finished run
        self.lines = not (enabled and self.console.is_terminal)
        self.progress = Progress(
            TextColumn("{task.description:<40}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.tasks = {
            spec.key: self.progress.add_task(spec.key, total=spec.budget or None, status="queued", start=False)
            for spec in specs
        }

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def event(self, event: dict[str, Any]) -> None:
        task = self.tasks.get(event["key"])
        if task is None:
            return
        if event["event"] == "start":
            self.progress.start_task(task)
            self.progress.update(task, total=event.get("total"), status="running")
        self.progress.update(task, completed=event["steps"])

    def finished(self, spec: RunSpec, record: dict[str, Any], skipped: bool = False) -> None:
        task = self.tasks[spec.key]
        if record["status"] == "ok":
            steps = record.get("env_steps", 0)
            status = "[cyan]skipped (finished before)" if skipped else f"[green]done in {record.get('wall_seconds', 0):.0f} s"
            self.progress.update(task, total=steps, completed=steps, status=status)
        else:
            status = f"[red]failed: {record.get('error', '')[:60]}"
            self.progress.update(task, status=status)
            self.console.print(f"[red]{spec.key} failed[/red]: {record.get('error')}")
        self.progress.stop_task(task)
        if self.lines and record["status"] == "ok":
            self.console.print(f"{spec.key}: {status}", highlight=False)


def run_all(
    specs: Sequence[RunSpec],
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    progress: bool = True,
    report_only: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run every spec that has not finished before; return the record of each (finished, skipped or failed).

    :param specs: the runs
    :param backend: ``local`` (worker processes) or ``ray``
    :param jobs: parallel runs of the local backend
    :param address: address of an existing Ray cluster (None: the one ``ray.init`` finds or starts)
    :param progress: show the live display
    :param report_only: train nothing: runs that have not finished are recorded as ``missing``
    """
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        record = load_record(spec)
        if record is not None:
            records[spec.key] = {**record, "skipped": True}
        elif report_only:
            records[spec.key] = {"status": "missing", "error": "not run yet (resume with the same command)"}
        else:
            todo.append(spec)
    if report_only:
        return records
    with ProgressDisplay(specs, enabled=progress) as display:
        for spec in specs:
            if spec.key in records:
                display.finished(spec, records[spec.key], skipped=True)
        if todo:
            results = _run_ray(todo, address, display.event) if backend == "ray" else _run_local(todo, jobs, display.event)
            for spec, record in results:
                records[spec.key] = record
                display.finished(spec, record)
    return records


# ---------------------------------------------------------------------------------------------------------------
# Report: CSV, statistics, plots, markdown
# ---------------------------------------------------------------------------------------------------------------


def collect(specs: Sequence[RunSpec], records: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    """Read every run's ``evaluations.npz`` into two tables.

    :return: ``(evaluations, runs)``: one row per run, evaluation point and mode
        (``env, algorithm, seed, timesteps, mode, return_mean, return_std, episodes, returns``), and one row per
        run (``env, algorithm, algo, seed, status, error, env_steps, wall_seconds, train_seconds, eval_seconds,
        steps_per_second``)
    """
    import numpy as np
    import pandas as pd

    eval_rows, run_rows = [], []
    for spec in specs:
        record = records.get(spec.key, {"status": "missing"})
        run_rows.append(
            {
                "env": spec.env,
                "algorithm": spec.variant.label,
                "algo": spec.variant.algo,
                "seed": spec.seed,
                "status": record.get("status"),
                "error": record.get("error", ""),
                **{
                    k: record.get(k, np.nan)
                    for k in ("env_steps", "wall_seconds", "train_seconds", "eval_seconds", "steps_per_second")
                },
            }
        )
        npz = spec.run_dir() / "evaluations.npz"
        if record.get("status") != "ok" or not npz.is_file():
            continue
        with np.load(npz) as data:
            for mode, key in (("deterministic", "results"), ("stochastic", "results_stochastic")):
                for timesteps, returns in zip(data["timesteps"], data[key]):
                    eval_rows.append(
                        {
                            "env": spec.env,
                            "algorithm": spec.variant.label,
                            "seed": spec.seed,
                            "timesteps": int(timesteps),
                            "mode": mode,
                            "return_mean": float(np.mean(returns)),
                            "return_std": float(np.std(returns)),
                            "episodes": len(returns),
                            "returns": " ".join(repr(float(r)) for r in returns),
                        }
                    )
    columns = ["env", "algorithm", "seed", "timesteps", "mode", "return_mean", "return_std", "episodes", "returns"]
    return pd.DataFrame(eval_rows, columns=columns), pd.DataFrame(run_rows)


def iqm(scores: Any, axis: int | None = None) -> Any:
    """Interquartile mean (rliable's ``aggregate_iqm``): the mean of the middle 50% of the scores."""
    from scipy import stats

    return stats.trim_mean(scores, proportiontocut=0.25, axis=axis)


def probability_of_improvement(x: Any, y: Any, axis: int = -1) -> Any:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs (rliable's ``probability_of_improvement`` on one task)."""
    import numpy as np

    x, y = np.moveaxis(np.asarray(x, dtype=float), axis, -1), np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    greater = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    equal = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * equal


def bootstrap_ci(statistic: Callable[..., Any], *samples: Any, axis: int = 0) -> tuple[Any, Any]:
    """95% percentile-bootstrap interval of ``statistic`` (samples resampled independently; fixed seed).

    NaN where a sample has fewer than two values (no interval can be said from one run).
    """
    import numpy as np
    from scipy import stats

    arrays = [np.asarray(s, dtype=float) for s in samples]
    if min(a.shape[axis] for a in arrays) < 2:
        shape = np.shape(statistic(*arrays, axis=axis))
        return np.full(shape, np.nan), np.full(shape, np.nan)
    result = stats.bootstrap(
        arrays,
        statistic,
        n_resamples=BOOTSTRAP_REPS,
        confidence_level=0.95,
        method="percentile",
        paired=False,
        vectorized=True,
        axis=axis,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def _mean(x: Any, axis: int = 0) -> Any:
    import numpy as np

    return np.mean(x, axis=axis)


def steps_to_threshold(evaluations: Any, threshold: float) -> Any:
    """Per run and mode: the first evaluation step whose mean return reaches ``threshold`` (inf: never)."""
    import numpy as np

    reached = evaluations[evaluations["return_mean"] >= threshold]
    first = reached.groupby(["algorithm", "seed", "mode"])["timesteps"].min()
    runs = evaluations.groupby(["algorithm", "seed", "mode"])["timesteps"].min()
    return first.reindex(runs.index).fillna(np.inf).astype(float)


def summarise(evaluations: Any, runs: Any, threshold: float | None = None, reference: str = REFERENCE) -> list[dict[str, Any]]:
    """Statistics of one environment, one dict per algorithm (in order of first appearance in ``runs``).

    Final return of a run = the mean return of its last evaluation point; across runs: mean, std (ddof=0),
    IQM with its 95% bootstrap CI, for each mode. ``steps_to_threshold_<mode>``: median over runs of the first
    evaluation step reaching ``threshold`` (inf if more than half never do), with the count that did. Timing:
    mean over finished runs. ``p_improvement_<mode>``: P(reference > algorithm) with its CI.
    """
    import numpy as np

    final: dict[tuple[str, str], Any] = {}
    if len(evaluations):
        last = evaluations.loc[evaluations.groupby(["algorithm", "seed", "mode"])["timesteps"].idxmax()]
        for (algorithm, mode), group in last.groupby(["algorithm", "mode"]):
            final[(algorithm, mode)] = group.sort_values("seed")["return_mean"].to_numpy(dtype=float)
    to_threshold = steps_to_threshold(evaluations, threshold) if threshold is not None and len(evaluations) else None
    rows = []
    for algorithm in dict.fromkeys(runs["algorithm"]):
        algo_runs = runs[runs["algorithm"] == algorithm]
        ok = algo_runs[algo_runs["status"] == "ok"]
        row: dict[str, Any] = {
            "algorithm": algorithm,
            "runs": len(ok),
            "failed": int((algo_runs["status"] == "failed").sum()),
            "missing": int((algo_runs["status"] == "missing").sum()),
            "wall_seconds": float(ok["wall_seconds"].mean()) if len(ok) else np.nan,
            "train_seconds": float(ok["train_seconds"].mean()) if len(ok) else np.nan,
            "steps_per_second": float(ok["steps_per_second"].mean()) if len(ok) else np.nan,
        }
        for mode in MODES:
            scores = final.get((algorithm, mode), np.empty(0))
            row[f"n_{mode}"] = len(scores)
            row[f"mean_{mode}"] = float(np.mean(scores)) if len(scores) else np.nan
            row[f"std_{mode}"] = float(np.std(scores)) if len(scores) else np.nan
            row[f"iqm_{mode}"] = float(iqm(scores)) if len(scores) else np.nan
            low, high = bootstrap_ci(iqm, scores) if len(scores) else (np.nan, np.nan)
            row[f"iqm_{mode}_ci"] = (float(low), float(high))
            if to_threshold is not None and len(scores):
                steps = to_threshold.xs((algorithm, mode), level=("algorithm", "mode")).to_numpy()
                row[f"steps_to_threshold_{mode}"] = float(np.median(steps))
                row[f"reached_{mode}"] = int(np.isfinite(steps).sum())
            reference_scores = final.get((reference, mode), np.empty(0))
            if algorithm != reference and len(scores) and len(reference_scores):
                row[f"p_improvement_{mode}"] = float(probability_of_improvement(reference_scores, scores))
                low, high = bootstrap_ci(probability_of_improvement, reference_scores, scores, axis=-1)
                row[f"p_improvement_{mode}_ci"] = (float(low), float(high))
        rows.append(row)
    return rows


def _fmt(value: float, digits: int = 1) -> str:
    import math

    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _fmt_ci(ci: tuple[float, float] | None, digits: int = 1) -> str:
    if ci is None or any(v != v for v in ci):  # NaN: fewer than two runs
        return ""
    return f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def markdown_table(rows: list[dict[str, Any]], threshold: float | None, reference: str = REFERENCE) -> str:
    """The markdown table of one environment (from ``summarise``)."""
    header = ["algorithm", "runs"]
    for mode in MODES:
        header += [f"final return, {mode[:5]}. (mean +/- std)", f"IQM {mode[:5]}. [95% CI]"]
    header += [
        f"median steps to {_fmt(threshold, 0) if threshold is not None else 'threshold'} (det. / stoch.)",
        "s per run (train / total)",
        "env steps/s",
        f"P({reference} > row), det. [95% CI]",
        f"P({reference} > row), stoch. [95% CI]",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        not_ok = [f"{row[k]} {k}" for k in ("failed", "missing") if row.get(k)]
        cells = [row["algorithm"], f"{row['runs']}" + (f" ({', '.join(not_ok)})" if not_ok else "")]
        for mode in MODES:
            cells.append(f"{_fmt(row[f'mean_{mode}'])} +/- {_fmt(row[f'std_{mode}'])}")
            cells.append(f"{_fmt(row[f'iqm_{mode}'])}{_fmt_ci(row[f'iqm_{mode}_ci'])}")
        steps = []
        for mode in MODES:
            if f"steps_to_threshold_{mode}" not in row:
                steps.append("n/a")
                continue
            median = row[f"steps_to_threshold_{mode}"]
            reached = f"{row[f'reached_{mode}']}/{row[f'n_{mode}']}"
            steps.append(f"{median:.0f} ({reached})" if median != float("inf") else f"not reached ({reached})")
        cells.append(" / ".join(steps))
        cells.append(f"{_fmt(row['train_seconds'])} / {_fmt(row['wall_seconds'])}")
        cells.append(_fmt(row["steps_per_second"], 0))
        for mode in MODES:
            if f"p_improvement_{mode}" in row:
                cells.append(f"{row[f'p_improvement_{mode}']:.2f}{_fmt_ci(row[f'p_improvement_{mode}_ci'], 2)}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(evaluations: Any, env: str, path: pathlib.Path, threshold: float | None = None) -> None:
    """Learning curves of one environment: mean over runs and 95% bootstrap band, x = env steps; one panel per mode
    (and the threshold of "steps to reach" as a dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, mode in zip(axes, MODES):
        data = evaluations[evaluations["mode"] == mode]
        for algorithm in dict.fromkeys(data["algorithm"]):
            table = data[data["algorithm"] == algorithm].pivot_table(index="seed", columns="timesteps", values="return_mean")
            table = table.dropna(axis=1)  # evaluation points that every run has
            if table.empty:
                continue
            x, scores = table.columns.to_numpy(), table.to_numpy()
            low, high = bootstrap_ci(_mean, scores, axis=0)
            (line,) = ax.plot(x, scores.mean(axis=0), label=f"{algorithm} ({len(scores)} runs)")
            if np.isfinite(low).all():
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{env}: {mode} policy")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean evaluation return (raw)")
    axes[0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _threshold(env: str, thresholds: dict[str, float] | None) -> float | None:
    if thresholds and env in thresholds:
        return thresholds[env]
    if env in DEFAULT_THRESHOLDS:
        return DEFAULT_THRESHOLDS[env]
    import gymnasium as gym

    try:
        return gym.spec(env).reward_threshold
    except Exception:  # an env id that gymnasium does not know: no threshold
        return None


def write_report(
    evaluations: Any,
    runs: Any,
    out_dir: pathlib.Path,
    name: str = "compare",
    thresholds: dict[str, float] | None = None,
    reference: str = REFERENCE,
    title: str = "Comparison",
    notes: Sequence[str] = (),
) -> str:
    """Write ``<name>_evaluations.csv``, ``<name>_runs.csv``, ``<name>_<env>.png`` and ``<name>.md``; return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluations.to_csv(out_dir / f"{name}_evaluations.csv", index=False)
    runs.to_csv(out_dir / f"{name}_runs.csv", index=False)
    parts = [f"# {title}", ""]
    for env in dict.fromkeys(runs["env"]):
        env_evaluations = evaluations[evaluations["env"] == env]
        env_runs = runs[runs["env"] == env]
        threshold = _threshold(env, thresholds)
        rows = summarise(env_evaluations, env_runs, threshold, reference)
        parts += [f"## {env}", "", markdown_table(rows, threshold, reference), ""]
        if len(env_evaluations):
            figure = out_dir / f"{name}_{env}.png"
            plot_curves(env_evaluations, env, figure, threshold)
            parts += [f"![learning curves on {env}]({figure.name})", ""]
        failed = env_runs[env_runs["status"] == "failed"]
        for _, run in failed.iterrows():
            parts.append(f"- {run['algorithm']} seed {run['seed']}: **failed**: {run['error']}")
        missing = env_runs[env_runs["status"] == "missing"]
        for algorithm, group in missing.groupby("algorithm", sort=False):
            parts.append(f"- {algorithm}: **missing** (not run yet) seeds {', '.join(map(str, group['seed']))}")
        if len(failed) or len(missing):
            parts.append("")
    parts += [
        "Final return: mean evaluation return at the last evaluation point of each run (raw env rewards); mean +/- "
        "std (ddof=0) over runs; IQM = mean of the middle 50% of runs; CIs: 95% percentile bootstrap over runs. "
        f"P({reference} > row): probability that a run of {reference} scores higher than a run of the row's "
        "algorithm (ties count half). Steps to threshold: median over runs of the first evaluation step whose "
        "mean return reaches it. Seconds per run: training (evaluation excluded) / total; env steps/s: training.",
        "",
    ]
    parts += [f"{note}\n" for note in notes]
    text = "\n".join(parts)
    (out_dir / f"{name}.md").write_text(text)
    return text


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------


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
) -> list[RunSpec]:
    """The grid of runs: every environment x variant x seed."""
    # Seed-major order: a grid stopped half-way has the same number of seeds of every algorithm
    return [
        RunSpec(variant, env, seed, budget, eval_freq, eval_episodes, str(log_folder), threads, device)
        for env in envs
        for seed in seeds
        for variant in variants
    ]


def compare(
    variants: Sequence[Variant],
    envs: Sequence[str] = ("Pendulum-v1",),
    seeds: Sequence[int] = (0, 1, 2),
    budget: int = 0,
    eval_freq: int = 1000,
    eval_episodes: int = 10,
    log_folder: pathlib.Path = pathlib.Path("logs/compare"),
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    name: str = "compare",
    progress: bool = True,
    thresholds: dict[str, float] | None = None,
    notes: Sequence[str] = (),
    report_only: bool = False,
) -> tuple[str, Any]:
    """Run (or resume) the grid and write the report into ``log_folder``.

    :return: the report's markdown and the table of runs (one row per run, with its status and error)
    """
    specs = make_specs(variants, envs, seeds, budget, eval_freq, eval_episodes, log_folder)
    records = run_all(specs, backend=backend, jobs=jobs, address=address, progress=progress, report_only=report_only)
    evaluations, runs = collect(specs, records)
    title = "Ablation: one tutorial quirk switched to SB3's choice at a time" if name == "ablation" else "Comparison"
    protocol = (
        f"Protocol: {'zoo n_timesteps' if not budget else f'{budget}'} env steps per run; every {eval_freq} env steps, "
        f"{eval_episodes} episodes with the deterministic and {eval_episodes} with the stochastic policy; seeds "
        f"{', '.join(map(str, seeds))}; each algorithm with its rl-zoo3 hyperparameters."
    )
    overrides = [f"- `{v.label}`: {v.description or v.algo} {v.overrides or ''}".rstrip() for v in variants]
    report = write_report(
        evaluations, runs, log_folder, name, thresholds, REFERENCE, title, [protocol, "\n".join(overrides), *notes]
    )
    return report, runs


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--algos", nargs="+", default=["tutorial_sac", "sac"], help="rl-zoo3 algorithm keys (default: tutorial_sac sac)"
    )
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1"], help="environment ids (default: Pendulum-v1)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default: 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--budget", type=int, default=0, help="env steps per run (default: 0 = the zoo's n_timesteps)")
    parser.add_argument("--eval-freq", type=int, default=1000, help="evaluate every N env steps (default: 1000)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation and mode (default: 10)")
    parser.add_argument(
        "--log-folder", type=pathlib.Path, default=pathlib.Path("logs/compare"), help="runs and report (default: logs/compare)"
    )
    parser.add_argument("--ablation", action="store_true", help="tutorial_sac with each quirk switched to SB3's choice")
    parser.add_argument("--backend", choices=["local", "ray"], default="local", help="where runs go (default: local)")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="parallel local runs")
    parser.add_argument("--address", default=None, help="Ray cluster address (e.g. ray://host:10001 or auto)")
    parser.add_argument("--threshold", type=float, default=None, help="return threshold for all envs (default: per env)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the runs that have finished")


def _run(args: argparse.Namespace) -> int:
    if args.seeds <= 0 or args.jobs <= 0 or args.eval_freq <= 0 or args.eval_episodes <= 0 or args.budget < 0:
        raise SystemExit("--seeds, --jobs, --eval-freq and --eval-episodes must be positive, --budget >= 0")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.ablation:
        variants, envs, name, notes = list(ABLATION), ["Pendulum-v1"], "ablation", [ABLATION_NOTE]
    else:
        variants, envs, name, notes = [Variant(a, a) for a in dict.fromkeys(args.algos)], args.envs, "compare", []
    thresholds = dict.fromkeys(envs, args.threshold) if args.threshold is not None else None
    report, runs = compare(
        variants,
        envs,
        seeds,
        args.budget,
        args.eval_freq,
        args.eval_episodes,
        args.log_folder,
        args.backend,
        args.jobs,
        args.address,
        name,
        progress=not args.no_progress,
        thresholds=thresholds,
        notes=notes,
        report_only=args.report_only,
    )
    print(report)
    print(f"Report, CSVs and plots in {args.log_folder}/{name}*")
    return 1 if (runs["status"] == "failed").any() else 0


COMMANDS["compare"] = (
    "compare tutorial_sac with SB3's SAC (and other rl-zoo3 algorithms) over many seeds",
    _add_arguments,
    _run,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sb3_tutorial_sac.compare``: the ``compare`` command alone."""
    parser = argparse.ArgumentParser(prog="python -m sb3_tutorial_sac.compare", description=COMMANDS["compare"][0])
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    # Through the package module, so that worker processes unpickle the same classes
    from sb3_tutorial_sac import compare as _compare

    sys.exit(_compare.main())
