"""Progress of a long management command: a live bar on a terminal, one summary line always.

A thin layer over tqdm (a well-kept, dependency-free progress meter): on a
terminal the bar is drawn on stderr and removed when the work ends; piped or
redirected (cron, CI, a container's log), nothing is drawn, so logs are not
filled with carriage returns. Either way the command ends with one summary
line on stdout, written by the command itself.
"""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _raw_stream(stream) -> TextIO:
    # Django's OutputWrapper adds a line ending to every write; the bar needs the real stream.
    return getattr(stream, "_out", stream)


class Progress:
    """`with Progress(stderr=self.stderr, label="Seeding", total=n, unit="readings") as p: p.advance(k)`."""

    def __init__(self, *, stderr=None, label: str, total: int | None = None, unit: str = "it"):
        stream = _raw_stream(stderr if stderr is not None else sys.stderr)
        self.on_terminal = bool(getattr(stream, "isatty", lambda: False)())
        self.count = 0
        self.started = time.monotonic()
        self._bar = tqdm(
            total=total,
            desc=label,
            unit=unit,
            file=stream,
            disable=not self.on_terminal,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    def advance(self, n: int = 1) -> None:
        self.count += n
        self._bar.update(n)

    def note(self, text: str) -> None:
        """Show what is being worked on next to the bar (nothing when not on a terminal)."""
        self._bar.set_postfix_str(text, refresh=False)

    def counting(self, items: Iterable[T], *, every: int = 1000) -> Iterator[T]:
        """Yield `items`, advancing once per `every` of them (cheap for millions of rows)."""
        pending = 0
        for item in items:
            yield item
            pending += 1
            if pending >= every:
                self.advance(pending)
                pending = 0
        if pending:
            self.advance(pending)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        if self.on_terminal:
            self._bar.refresh()  # the final count, then the bar is cleared
        self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
