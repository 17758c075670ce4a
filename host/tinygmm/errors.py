"""The one exception type for problems a user can fix; the CLI prints it without a traceback."""
from __future__ import annotations

from typing import Any


class TinyGMMError(Exception):
    """A problem with the user's input, files, board or environment, with what to do about it."""


class StaleFirmware(TinyGMMError):
    """The device runs another model than the project's: rebuild and flash before comparing."""


def __getattr__(name: str) -> Any:
    """``NotFittedError`` and ``ConvergenceWarning`` are scikit-learn's own classes (so code that catches
    or filters them catches tinygmm's), looked up on first use: importing scikit-learn takes about a
    second, which link/ and the CLI's start-up, both importing this module, do not need."""
    if name in ("NotFittedError", "ConvergenceWarning"):
        from sklearn import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
