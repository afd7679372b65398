"""What a bulk run shows while it runs, and the summary at its end.

Three ways to show it, chosen once per run (`choose_style`):

- `"bar"` (stderr is a terminal, no `--quiet`): a rich progress bar with
  documents done/total, pages, pages/s, ETA, retries and 429 pauses. While
  the inputs are still being read (paths on stdin) the total is unknown: a
  spinner and a count, no ETA. Failures print above the bar as they happen.
- `"log"` (stderr is not a terminal): plain lines, one per failure, and a
  progress line every `LOG_EVERY` seconds.
- `"quiet"` (`--quiet`): one line per failure and a one-line summary, nothing else.

Output paths go to stdout, one per line, as each document finishes (written
now, or kept from a past run); everything else goes to stderr. The summary
(`"bar"` and `"log"`) is a table of ok, failed, skipped, pages, time,
retries and 429 pauses, then the failures by file and reason (the first
`MAX_LISTED`; the report has them all).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, TypeAlias

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Column, Table
from rich.text import Text

from .._poller import Progress, ProgressHook
from .._report import ReportRow

__all__ = [
    "LOG_EVERY",
    "MAX_LISTED",
    "RunDisplay",
    "RunTotals",
    "Style",
    "choose_style",
    "describe_failure",
    "fetch_progress",
]

Style: TypeAlias = Literal["bar", "log", "quiet"]

#: Seconds between progress lines in the plain log style.
LOG_EVERY = 10.0
#: Failures listed by name in the summary; the report lists every one.
MAX_LISTED = 20

_PREFIX = "aioupstage-ocr"


def choose_style(*, quiet: bool, stream: IO[str] | None = None) -> Style:
    """`"quiet"` when asked, `"bar"` on a terminal, else `"log"`."""
    if quiet:
        return "quiet"
    target = sys.stderr if stream is None else stream
    try:
        return "bar" if target.isatty() and os.environ.get("TERM") != "dumb" else "log"
    except (AttributeError, ValueError):
        return "log"


def describe_failure(row: ReportRow) -> str:
    """`<file>: <reason>` for a failed row, without naming the file twice."""
    error = row.error
    if error is None:
        return f"{row.input}: failed"
    message = error["message"]
    if message.startswith(row.input):
        message = message[len(row.input) :].lstrip(": ")
    return f"{row.input}: {message} ({error['type']})"


@dataclass(slots=True)
class RunTotals:
    """The counts of a run, as the summary shows them."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    pages: int = 0
    retries: int = 0
    pauses: int = 0
    found: int = 0
    total: int | None = None
    started: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        """Inputs with a final row (ok, failed or skipped)."""
        return self.ok + self.failed + self.skipped

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def pages_per_second(self) -> float:
        """Pages OCRed in this run per second of it."""
        elapsed = self.elapsed
        return self.pages / elapsed if elapsed > 0 else 0.0


class _CountColumn(ProgressColumn):
    """`done/total docs`, or `done docs (N found)` while the total is unknown."""

    def __init__(self, totals: RunTotals) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._totals = totals

    def render(self, task: Task) -> Text:
        t = self._totals
        done = t.ok + t.failed
        if task.total is None:
            return Text(f"{done} docs ({t.found - t.skipped} found)", style="progress.download")
        return Text(f"{done}/{int(task.total)} docs", style="progress.download")


class _PagesColumn(ProgressColumn):
    """`N (+M) pages R/s`: pages done (+ pages done of async documents still running)."""

    max_refresh = 0.5

    def __init__(self, totals: RunTotals, running: dict[str, int]) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._totals = totals
        self._running = running

    def render(self, _task: Task) -> Text:
        t = self._totals
        running = sum(self._running.values())
        more = f" (+{running})" if running else ""
        return Text(
            f"{t.pages}{more} pages {t.pages_per_second():.1f}/s", style="progress.data.speed"
        )


class _TroubleColumn(ProgressColumn):
    """Failures, skips, retries and 429 pauses, where there are any."""

    def __init__(self, totals: RunTotals) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._totals = totals

    def render(self, _task: Task) -> Text:
        t = self._totals
        text = Text()
        for count, what, style in (
            (t.failed, "failed", "red"),
            (t.skipped, "skipped", "dim"),
            (t.retries, "retries", "yellow"),
            (t.pauses, "429 pauses", "yellow"),
        ):
            if count:
                if text:
                    text.append(" · ", style="dim")
                text.append(f"{count} {what}", style=style)
        return text


class RunDisplay:
    """Progress, output paths and the summary of one `ocr` run (see the module docstring).

    Use as a context manager around the run; feed it `found`, `total_known`,
    `finished`, `retried`, `paused` and `pages_advanced`; then `summary`.
    Every method is cheap and called from the event loop's thread.
    """

    def __init__(
        self,
        style: Style,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.style: Style = style
        self.totals = RunTotals()
        self._stdout = sys.stdout if stdout is None else stdout
        self._stderr = sys.stderr if stderr is None else stderr
        self._console = Console(file=self._stderr, highlight=False, soft_wrap=True)
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._next_log = time.monotonic() + LOG_EVERY
        # On a terminal the paths share the screen with the bar: print them through it.
        self._paths_via_bar = style == "bar" and _isatty(self._stdout)
        # Pages of async documents counted while they run, so pages/s moves (by document).
        self._live_pages: dict[str, int] = {}

    def __enter__(self) -> RunDisplay:
        if self.style == "bar":
            t = self.totals
            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                BarColumn(bar_width=24),
                _CountColumn(t),
                _PagesColumn(t, self._live_pages),
                TimeRemainingColumn(compact=True),
                _TroubleColumn(t),
                console=self._console,
                redirect_stdout=False,
                redirect_stderr=False,
                refresh_per_second=8,
                transient=True,
            )
            self._task = self._bar.add_task("OCR", total=None)
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Take the bar off the screen (safe to call twice)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        with contextlib.suppress(OSError, ValueError):
            self._stdout.flush()

    # ------------------------------------------------------------------ events

    def found(self, count: int = 1) -> None:
        """`count` more inputs were found (while the total is still unknown)."""
        self.totals.found += count

    def total_known(self, total: int) -> None:
        """Every input is found: `total` of them."""
        self.totals.total = total
        self.totals.found = total
        self._update_bar()

    def finished(self, row: ReportRow) -> None:
        """An input's final row: counts it, prints its output path or its failure."""
        t = self.totals
        if row.status == "ok":
            t.ok += 1
            t.pages += row.pages or 0
            self._live_pages.pop(row.input, None)
        elif row.status == "skipped":
            t.skipped += 1
        else:
            t.failed += 1
            self._live_pages.pop(row.input, None)
            line = describe_failure(row)
            if len(t.failures) < MAX_LISTED:
                t.failures.append(line)
            self._error(f"failed: {line}")
        if row.outputs:  # every output file, also those of a row failed by one format
            for path in row.outputs.values():
                self._print_path(path)
        elif row.output is not None and row.status != "failed":
            self._print_path(row.output)
        self._update_bar()
        self._maybe_log()

    def pages_advanced(self, key: str, pages: int) -> None:
        """An async document `key` has `pages` pages done so far (shown before it ends)."""
        before = self._live_pages.get(key, 0)
        if pages > before:
            self._live_pages[key] = pages
            self._update_bar()

    def retried(self) -> None:
        """A request is being sent again."""
        self.totals.retries += 1
        self._update_bar()

    def paused(self) -> None:
        """A 429 paused the senders."""
        self.totals.pauses += 1
        self._update_bar()

    def message(self, text: str) -> None:
        """A note on stderr (not in quiet style)."""
        if self.style != "quiet":
            self._line(text)

    # ------------------------------------------------------------------ summary

    def summary(self, *, interrupted: bool = False, report: Path | None = None) -> None:
        """The end of the run on stderr: a table (or one line when quiet), then the failures."""
        self.close()
        t = self.totals
        elapsed = t.elapsed
        if self.style == "quiet":
            self._line(
                f"{t.ok} ok, {t.failed} failed, {t.skipped} skipped, {t.pages} pages "
                f"in {elapsed:.1f} s ({t.retries} retries, {t.pauses} 429 pauses)"
            )
            return
        table = Table(title="interrupted" if interrupted else None, title_style="bold red")
        for name in (
            "ok",
            "failed",
            "skipped",
            "pages",
            "time",
            "pages/s",
            "retries",
            "429 pauses",
        ):
            table.add_column(name, justify="right")
        table.add_row(
            Text(str(t.ok), style="green" if t.ok else ""),
            Text(str(t.failed), style="red" if t.failed else ""),
            str(t.skipped),
            str(t.pages),
            f"{elapsed:.1f} s",
            f"{t.pages_per_second():.1f}",
            str(t.retries),
            str(t.pauses),
        )
        self._console.print(table)
        if t.failed:
            self._console.print(Text(f"Failures ({t.failed}):", style="bold red"))
            for line in t.failures:
                self._console.print(Text(f"  {line}"))
            more = t.failed - len(t.failures)
            if more > 0:
                where = f"see {report}" if report is not None else "use --report FILE to list all"
                self._console.print(Text(f"  ... and {more} more ({where})"))
        if report is not None:
            self._console.print(Text(f"Report: {report}"))

    # ------------------------------------------------------------------ internals

    def _update_bar(self) -> None:
        if self._bar is None or self._task is None:
            return
        t = self.totals
        total = None if t.total is None else max(0, t.total - t.skipped)
        self._bar.update(self._task, total=total, completed=t.ok + t.failed)

    def _maybe_log(self) -> None:
        if self.style != "log":
            return
        now = time.monotonic()
        if now < self._next_log:
            return
        self._next_log = now + LOG_EVERY
        t = self.totals
        of = f"/{t.total}" if t.total is not None else f" (of {t.found} found so far)"
        self._line(
            f"{t.finished}{of} inputs: {t.ok} ok, {t.failed} failed, {t.skipped} skipped; "
            f"{t.pages} pages, {t.pages_per_second():.1f} pages/s, {t.retries} retries, "
            f"{t.pauses} 429 pauses"
        )

    def _print_path(self, path: str) -> None:
        if self._paths_via_bar and self._bar is not None:
            self._bar.console.print(Text(_displayable(path)), soft_wrap=True)
            return
        # One whole line at a time, flushed: a reader downstream (`| while read f`)
        # gets each path as its output lands, and a killed run loses none.
        buffer = getattr(self._stdout, "buffer", None)
        if buffer is not None:
            self._stdout.flush()
            buffer.write(os.fsencode(path) + b"\n")
            buffer.flush()
        else:
            self._stdout.write(_displayable(path) + "\n")
            self._stdout.flush()

    def _error(self, text: str) -> None:
        self._line(text, style="red")

    def _line(self, text: str, style: str | None = None) -> None:
        line = Text(f"{_PREFIX}: {_displayable(text)}", style=style or "")
        if self._bar is not None:
            self._bar.console.print(line)
        else:
            self._console.print(line)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _displayable(text: str) -> str:
    """`text` with undecodable bytes of file names shown as `\\xNN`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


@contextlib.contextmanager
def fetch_progress(request_id: str, *, stream: IO[str] | None = None) -> Iterator[ProgressHook]:
    """A hook showing one request's pages on stderr while `fetch` waits (terminal only)."""
    target = sys.stderr if stream is None else stream
    if choose_style(quiet=False, stream=target) != "bar":
        yield _ignore
        return
    console = Console(file=target, highlight=False)
    with console.status(f"request {request_id}: waiting") as status:

        def hook(progress: Progress) -> None:
            total = "?" if progress.total_pages is None else str(progress.total_pages)
            status.update(
                f"request {request_id}: {progress.status}, {progress.completed_pages}/{total} "
                f"pages done, {progress.downloaded_pages} downloaded"
            )

        yield hook


def _ignore(_progress: Progress) -> None:
    """A progress hook that shows nothing."""
