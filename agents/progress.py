"""The live progress line of `labwarden run`.

On a terminal one line is redrawn in place; elsewhere (CI logs, files) each change of
step is printed on its own line, so a log reads as a trace of the graph.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.time()
        self.experiments = 0
        self.kept = 0
        self.blocked = 0
        self.best: float | None = None
        self._last = ""

    def update(self, *, experiments: int, kept: int, blocked: int, best: float | None) -> None:
        self.experiments, self.kept, self.blocked, self.best = experiments, kept, blocked, best

    def step(self, node: str, experiment_id: str | None = None, note: str = "") -> None:
        if not self.enabled:
            return
        elapsed = int(time.time() - self.started)
        best = "-" if self.best is None else f"{self.best:.4f}"
        line = (f"[{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] "
                f"{node:<8} {experiment_id or '':<10} experiments {self.experiments} "
                f"kept {self.kept} blocked {self.blocked} best val_bpb {best}")
        if note:
            line += f" | {note}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:200])
        elif line != self._last:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        self.stream.flush()
