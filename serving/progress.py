"""Progress bars that suit where the output goes, for the serving layer and the training toolkit.

On a terminal `ProgressBar` is a plain tqdm bar. Into a log (CI, `run.sh > file`, a service) tqdm's
carriage-return redraws would pile up as thousands of updates, so there it writes a whole line at
most every `LOG_INTERVAL_S` seconds (and a last one at the end). Nothing here imports Gradio.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 10.0
"""Seconds between progress lines when the output is not a terminal."""


def interactive(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stderr, where tqdm and transformers draw) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


class _Lines:
    """A file for tqdm that writes each redraw as one line (tqdm's padding and cleared bars dropped)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        for line in re.split(r"[\r\n]", text):
            if line.strip():
                self.stream.write(line.rstrip() + "\n")
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


class ProgressBar(tqdm):
    """tqdm on a terminal; elsewhere one line per `LOG_INTERVAL_S` seconds (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        stream = kwargs.get("file") or sys.stderr
        if not interactive(stream):
            kwargs.update(file=_Lines(stream), dynamic_ncols=False, ncols=kwargs.get("ncols") or 100)
            kwargs["mininterval"] = max(kwargs.get("mininterval") or 0, LOG_INTERVAL_S)
        super().__init__(*args, **kwargs)
