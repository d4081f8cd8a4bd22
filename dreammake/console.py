"""What a run prints: concise coloured lines and a progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

COLOURS = {"run": "cyan", "done": "green", "skip": "dim", "fail": "bold red", "warn": "yellow", "info": "blue"}


def quiet_libraries() -> None:
    """Keep third-party warnings (transformers' `FutureWarning`s, torch's `UserWarning`s…) and progress bars (tqdm,
    huggingface_hub, transformers) out of the console: dreammake prints its own progress. Warnings of dreammake and
    of the Dreamfile still show. Worker processes inherit the environment variables."""
    import warnings

    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"(dreammake|__dreamfile__)(\.|$)")  # ours and the Dreamfile's
    for name, value in (("TQDM_DISABLE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
        os.environ.setdefault(name, value)


class Console:
    """Logs for a run. `quiet` keeps only errors; `debug` adds tracebacks and lets third-party warnings and
    progress bars through (otherwise `quiet_libraries` keeps them out)."""

    def __init__(self, quiet: bool = False, debug: bool = False, stream: Any = None):
        if not debug:
            quiet_libraries()
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.debug = debug
        self.rich = self.stream.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ
        self._console: Any = None
        self._progress: Any = None
        self._task: Any = None

    def _rich(self) -> Any:
        if self._console is None:
            from rich.console import Console as RichConsole

            self._console = RichConsole(file=self.stream, highlight=False)
        return self._console

    def line(self, kind: str, text: str) -> None:
        """One log line; `kind` picks the colour (run, done, skip, fail, warn, info)."""
        if self.quiet and kind != "fail":
            return
        if self.rich:
            from rich.markup import escape

            self._rich().print(f"[{COLOURS.get(kind, 'white')}]{escape(text)}[/]")
        else:
            print(text, file=self.stream, flush=True)

    def error(self, text: str) -> None:
        """An error line (always shown)."""
        if self.rich:
            from rich.markup import escape

            self._rich().print(f"[bold red]error:[/] {escape(text)}")
        else:
            print(f"error: {text}", file=self.stream, flush=True)

    # -- progress over the jobs of a run ------------------------------------------------------
    def start_progress(self, total: int) -> None:
        """Show a progress bar (terminal only)."""
        if not self.rich or self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self._rich(), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("jobs", total=total)

    def task(self, description: str, total: int) -> Any:
        """A sub-progress bar (e.g. rows of a generation); returns `advance(n)`. Thread-safe."""
        if self._progress is None:
            return lambda n: None
        progress = self._progress
        task = progress.add_task(description, total=total)
        done = 0
        lock = threading.Lock()

        def advance(n: int) -> None:
            # Counted here, not read back from `progress.tasks`: that is a list, and once an earlier bar
            # is removed a task id no longer is its index.
            nonlocal done
            with lock:
                if done >= total:
                    return
                done += n
                finished = done >= total
            progress.advance(task, n)
            if finished:
                progress.remove_task(task)

        return advance

    def advance(self) -> None:
        """One more job finished."""
        if self._progress is not None:
            self._progress.advance(self._task)

    def stop_progress(self) -> None:
        """Remove the progress bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
