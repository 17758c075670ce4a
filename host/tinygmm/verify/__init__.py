"""Proving a device computes what the host computes: test vectors (vectors), the comparison against the
float32 twin and the float64 model (compare), the session that runs it (session), its result (report).

The names below are imported on first use, so that importing verify.vectors (as export does)
does not load the session and its build tools."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Check": "report", "VerifyReport": "report", "format_report": "report",
            "VerifySession": "session", "run_suite": "session", "verify_project": "session"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinygmm.verify' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
