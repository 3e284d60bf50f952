"""A one-line progress indicator on stderr for loops over cases (no Keras import needed)."""

import sys
import time


class ProgressLine:
    """Prints `evaluate  3/10  case_003  2.1 s/case  ETA 15 s` for each finished step.

    On a terminal the line is redrawn in place; otherwise (logs, CI) one line per step is printed.

    Args:
        total: int or None. Number of steps if known (a generator of cases may not know it).
        label: str. Prefix of the line. Defaults to "evaluate".
        stream: file-like. Defaults to `sys.stderr`.
        enabled: bool. False makes every call a no-op. Defaults to True.
    """

    def __init__(self, total=None, label="evaluate", stream=None, enabled=True):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.num_done = 0
        self._start = time.perf_counter()
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, name=""):
        """Marks one more step done; `name` is shown (e.g. the case id)."""
        self.num_done += 1
        if not self.enabled:
            return
        seconds_per_step = (time.perf_counter() - self._start) / self.num_done
        count = f"{self.num_done}/{self.total}" if self.total else f"{self.num_done}"
        line = f"{self.label} {count} {name} {seconds_per_step:.1f} s/case"
        if self.total:
            line += f" ETA {seconds_per_step * (self.total - self.num_done):.0f} s"
        if self._interactive:
            end = "\n" if self.total and self.num_done >= self.total else ""
            self.stream.write("\r" + line.ljust(79) + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        """Ends an in-place line that did not reach `total`."""
        if self.enabled and self._interactive and not (self.total and self.num_done >= self.total):
            self.stream.write("\n")
            self.stream.flush()
