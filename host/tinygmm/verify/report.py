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
# Failing vectors the table names per check (the JSON report keeps every example compare gives).
TABLE_EXAMPLES = 5
REPORT_VERSION = 2  # 2: each check carries its worst error/bound; the max_* figures went into the checks


@dataclass
class Check:
    """One named requirement: ``failures`` vectors broke it (0: passed)."""

    name: str
    checked: int
    failures: int
    detail: str = ""
    examples: list[int] = field(default_factory=list)  # indices of the first failing vectors
    example_kinds: list[str] = field(default_factory=list)  # and their kinds
    worst: float | None = None  # the largest error as a share of its bound (None: an exact check)
    largest: float | None = None  # the largest error, in the output's units

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
    bit_exact: dict[str, float]  # share of answered vectors whose output equals the twin's bit for bit
    cycles: dict[str, float] = field(default_factory=dict)  # per call, median over vectors, in clock_unit
    clock_unit: str = ""
    vectors_per_second: dict[str, float] = field(default_factory=dict)  # batch throughput over the link
    bytes_per_vector: dict[str, float] = field(default_factory=dict)  # request bytes on the wire per vector
    link_limit: float | None = None  # vectors/s a raw float32 payload could reach at the baud rate
    device: dict[str, str] = field(default_factory=dict)  # the device's hello fields
    link: dict[str, int] = field(default_factory=dict)  # link.client.LinkStats of the run: lines sent, lost
    clock_hz: float | None = None  # the device's clock when its timings are cycles (to show them in time too)
    untimed: str = ""  # why the device was not timed ("" when it was)
    link_kind: str = "serial"  # "serial" (a board), "emulated serial" (an emulator's UART) or "pseudo-terminal"
    seconds: float = 0.0
    by_kind: dict[str, list[Check]] = field(default_factory=dict)  # the same checks on each kind of vector
    per_vector: PerVector | None = field(default=None, repr=False)  # for plots; not saved
    model: Any = field(default=None, repr=False)  # the Model verified, for plots; not saved
    scope: str = ""  # what the run proves and what not, where the target is a stand-in (a CPU class)


    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        doc = {**report_header(), "passed": self.passed, **asdict(replace(self, per_vector=None, model=None))}
        del doc["per_vector"], doc["model"]
        for c, d in zip(self.checks, doc["checks"]):
            d["passed"] = c.passed
        return doc

    def save(self, path: str | os.PathLike) -> Path:
        return write_report(path, self.to_json())


def report_header() -> dict[str, Any]:
    """The keys every report file starts with: what it is and what wrote it."""
    return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "tool": f"tinygmm {__version__}"}


def write_report(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """A report file, written whole or not at all (NumPy scalars as numbers)."""
    return write_atomic(path, json.dumps(doc, indent=1, default=float) + "\n", "the report")


def save_failure_report(path: str | os.PathLike, project: str | os.PathLike, error: BaseException) -> Path:
    """A report for a run that could not compare anything (no device, stale firmware, a link that
    broke): ``passed`` false and the error, in the same format as a finished run's report."""
    return write_report(path, {**report_header(), "passed": False, "project": str(project),
                               "error": str(error) or "interrupted", "error_type": type(error).__name__})


def format_report(r: VerifyReport) -> str:
    """The table `tinygmm verify` prints: every check against its bound, then the figures, each with the
    line that says what it means (docs/verify.md has the derivations)."""
    lines = [f"model {r.model_id} on {r.target} via {r.transport}: {r.n_vectors} vectors "
             f"({', '.join(f'{k} {n}' for k, n in r.kinds.items())})",
             "  each output of the device against the float32 twin (the host's exact model of the device's "
             "arithmetic) and the float64 model;",
             "  error/bound: the largest error as a share of what float32 rounding can explain (docs/verify.md)"]
    width = max((len(c.name) for c in r.checks), default=0)
    counts = [f"{c.checked - c.failures}/{c.checked}" for c in r.checks]
    count_width = max((len(t) for t in counts), default=0)
    for c, count in zip(r.checks, counts):
        mark = "ok  " if c.passed else "FAIL"
        against = "exact" if c.worst is None else f"error/bound max {c.worst:.2g} (error {c.largest:.2g})"
        first = ""
        if c.failures and c.examples:
            shown = zip(c.examples[:TABLE_EXAMPLES], c.example_kinds[:TABLE_EXAMPLES])
            first = "; first failing vectors " + ", ".join(f"{i} ({k})" for i, k in shown)
        elif c.failures:
            first = f"; {c.detail}"
        lines.append(f"  {mark} {c.name.ljust(width)}  {count.rjust(count_width)}  {against}{first}")
    ties = ""
    if r.per_vector is not None and r.certified_ties:
        kinds = np.asarray(r.per_vector.kinds)[r.per_vector.certified_tie]
        ties = " (" + ", ".join(f"{k} {int(n)}" for k, n in zip(*np.unique(kinds, return_counts=True))) + ")"
    lines.append(f"  certified float32 ties: {r.certified_ties}{ties}: inputs whose two best components float32 "
                 "cannot order, so either answer is right (counted, not compared)")
    lines.append("  bit-exact with the float32 twin: "
                 + ", ".join(f"{op} {share:.1%}" for op, share in r.bit_exact.items())
                 + " (shown, not required: score and proba call exp/log, whose last bit differs between C libraries)")
    if not r.cycles:
        lines.append(f"  on the device per call: not timed ({r.untimed or 'no clock on this transport, or none in the firmware'})")
    else:
        def per_call(op: str, v: float) -> str:
            when = f" = {v / r.clock_hz * 1e6:,.0f} us at {r.clock_hz / 1e6:g} MHz" if r.clock_hz and r.clock_unit == "cycles" else ""
            return f"{op} {v:,.0f} {r.clock_unit}{when}"
        source = f" (exact {r.clock_unit} of the emulated CPU)" if r.link_kind == "emulated serial" else ""
        lines.append("  on the device per call: " + ", ".join(per_call(op, v) for op, v in r.cycles.items()) + source)
    if r.vectors_per_second:  # not measured where no link was used
        link = ", ".join(f"{op} {r.vectors_per_second[op]:,.0f}/s ({r.bytes_per_vector[op]:.1f} B/vector)"
                         for op in ("predict", "score"))
        where = {"emulated serial": "; emulated: the emulator's clock, and so its serial line, runs faster or slower "
                                    "than a real board's (bench/link_throughput.py measures at real time)",
                 "pseudo-terminal": "; over a pseudo-terminal, no serial line: not a board's speed"}.get(
            r.link_kind, f" against a raw-payload limit of {r.link_limit:,.0f}/s" if r.link_limit else "")
        lines.append(f"  link, batch requests: {link}{where}")
    if r.scope:
        lines.append(f"  proves: {r.scope}")
    lines.append(("PASS" if r.passed else "FAIL") + f" in {r.seconds:.2f} s")
    return "\n".join(lines)
