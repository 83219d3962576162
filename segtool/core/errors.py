"""The one exception type for errors a user can cause."""

from __future__ import annotations

import os


class SegtoolError(Exception):
    """A problem with the user's input: names the file (when there is one) and the cause.

    ``str(error)`` is the one line the CLI and the GUI show, e.g.
    ``"images/a.tif: truncated file (expected 4096 bytes, found 100)"``.
    """

    def __init__(self, problem: str, path: str | os.PathLike[str] | None = None) -> None:
        self.problem = problem
        self.path = os.fspath(path) if path is not None else None
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
