"""Where runs go: worker processes on this machine (``local``) or tasks on a Ray cluster (``ray``, the ``ray``
extra, imported only there); ``run_all`` skips finished runs, runs the others and feeds the progress display."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue as queue_module
import shutil
import tempfile
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Protocol

from sb3_tutorial_sac.compare.progress import ProgressDisplay
from sb3_tutorial_sac.compare.runs import Event, Record, Reporter, load_record, train_one
from sb3_tutorial_sac.compare.specs import RunSpec


class EventQueue(Protocol):
    """What the backends need of a queue of progress events (a multiprocessing manager's, Ray's)."""

    def put(self, item: Event) -> None: ...

    def get_nowait(self) -> Event: ...


def _worker_init(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


def _train_one_with_queue(spec: RunSpec, queue: EventQueue | None) -> Record:
    return train_one(spec, queue.put if queue is not None else None)


def _drain(queue: EventQueue, on_event: Reporter) -> None:
    while True:
        try:
            event = queue.get_nowait()
        except queue_module.Empty:
            return
        on_event(event)


def _crashed_record(spec: RunSpec, error: BaseException) -> Record:
    return {
        "protocol": spec.protocol(),
        "label": spec.variant.label,
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
    }


def _run_local(specs: Sequence[RunSpec], jobs: int, on_event: Reporter) -> Iterable[tuple[RunSpec, Record]]:
    """Each run in a worker process (spawned: a fresh interpreter, no torch state shared), ``jobs`` at a time."""
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


def _ray_train_one(spec: RunSpec, queue: EventQueue | None) -> tuple[Record, dict[str, bytes]]:
    """Ray task: train in a scratch folder on the worker node, return the record and the run folder's files."""
    _worker_init(spec.threads)
    with tempfile.TemporaryDirectory(prefix="sb3_tutorial_sac_compare_") as scratch:
        remote_spec = dataclasses.replace(spec, log_folder=scratch)
        record = train_one(remote_spec, queue.put if queue is not None else None)
        run_dir = remote_spec.run_dir()
        files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return record, files


def _run_ray(specs: Sequence[RunSpec], address: str | None, on_event: Reporter) -> Iterable[tuple[RunSpec, Record]]:
    """Each run as a Ray task (one CPU); results come back to this machine into the same log folder."""
    import ray  # the ray extra: only this backend needs it
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
        ray.kill(queue.actor)  # type: ignore[arg-type]  # ray types it as the actor's handle or its class


def run_all(
    specs: Sequence[RunSpec],
    backend: str = "local",
    jobs: int = 1,
    address: str | None = None,
    progress: bool = True,
    report_only: bool = False,
) -> dict[str, Record]:
    """Run every spec that has not finished before; return the record of each (finished, skipped or failed).

    :param specs: the runs
    :param backend: ``local`` (worker processes) or ``ray``
    :param jobs: parallel runs of the local backend
    :param address: address of an existing Ray cluster (None: the one ``ray.init`` finds or starts)
    :param progress: show the live display
    :param report_only: train nothing: runs that have not finished are recorded as ``missing``
    :return: the record of each run, by ``RunSpec.key``
    """
    records: dict[str, Record] = {}
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
