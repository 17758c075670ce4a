"""Compare what a device computes with what the host computes, on a project's test vectors.

For every vector the device's status must equal the float32 twin's (NaN/Inf inputs must get an
error reply). Where both answer, against the float64 model: the predicted component must equal
float64's wherever float32 cannot tie (``twin.certified_argmax``); log-joints and scores must lie
within the documented float32 error bounds (``twin.log_joint_error_bound``,
``twin.score_error_bound``); probabilities within PROBA_TOLERANCE; the anomaly flag must equal
float64's wherever the score is further from the threshold than its bound. The share of outputs
equal bit for bit to the float32 twin is reported, not required (exp/log differ between libms).

The twin and the float64 reference are computed once per run (:class:`Reference`) and sliced for
the checks of each kind of vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device.fold import DeviceModel
from ..device.twin import DeviceOutputs, DeviceTwin, certified_argmax, log_joint_error_bound, score_error_bound
from ..status import OK, OPS
from .report import Check, PerVector
from .vectors import Vectors

# The requirement for probabilities: absolute difference from float64.
PROBA_TOLERANCE = 1e-5
CHECK_NAMES = (
    *(f"{op}: status equals the twin's" for op in OPS),
    "predict: equals float64 outside certified float32 ties",
    "log_joint: within the float32 error bound of float64",
    "score: within the float32 error bound of float64",
    f"proba: within {PROBA_TOLERANCE:g} of float64",
    "anomaly: equals float64 where the score is clear of the threshold",
)


@dataclass
class Reference:
    """What a correct device answers on a batch of inputs: the float32 twin's outputs, and the float64
    model's with the float32 error bound of each (inf/NaN where the input is not finite)."""

    twin: DeviceOutputs
    log_joint: np.ndarray  # (N, K) float64 log-joints at the float32 inputs
    log_joint_bound: np.ndarray  # (N, K)
    top: np.ndarray  # (N,) float64 argmax (-1 for non-finite inputs)
    certified: np.ndarray  # (N,) bool: float32 must predict ``top``
    score: np.ndarray  # (N,)
    score_bound: np.ndarray  # (N,)
    proba: np.ndarray  # (N, K)
    threshold: float | None  # the float32 anomaly threshold the device compares with

    @classmethod
    def of(cls, dev: DeviceModel, X: np.ndarray) -> Reference:
        N, K = len(X), dev.n_components
        twin = DeviceTwin(dev).evaluate(X)
        with np.errstate(all="ignore"):
            finite = np.all(np.isfinite(X), axis=1)
            lj64 = np.full((N, K), np.nan)
            lj64[finite] = dev.source.log_joint(X[finite].astype(np.float64))
            bound = np.full((N, K), np.inf)
            bound[finite] = log_joint_error_bound(dev, X[finite])
            top = np.full(N, -1)
            certified = np.zeros(N, bool)
            top[finite], certified[finite] = certified_argmax(dev, X[finite], lj64[finite])
            mx = np.max(lj64, axis=1)
            score64 = mx + np.log(np.sum(np.exp(lj64 - mx[:, None]), axis=1))
            s_bound = score_error_bound(bound, score64, K)
            proba64 = np.exp(lj64 - score64[:, None])
        thr = None if dev.anomaly_threshold is None else float(dev.anomaly_threshold)
        return cls(twin, lj64, bound, top, certified, score64, s_bound, proba64, thr)

    def twin_status(self, op: str) -> np.ndarray:
        return getattr(self.twin, f"status_{op}")


def _rows(device: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    return {op: (s[idx], v[idx]) for op, (s, v) in device.items()}


def compare(dev: DeviceModel, vectors: Vectors, device: dict[str, Any], reference: Reference | None = None,
            rows: np.ndarray | None = None) -> tuple[list[Check], dict[str, Any]]:
    """Checks and figures for device outputs ``device[op] = (status (N,), values)`` from Device.batch.

    ``reference`` is ``Reference.of(dev, vectors.X)``, computed here when not given; ``rows``
    restricts the comparison to those vectors (their indices stay global in the examples)."""
    ref = reference if reference is not None else Reference.of(dev, vectors.X)
    idx = np.arange(len(vectors.X)) if rows is None else np.asarray(rows)
    out = _rows(device, idx)
    N = len(idx)
    checks: list[Check] = []
    failed = np.zeros(N, bool)  # some check failed on this vector

    def add(name: str, checked: np.ndarray, fails: np.ndarray, detail: str = "") -> None:
        bad = np.flatnonzero(fails & checked)
        checks.append(Check(name, int(checked.sum()), int(bad.size), detail, idx[bad[:10]].tolist()))
        failed[checked & fails] = True

    twin_status = {op: ref.twin_status(op)[idx] for op in OPS}
    every = np.ones(N, bool)
    for op in OPS:
        add(f"{op}: status equals the twin's", every, out[op][0] != twin_status[op],
            "NaN/Inf inputs get an error reply; overflow where float32 overflows")
    answered = {op: (out[op][0] == OK) & (twin_status[op] == OK) for op in OPS}
    lj64, bound, top, certified = ref.log_joint[idx], ref.log_joint_bound[idx], ref.top[idx], ref.certified[idx]
    score64, s_bound, proba64 = ref.score[idx], ref.score_bound[idx], ref.proba[idx]

    label = out["predict"][1]
    ok = answered["predict"]
    add("predict: equals float64 outside certified float32 ties", ok & certified,
        label != top, f"{int((ok & ~certified).sum())} certified ties not compared")
    dev_lj = out["log_joint"][1].astype(np.float64)
    ok = answered["log_joint"]
    with np.errstate(invalid="ignore"):
        lj_err = np.where(ok[:, None], np.abs(dev_lj - lj64), 0.0)
        lj_ratio = np.where(ok[:, None], lj_err / bound, 0.0)
    add("log_joint: within the float32 error bound of float64", ok,
        np.any(lj_err > bound, axis=1), "bound: twin.log_joint_error_bound")
    dev_score = out["score"][1].astype(np.float64)
    ok = answered["score"]
    s_err = np.where(ok, np.abs(dev_score - score64), 0.0)
    add("score: within the float32 error bound of float64", ok, s_err > s_bound,
        "bound: twin.score_error_bound")
    dev_p = out["proba"][1].astype(np.float64)
    ok = answered["proba"]
    p_err = np.where(ok[:, None], np.abs(dev_p - proba64), 0.0)
    add(f"proba: within {PROBA_TOLERANCE:g} of float64", ok,
        np.any(p_err > PROBA_TOLERANCE, axis=1))
    ok = answered["anomaly"]
    if ref.threshold is not None:
        clear = np.abs(score64 - ref.threshold) > s_bound
        add("anomaly: equals float64 where the score is clear of the threshold", ok & clear,
            out["anomaly"][1] != (score64 < ref.threshold))
    per_vector = PerVector([vectors.kinds[i] for i in idx], np.where(answered["score"], score64, np.nan),
                           np.where(answered["score"], dev_score, np.nan), s_bound, failed,
                           answered["predict"] & ~certified)

    def share(op: str, same: np.ndarray) -> float:
        n = int(answered[op].sum())
        return float(same[answered[op]].sum() / n) if n else 1.0

    t = ref.twin
    bits = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)  # noqa: E731
    bit_exact = {
        "predict": share("predict", label == t.label[idx]),
        "log_joint": share("log_joint", np.all(bits(out["log_joint"][1]) == bits(t.log_joint[idx]), axis=1)),
        "score": share("score", bits(out["score"][1]) == bits(t.score[idx])),
        "proba": share("proba", np.all(bits(out["proba"][1]) == bits(t.proba[idx]), axis=1)),
        "anomaly": share("anomaly", out["anomaly"][1] == t.anomaly[idx]),
    }
    figures = dict(
        certified_ties=int((answered["predict"] & ~certified).sum()),
        max_log_joint_error=float(lj_err.max(initial=0.0)),
        max_log_joint_error_ratio=float(np.nanmax(lj_ratio, initial=0.0)),
        max_score_error=float(s_err.max(initial=0.0)),
        max_score_error_ratio=float(np.max(np.where(answered["score"], s_err / s_bound, 0.0), initial=0.0)),
        max_proba_error=float(p_err.max(initial=0.0)), bit_exact=bit_exact, per_vector=per_vector)
    return checks, figures


def compare_by_kind(dev: DeviceModel, vectors: Vectors, device: dict[str, Any],
                    reference: Reference) -> dict[str, list[Check]]:
    """``compare`` on the vectors of each kind separately, from the run's one reference."""
    kinds = np.asarray(vectors.kinds)
    return {kind: compare(dev, vectors, device, reference, np.flatnonzero(kinds == kind))[0]
            for kind in dict.fromkeys(vectors.kinds)}
