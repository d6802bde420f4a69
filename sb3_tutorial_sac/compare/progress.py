"""The live progress display of a grid: one ``rich`` bar per run (queued, running, done, skipped, failed)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sb3_tutorial_sac.compare.runs import Event, Record
from sb3_tutorial_sac.compare.specs import FINISHED, RunSpec


class ProgressDisplay:
    """A live ``rich`` display: one bar per run (queued, running, done, skipped, failed).

    :param specs: the runs of the grid, one bar each
    :param enabled: show the live display (without it, or without a terminal: one line per finished run)
    """

    def __init__(self, specs: Sequence[RunSpec], enabled: bool = True) -> None:
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
        self.tasks: dict[str, TaskID] = {
            spec.key: self.progress.add_task(spec.key, total=spec.budget or None, status="queued", start=False)
            for spec in specs
        }

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def event(self, event: Event) -> None:
        """A progress event from a run (``start`` with the run's total env steps, or ``steps``)."""
        task = self.tasks.get(event["key"])
        if task is None:
            return
        if event["event"] == "start":
            self.progress.start_task(task)
            self.progress.update(task, total=event.get("total"), status="running")
        self.progress.update(task, completed=event["steps"])

    def finished(self, spec: RunSpec, record: Record, skipped: bool = False) -> None:
        """A run ended (or was found finished before: ``skipped``)."""
        task = self.tasks[spec.key]
        if record["status"] == "ok":
            steps = record.get("env_steps", 0)
            status = "[cyan]skipped (finished before)" if skipped else f"[green]done in {record.get('wall_seconds', 0):.0f} s"
            self.progress.update(task, total=steps, completed=steps, status=status)
        elif record["status"] == "diverged":  # recorded, not retried (specs.FINISHED)
            status = f"[yellow]diverged at env step {record.get('env_steps', 0):,}" + (" (before)" if skipped else "")
            self.progress.update(task, completed=record.get("env_steps", 0), status=status)
        else:
            status = f"[red]failed: {record.get('error', '')[:60]}"
            self.progress.update(task, status=status)
            self.console.print(f"[red]{spec.key} failed[/red]: {record.get('error')}")
        self.progress.stop_task(task)
        if self.lines and record["status"] in FINISHED:
            self.console.print(f"{spec.key}: {status}", highlight=False)
