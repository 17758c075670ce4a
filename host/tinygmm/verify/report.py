"""The result of a verify run: each check with its failures, the figures, the JSON report and the table."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..files import write_atomic

REPORT_FORMAT = "tinygmm-verify"
REPORT_VERSION = 1


@dataclass
class Check:
    """One named requirement: ``failures`` vectors broke it (0: passed)."""

    name: str
    checked: int
    failures: int
    detail: str = ""
    examples: list[int] = field(default_factory=list)  # indices of some failing vectors

    @property
    def passed(self) -> bool:
        return self.failures == 0


@dataclass
class PerVector:
    """Each vector's score on both sides and what went wrong, for plots; kept out of the JSON report.

    Scores are NaN where the vector got no score (an error reply, or a non-finite input).
    """

    kinds: list[str]
    host_score: np.ndarray  # (N,) float64 log-density at the float32 input
    device_score: np.ndarray  # (N,) what the device answered, as float64
    score_bound: np.ndarray  # (N,) the float32 error bound of the score
    failed: np.ndarray  # (N,) bool: some check failed on this vector
    certified_tie: np.ndarray  # (N,) bool: float32 may legitimately predict either component


@dataclass
class VerifyReport:
    model_id: str
    target: str
    transport: str
    n_vectors: int
    kinds: dict[str, int]
    checks: list[Check]
    certified_ties: int  # predictions float32 may legitimately get either way
    max_log_joint_error: float  # largest |device - float64|, and its share of the bound
    max_log_joint_error_ratio: float
    max_score_error: float
    max_score_error_ratio: float
    max_proba_error: float
    bit_exact: dict[str, float]  # share of answered vectors whose output equals the twin's bit for bit
    cycles: dict[str, float] = field(default_factory=dict)  # per call, median over vectors, in clock_unit
    clock_unit: str = ""
    vectors_per_second: dict[str, float] = field(default_factory=dict)  # batch throughput over the link
    bytes_per_vector: dict[str, float] = field(default_factory=dict)  # request bytes on the wire per vector
    link_limit: float | None = None  # vectors/s a raw float32 payload could reach at the baud rate
    device: dict[str, str] = field(default_factory=dict)  # the device's hello fields
    link: dict[str, int] = field(default_factory=dict)  # link.client.LinkStats of the run: lines sent, lost
    seconds: float = 0.0
    by_kind: dict[str, list[Check]] = field(default_factory=dict)  # the same checks on each kind of vector
    per_vector: PerVector | None = field(default=None, repr=False)  # for plots; not saved
    model: Any = field(default=None, repr=False)  # the Model verified, for plots; not saved


    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        doc = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "tool": f"tinygmm {__version__}",
               "passed": self.passed, **asdict(replace(self, per_vector=None, model=None))}
        del doc["per_vector"], doc["model"]
        for c, d in zip(self.checks, doc["checks"]):
            d["passed"] = c.passed
        return doc

    def save(self, path: str | os.PathLike) -> Path:
        return write_atomic(path, json.dumps(self.to_json(), indent=1, default=float) + "\n", "the report")


def save_failure_report(path: str | os.PathLike, project: str | os.PathLike, error: BaseException) -> Path:
    """A report for a run that could not compare anything (no device, stale firmware, a link that
    broke): ``passed`` false and the error, in the same format as a finished run's report."""
    doc = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "tool": f"tinygmm {__version__}", "passed": False,
           "project": str(project), "error": str(error) or "interrupted", "error_type": type(error).__name__}
    return write_atomic(path, json.dumps(doc, indent=1) + "\n", "the report")


def format_report(r: VerifyReport) -> str:
    """The short table `tinygmm verify` prints."""
    lines = [f"model {r.model_id} on {r.target} via {r.transport}: {r.n_vectors} vectors "
             f"({', '.join(f'{k} {n}' for k, n in r.kinds.items())})"]
    width = max(len(c.name) for c in r.checks)
    for c in r.checks:
        mark = "ok  " if c.passed else "FAIL"
        extra = f"  e.g. vectors {c.examples}" if c.examples else (f"  {c.detail}" if c.failures else "")
        lines.append(f"  {mark} {c.name.ljust(width)}  {c.checked - c.failures}/{c.checked}{extra}")
    lines.append(f"  certified float32 ties: {r.certified_ties}")
    lines.append(f"  max error vs float64: log_joint {r.max_log_joint_error:.3g} ({r.max_log_joint_error_ratio:.2f} of bound), "
                 f"score {r.max_score_error:.3g} ({r.max_score_error_ratio:.2f} of bound), proba {r.max_proba_error:.2g}")
    lines.append("  bit-exact with the float32 twin: "
                 + ", ".join(f"{op} {share:.1%}" for op, share in r.bit_exact.items()))
    if not r.cycles:
        lines.append("  on the device per call: not timed (no cycle-accurate clock on this transport, or none in the firmware)")
    else:
        lines.append("  on the device per call: " + ", ".join(f"{op} {v:,.0f} {r.clock_unit}" for op, v in r.cycles.items()))
    link = ", ".join(f"{op} {r.vectors_per_second[op]:,.0f}/s ({r.bytes_per_vector[op]:.1f} B/vector)"
                     for op in ("predict", "score"))
    limit = f" against a raw-payload limit of {r.link_limit:,.0f}/s" if r.link_limit else ""
    lines.append(f"  link: {link}{limit}")
    lines.append(("PASS" if r.passed else "FAIL") + f" in {r.seconds:.2f} s")
    return "\n".join(lines)
