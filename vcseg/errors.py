"""The one exception type for problems a user can fix (bad input, missing files).

Library code raises `VcsegError` with a message that names the file and the fix; the CLI turns
it into a one-line error and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class VcsegError(Exception):
    """A problem with the user's input that they can fix; the message says how."""


@dataclass(frozen=True)
class Problem:
    """One finding of a validation pass (ingest, pack): which file, how bad, what to do.

    Validators collect every problem and report them all at once rather than stopping at the first.
    """

    severity: str  # "error" (input unusable) or "warning" (usable, but look at it)
    path: Path | None
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{self.severity}: {where}{self.message}"


class ProblemReport:
    """Mixin for results that carry `problems`: the errors and the warnings among them."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]
