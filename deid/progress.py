"""The operator's view of a running batch: images done, images per second, time left, time per stage.

On a terminal it redraws one status line on stderr; otherwise (a log file,
CI, a scheduled run) it writes a plain log line every ``every`` images. It
counts ledger ids and stage times only: never a name, a case or an answer.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

logger = logging.getLogger(__name__)


@dataclass
class BatchProgress:
    """Counts finished images and the seconds each stage took (mutable: one per run, in the flow process)."""

    total: int
    stream: TextIO | None = None
    every: int = 10
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def advance(self, stages: Mapping[str, float]) -> None:
        """One more image is done; ``stages`` are its seconds per stage."""
        self.done += 1
        for stage, seconds in stages.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        stream = self.stream if self.stream is not None else sys.stderr
        if stream.isatty():
            end = "\n" if self.done >= self.total else ""
            stream.write(f"\r{self.line()}\033[K{end}")
            stream.flush()
        elif self.done % self.every == 0 or self.done >= self.total:
            logger.info("%s", self.line())

    @property
    def rate(self) -> float:
        """Images per second since the run started."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``[#####.....] 12/28 images, 2.10 images/s, about 8 s left``."""
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        left = (self.total - self.done) / self.rate if self.rate > 0 else 0.0
        bar = "#" * filled + "." * (width - filled)
        return f"[{bar}] {self.done}/{self.total} images, {self.rate:.2f} images/s, about {left:.0f} s left"
