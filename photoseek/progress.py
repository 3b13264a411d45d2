"""A dependency-free progress line: count, rate, ETA; throttled, and a summary at the end."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """`update(n)` as work gets done; prints at most every `every` seconds; `close()` prints the summary."""

    def __init__(self, label: str, total: int | None = None, unit: str = "items", every: float | None = None,
                 stream: TextIO | None = None, enabled: bool = True):
        if every is None:  # PHOTOSEEK_PROGRESS_EVERY: seconds between lines, for logs that want more or fewer
            every = float(os.environ.get("PHOTOSEEK_PROGRESS_EVERY", "2"))
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        text = f"{self.label}: {self.done}"
        if self.total:
            text += f"/{self.total} ({100 * self.done / self.total:.0f}%)"
        text += f" {self.unit}, {rate:.1f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {format_seconds((self.total - self.done) / rate)}"
        return text

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            end = "\r" if self._tty else "\n"
            print(self.line(), end=end, file=self.stream, flush=True)

    def close(self) -> str:
        """Print and return the summary line."""
        elapsed = time.monotonic() - self.start
        summary = f"{self.label}: {self.done} {self.unit} in {format_seconds(elapsed)} ({self.rate:.1f} {self.unit}/s)"
        if self.enabled:
            print(("\r" if self._tty else "") + summary, file=self.stream, flush=True)
        return summary
