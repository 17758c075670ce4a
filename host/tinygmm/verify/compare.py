"""Compare what a device computes with what the host computes, on a project's test vectors.

For every vector the device's status must equal the float32 twin's (NaN/Inf inputs must get an
error reply). Where both answer, against the float64 model: the predicted component must equal
float64's wherever float32 cannot tie (``twin.certified_argmax``); log-joints and scores must lie
within the documented float32 error bounds (``twin.log_joint_error_bound``,
``twin.score_error_bound``); probabilities within PROBA_TOLERANCE; the anomaly flag must equal
float64's wherever the score is further from the threshold than its bound. The share of outputs
equal bit for bit to the float32 twin is reported, not required (exp/log differ between libms).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..files import write_atomic
from ..fit.em import Params, exact_log_joint
from ..link.client import Device
from ..status import OK
from ..model import Model
from ..device.twin import DeviceTwin, certified_argmax, log_joint_error_bound, score_error_bound
from .vectors import Vectors

# The requirement for probabilities: absolute difference from float64.
PROBA_TOLERANCE = 1e-5
# Inferences per on-device timing (bench), and how many vectors are timed (median reported).
BENCH_CALLS = 20
BENCH_VECTORS = 5
OPS = ("predict", "log_joint", "score", "proba", "anomaly")
CHECK_NAMES = (
    *(f"{op}: status equals the twin's" for op in OPS),
    "predict: equals float64 outside certified float32 ties",
    "log_joint: within the float32 error bound of float64",
    "score: within the float32 error bound of float64",
    f"proba: within {PROBA_TOLERANCE:g} of float64",
    "anomaly: equals float64 where the score is clear of the threshold",
)
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
    seconds: float = 0.0
    by_kind: dict[str, list[Check]] = field(default_factory=dict)  # the same checks on each kind of vector
    per_vector: PerVector | None = field(default=None, repr=False)  # for plots; not saved


    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        doc = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "tool": f"tinygmm {__version__}",
               "passed": self.passed, **asdict(replace(self, per_vector=None))}
        del doc["per_vector"]
        for c, d in zip(self.checks, doc["checks"]):
            d["passed"] = c.passed
        return doc

    def save(self, path: str | os.PathLike) -> Path:
        return write_atomic(path, json.dumps(self.to_json(), indent=1, default=float) + "\n", "the report")


def float64_log_joint(model: Model, X: np.ndarray) -> np.ndarray:
    """(N, K) float64 log-joints of the model at the (float32) inputs X, from centred differences."""
    x = np.asarray(X, dtype=np.float64)
    xs = model.scaler.transform(x) if model.scaler is not None else x
    gmm = model.to_gmm()
    p = Params(model.covariance_type, gmm.weights_, gmm.means_, gmm.covariances_, gmm.precisions_cholesky_)
    return exact_log_joint(np.ascontiguousarray(xs.T), p).T


def _check(name: str, mask_checked: np.ndarray, mask_failed: np.ndarray, detail: str = "") -> Check:
    failed = np.flatnonzero(mask_failed & mask_checked)
    return Check(name, int(mask_checked.sum()), int(failed.size), detail, failed[:10].tolist())


def compare(model: Model, vectors: Vectors, device: dict[str, Any]) -> tuple[list[Check], dict[str, Any]]:
    """Checks and figures for device outputs ``device[op] = (status (N,), values)`` from Device.batch."""
    X = vectors.X
    N, K = len(X), model.n_components
    twin = DeviceTwin(model)
    t = twin.evaluate(X)
    twin_status = {"predict": t.status_predict, "log_joint": t.status_log_joint, "score": t.status_score,
                   "proba": t.status_proba, "anomaly": t.status_anomaly}
    checks: list[Check] = []
    failed = np.zeros(N, bool)  # some check failed on this vector

    def add(name: str, checked: np.ndarray, fails: np.ndarray, detail: str = "") -> None:
        checks.append(_check(name, checked, fails, detail))
        failed[checked & fails] = True

    every = np.ones(N, bool)
    for op in OPS:
        st, _ = device[op]
        add(f"{op}: status equals the twin's", every, st != twin_status[op],
            "NaN/Inf inputs get an error reply; overflow where float32 overflows")
    answered = {op: (device[op][0] == OK) & (twin_status[op] == OK) for op in OPS}

    with np.errstate(all="ignore"):
        finite = np.all(np.isfinite(X), axis=1)
        lj64 = np.full((N, K), np.nan)
        lj64[finite] = float64_log_joint(model, X[finite])
        bound = np.full((N, K), np.inf)
        bound[finite] = log_joint_error_bound(model, X[finite])
        top = np.full(N, -1)
        certified = np.zeros(N, bool)
        top[finite], certified[finite] = certified_argmax(model, X[finite], lj64[finite])
        mx = np.max(lj64, axis=1)
        score64 = mx + np.log(np.sum(np.exp(lj64 - mx[:, None]), axis=1))
        s_bound = score_error_bound(bound, score64, K)
        proba64 = np.exp(lj64 - score64[:, None])

    label = device["predict"][1]
    ok = answered["predict"]
    add("predict: equals float64 outside certified float32 ties", ok & certified,
        label != top, f"{int((ok & ~certified).sum())} certified ties not compared")
    dev_lj = device["log_joint"][1].astype(np.float64)
    ok = answered["log_joint"]
    with np.errstate(invalid="ignore"):
        lj_err = np.where(ok[:, None], np.abs(dev_lj - lj64), 0.0)
        lj_ratio = np.where(ok[:, None], lj_err / bound, 0.0)
    add("log_joint: within the float32 error bound of float64", ok,
        np.any(lj_err > bound, axis=1), "bound: twin.log_joint_error_bound")
    dev_score = device["score"][1].astype(np.float64)
    ok = answered["score"]
    s_err = np.where(ok, np.abs(dev_score - score64), 0.0)
    add("score: within the float32 error bound of float64", ok, s_err > s_bound,
        "bound: twin.score_error_bound")
    dev_p = device["proba"][1].astype(np.float64)
    ok = answered["proba"]
    p_err = np.where(ok[:, None], np.abs(dev_p - proba64), 0.0)
    add(f"proba: within {PROBA_TOLERANCE:g} of float64", ok,
        np.any(p_err > PROBA_TOLERANCE, axis=1))
    thr = twin.device.anomaly_threshold  # float32, as the device compares
    ok = answered["anomaly"]
    if thr is not None:
        clear = np.abs(score64 - float(thr)) > s_bound
        add("anomaly: equals float64 where the score is clear of the threshold", ok & clear,
            device["anomaly"][1] != (score64 < float(thr)))
    per_vector = PerVector(list(vectors.kinds), np.where(answered["score"], score64, np.nan),
                           np.where(answered["score"], dev_score, np.nan), s_bound, failed,
                           answered["predict"] & ~certified)

    def share(op: str, same: np.ndarray) -> float:
        n = int(answered[op].sum())
        return float(same[answered[op]].sum() / n) if n else 1.0

    bits = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)  # noqa: E731
    bit_exact = {
        "predict": share("predict", label == t.label),
        "log_joint": share("log_joint", np.all(bits(device["log_joint"][1]) == bits(t.log_joint), axis=1)),
        "score": share("score", bits(device["score"][1]) == bits(t.score)),
        "proba": share("proba", np.all(bits(device["proba"][1]) == bits(t.proba), axis=1)),
        "anomaly": share("anomaly", device["anomaly"][1] == t.anomaly),
    }
    figures = dict(
        certified_ties=int((answered["predict"] & ~certified).sum()),
        max_log_joint_error=float(lj_err.max(initial=0.0)), max_log_joint_error_ratio=float(np.nanmax(lj_ratio, initial=0.0)),
        max_score_error=float(s_err.max(initial=0.0)),
        max_score_error_ratio=float(np.max(np.where(answered["score"], s_err / s_bound, 0.0), initial=0.0)),
        max_proba_error=float(p_err.max(initial=0.0)), bit_exact=bit_exact, per_vector=per_vector)
    return checks, figures


def compare_by_kind(model: Model, vectors: Vectors, device: dict[str, Any]) -> dict[str, list[Check]]:
    """``compare`` on the vectors of each kind separately (vector indices stay global)."""
    kinds = np.asarray(vectors.kinds)
    out = {}
    for kind in dict.fromkeys(vectors.kinds):
        idx = np.flatnonzero(kinds == kind)
        sub = Vectors([kind] * len(idx), vectors.X[idx], vectors.model_id)
        checks, _ = compare(model, sub, {op: (s[idx], v[idx]) for op, (s, v) in device.items()})
        for c in checks:
            c.examples = [int(idx[i]) for i in c.examples]
        out[kind] = checks
    return out


def run_suite(dev: Device, model: Model, vectors: Vectors, *, target: str = "", transport: str = "",
              bench: bool = True, baud: int | None = None) -> VerifyReport:
    """Send every test vector through the batch form of each output, compare, time the device."""
    start = time.perf_counter()
    # a device opened by connect.open_device has said hello already; anyone else's is asked now
    info = dev.info
    if info is None or info.model_id != model.model_id:
        info = dev.expect_model(model.model_id)
    outputs: dict[str, Any] = {}
    rate, per_vector = {}, {}
    for op in OPS:
        sent = dev.transcript.bytes_sent()
        t0 = time.perf_counter()
        res = dev.batch(op, vectors.X)
        elapsed = time.perf_counter() - t0
        outputs[op] = (res.status, res.values)
        rate[op] = len(vectors.X) / elapsed if elapsed > 0 else float("inf")
        per_vector[op] = (dev.transcript.bytes_sent() - sent) / max(len(vectors.X), 1)
    checks, figures = compare(model, vectors, outputs)
    by_kind = compare_by_kind(model, vectors, outputs)
    cycles = {}
    if bench:
        sample = vectors.of_kind("sample")[:BENCH_VECTORS]
        for op in ("predict", "score"):
            cycles[op] = float(np.median([dev.bench(op, x, BENCH_CALLS).per_call for x in sample]))
    kinds = {k: vectors.kinds.count(k) for k in dict.fromkeys(vectors.kinds)}
    # A UART moves 10 bits per byte; a raw payload is 4 bytes per float.
    limit = baud / 10.0 / (4 * model.n_features) if baud else None
    return VerifyReport(model_id=model.model_id, target=target or info.target, transport=transport,
                        n_vectors=len(vectors.X), kinds=kinds, checks=checks, cycles=cycles,
                        clock_unit=info.clock_unit, vectors_per_second=rate, bytes_per_vector=per_vector,
                        link_limit=limit, device=dict(info.fields), seconds=time.perf_counter() - start,
                        by_kind=by_kind, **figures)


def format_report(r: VerifyReport) -> str:
    """The short table `tinygmm verify` prints."""
    lines = [f"model {r.model_id} on {r.target} via {r.transport}: {r.n_vectors} vectors "
             f"({', '.join(f'{k} {n}' for k, n in r.kinds.items())})"]
    width = max(len(c.name) for c in r.checks)
    for c in r.checks:
        mark = "ok  " if c.passed else "FAIL"
        extra = f"  e.g. vectors {c.examples}" if c.failures else ""
        lines.append(f"  {mark} {c.name.ljust(width)}  {c.checked - c.failures}/{c.checked}{extra}")
    lines.append(f"  certified float32 ties: {r.certified_ties}")
    lines.append(f"  max error vs float64: log_joint {r.max_log_joint_error:.3g} ({r.max_log_joint_error_ratio:.2f} of bound), "
                 f"score {r.max_score_error:.3g} ({r.max_score_error_ratio:.2f} of bound), proba {r.max_proba_error:.2g}")
    lines.append("  bit-exact with the float32 twin: "
                 + ", ".join(f"{op} {share:.1%}" for op, share in r.bit_exact.items()))
    if not r.cycles:
        lines.append("  on the device per call: not timed (no cycle-accurate clock on this transport)")
    else:
        lines.append("  on the device per call: " + ", ".join(f"{op} {v:,.0f} {r.clock_unit}" for op, v in r.cycles.items()))
    link = ", ".join(f"{op} {r.vectors_per_second[op]:,.0f}/s ({r.bytes_per_vector[op]:.1f} B/vector)"
                     for op in ("predict", "score"))
    limit = f" against a raw-payload limit of {r.link_limit:,.0f}/s" if r.link_limit else ""
    lines.append(f"  link: {link}{limit}")
    lines.append(("PASS" if r.passed else "FAIL") + f" in {r.seconds:.2f} s")
    return "\n".join(lines)
