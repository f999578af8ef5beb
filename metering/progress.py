"""A progress bar for long management commands (imports, exports, the demo seed), written to a text stream.

On a terminal the bar redraws in place; elsewhere (logs, CI, pipes) it prints a plain line now and then, so
long runs stay observable without flooding the log. Commands pass `enabled=False` for `--verbosity 0`.
"""

import time
from typing import TextIO

from django.core.management.base import OutputWrapper

BAR_WIDTH = 24


def _unstyled(text: str) -> str:
    return text


def duration_text(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar:
    """Shows items done, the rate in items per second and, when the total work is known, a bar and an ETA.

    Work may be measured in other units than items (bytes of a file read so far): `update(items=…, done=…)`
    takes both, so the rate counts events while the bar and the ETA follow the bytes.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        total: float | None = None,
        noun: str = "events",
        enabled: bool = True,
        interval: float | None = None,
        clock=time.monotonic,
    ):
        self.stream = stream
        self.total = total if total and total > 0 else None
        self.noun = noun
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.clock = clock
        self.started = clock()
        self.last_drawn = self.started
        self.items = 0
        self.done = 0.0
        self.drawn = False

    def update(self, *, items: int, done: float | None = None) -> None:
        self.items = items
        self.done = done if done is not None else items
        if self.total is not None and self.done >= self.total:
            return  # the last line is finish()'s, with the total time
        now = self.clock()
        if self.enabled and now - self.last_drawn >= self.interval:
            self.last_drawn = now
            self._draw(now)

    def finish(self) -> None:
        if self.enabled and (self.drawn or self.tty):
            if self.total is not None:
                self.done = self.total
            self._draw(self.clock(), final=True)

    def line(self, now: float, *, final: bool = False) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.items / elapsed
        parts = [f"{self.items:,} {self.noun}", f"{rate:,.0f}/s"]
        if self.total is not None:
            fraction = min(max(self.done / self.total, 0.0), 1.0)
            filled = int(fraction * BAR_WIDTH)
            parts.insert(0, f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%}")
            if final:
                parts.append(f"in {duration_text(elapsed)}")
            elif fraction > 0:
                parts.append(f"ETA {duration_text(elapsed * (1 - fraction) / fraction)}")
        else:
            parts.append(f"{duration_text(elapsed)} elapsed")
        return "  ".join(parts)

    def _draw(self, now: float, *, final: bool = False) -> None:
        text = self.line(now, final=final)
        text = f"\r\x1b[2K{text}" + ("\n" if final else "") if self.tty else text + "\n"
        if isinstance(self.stream, OutputWrapper):
            # a command's stderr styles every write as an error (red on a terminal); progress is not an error
            self.stream.write(text, style_func=_unstyled, ending="")
        else:
            self.stream.write(text)
        self.stream.flush()
        self.drawn = True
