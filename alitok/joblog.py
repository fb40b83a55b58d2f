"""A job's log: what an `alitok` command writes to stderr (its log lines, warnings, progress bars and, when it
fails, its traceback) goes to the console and to the file given with `--log` (the rule's `log:`), so a failed
job's log says why it failed.

Progress bars (tqdm, on stderr) redraw their line with "\\r" several times a second. A file or a pipe gets them as
lines instead: a bar's state at most every PROGRESS_EVERY seconds, and its last state. That is what the job log
always gets, and the console too when it is not a terminal (a cluster job's output file, a console piped to a
file); a terminal gets the bars live.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

PROGRESS_EVERY = 60.0  # seconds between two lines of one progress bar in a file or pipe


class ProgressLines:
    """Text to `stream`, progress redraws ("\\r" + state) turned into rate-limited lines."""

    def __init__(self, stream, every: float = PROGRESS_EVERY, clock=time.monotonic):
        self.stream, self.every, self.clock = stream, every, clock
        self.redraw = False  # inside a bar's line: text is its state, until "\n" or text of another kind
        self.state, self.emitted = "", None  # the bar's state; the last one written
        self.last = clock()  # when a bar's line was last written: a short bar leaves only its last state
        self.midline = False  # the stream's current line holds text

    def write(self, s: str) -> int:
        if not s:  # tqdm writes "" between a bar's states
            return 0
        if self.redraw and not s.startswith(("\r", "\n")):
            self._end_bar()  # other text after a bar (a log line, a traceback) starts a line of its own
        for part in re.split(r"(\r|\n)", s):
            if part == "\r":
                self.redraw, self.state = True, ""
            elif part == "\n" and self.redraw:
                self._end_bar()
            elif self.redraw:
                self.state += part
            elif part:
                self.stream.write(part)
                self.midline = not part.endswith("\n")
        if self.redraw and self.state.strip() and self.clock() - self.last >= self.every:
            self._emit()
        self.stream.flush()
        return len(s)

    def _emit(self) -> None:
        self.stream.write(("\n" if self.midline else "") + self.state.strip() + "\n")
        self.emitted, self.last, self.midline = self.state, self.clock(), False

    def _end_bar(self) -> None:
        if self.state.strip() and self.state != self.emitted:
            self._emit()
        self.redraw, self.state, self.emitted = False, "", None

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # encoding, fileno, isatty ...: the stream's
        return getattr(self.stream, name)


class Tee:
    """sys.stderr for a job: the console (live, or as lines when it is no terminal) and the job log (as lines)."""

    def __init__(self, console, log_file):
        self.console, self.log_file = console, log_file
        self._console = console if _isatty(console) else ProgressLines(console)
        self._log = ProgressLines(log_file)

    def write(self, s: str) -> int:
        self._console.write(s)
        if not self.log_file.closed:
            self._log.write(s)
        return len(s)

    def flush(self) -> None:
        self._console.flush()
        if not self.log_file.closed:
            self.log_file.flush()

    def __getattr__(self, name):  # encoding, fileno, isatty ...: the console's
        return getattr(self.console, name)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def capture(log_path: Path | None) -> None:
    """Make sys.stderr write to the console and to `log_path` (None: the console only, progress as lines when it is
    no terminal). A traceback that ends the process goes through sys.stderr, so the log has it too. Under torchrun
    every rank writes to the log: rank 0 starts it afresh, the others append."""
    console = sys.stderr
    while isinstance(console, (Tee, ProgressLines)):  # called again in one process (tests): wrap the console once
        if isinstance(console, Tee):
            console.log_file.close()  # the earlier job's log: complete
        console = console.console if isinstance(console, Tee) else console.stream
    if log_path is None:
        sys.stderr = console if _isatty(console) else ProgressLines(console)
        return
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    mode = "w" if os.environ.get("RANK", "0") == "0" else "a"
    sys.stderr = Tee(console, open(log_path, mode, encoding="utf-8", errors="replace", buffering=1))  # noqa: SIM115


def label(p: dict, name: str) -> str:
    """`name` (a run, a stage) as a job's progress bar and log lines call it, with the derived params it runs under:
    an ablation unit's ("S [ablation B seed 0]") or the CTF setting's ("S [ctf_setting]"), whose runs share names
    with the profile's own."""
    if "ablation" in p:
        return f"{name} [ablation {p['ablation']['unit']} seed {p['ablation']['seed']}]"
    return f"{name} [{p['setting']}]" if p.get("setting") else name
