"""Compare what a device computes with what the host computes, on a project's test vectors.

For every vector the device's status must equal the float32 twin's (NaN/Inf inputs must get an
error reply). Where both answer, each output is compared with the float64 model's, its error
against a bound derived from the float32 error analysis of the device (``device/twin.py``,
docs/verify.md): the predicted component must be float64's or a rival within the bound on their
gap (``twin.prediction_gaps``); log-joints, scores and probabilities within
``twin.log_joint_error_bound``, ``twin.score_error_bound``, ``twin.proba_error_bound``; the
anomaly flag must equal float64's wherever the score is further from the threshold than
``twin.anomaly_margin``. A check fails where an error exceeds its bound; each reports its largest
error as a share of the bound. The share of outputs equal bit for bit to the float32 twin is
reported, not required (exp/log differ between libms).

The twin and the float64 reference are computed once per run (:class:`Reference`) and sliced for
the checks of each kind of vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device.fold import DeviceModel
from ..device.twin import (
    DeviceOutputs, DeviceTwin, anomaly_margin, log_joint_error_bound, logsumexp, prediction_gaps, proba_error_bound,
    score_error_bound,
)
from ..status import OK, OPS
from .report import Check, PerVector
from .vectors import Vectors

# The check on each output's status (format with op=...).
STATUS_CHECK = "{op}: status equals the twin's"
# The check on each output's values, against float64 (the single source of these names).
VALUE_CHECKS = {
    "predict": "predict: equals float64 up to certified float32 ties",
    "log_joint": "log_joint: within the float32 error bound of float64",
    "score": "score: within the float32 error bound of float64",
    "proba": "proba: within the float32 error bound of float64",
    "anomaly": "anomaly: equals float64 where the score is clear of the threshold",
}
CHECK_NAMES = (*(STATUS_CHECK.format(op=op) for op in OPS), *VALUE_CHECKS.values())
# Failing vectors named per check (the report's examples).
N_EXAMPLES = 10


@dataclass
class Reference:
    """What a correct device answers on a batch of inputs: the float32 twin's outputs, and the float64
    model's with the float32 error bound of each (inf/NaN where the input is not finite)."""

    twin: DeviceOutputs
    log_joint: np.ndarray  # (N, K) float64 log-joints at the float32 inputs
    log_joint_bound: np.ndarray  # (N, K)
    top: np.ndarray  # (N,) float64 argmax (-1 for non-finite inputs)
    gap: np.ndarray  # (N, K) float64 log-joint of the top minus each (tied: from the linear scores)
    gap_bound: np.ndarray  # (N, K) the gap within which the device may predict k
    score: np.ndarray  # (N,)
    score_bound: np.ndarray  # (N,)
    proba: np.ndarray  # (N, K)
    proba_bound: np.ndarray  # (N, K)
    threshold: float | None  # the model's float64 anomaly threshold
    anomaly_margin: np.ndarray | None  # (N,) where the flag is compared: |score - threshold| > margin

    @classmethod
    def of(cls, dev: DeviceModel, X: np.ndarray) -> Reference:
        N, K = len(X), dev.n_components
        twin = DeviceTwin(dev).evaluate(X)
        finite = np.all(np.isfinite(X), axis=1)
        lj64 = np.full((N, K), np.nan)
        bound = np.full((N, K), np.inf)
        top = np.full(N, -1)
        gap, gap_bound = np.full((N, K), np.nan), np.full((N, K), np.inf)
        with np.errstate(all="ignore"):
            lj64[finite] = dev.source.log_joint(X[finite].astype(np.float64))
            bound[finite] = log_joint_error_bound(dev, X[finite])
            top[finite], gap[finite], gap_bound[finite] = prediction_gaps(dev, X[finite], lj64[finite], bound[finite])
            score64 = logsumexp(lj64)
            s_bound = score_error_bound(bound, lj64, K, score64)
            proba64 = np.exp(lj64 - score64[:, None])
            p_bound = proba_error_bound(bound, lj64, K)
        thr = dev.source.anomaly_threshold
        margin = None if thr is None else anomaly_margin(s_bound, thr)
        return cls(twin, lj64, bound, top, gap, gap_bound, score64, s_bound, proba64, p_bound,
                   None if thr is None else float(thr), margin)

    @property
    def certified(self) -> np.ndarray:
        """(N,) bool: every rival's gap exceeds its bound, so the device must predict ``top``."""
        with np.errstate(invalid="ignore"):
            clear = (self.gap > self.gap_bound) | (np.arange(self.gap.shape[1]) == self.top[:, None])
        return (self.top >= 0) & np.all(clear, axis=1)

    def twin_status(self, op: str) -> np.ndarray:
        return getattr(self.twin, f"status_{op}")


def twin_answers(t: DeviceOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The twin's outputs in the form ``compare`` takes (Device.batch's): what a device that computes
    exactly as the twin answers."""
    return {op: (getattr(t, f"status_{op}"), getattr(t, "label" if op == "predict" else op)) for op in OPS}


def _rows(device: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    return {op: (s[idx], v[idx]) for op, (s, v) in device.items()}


def error_share(err: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """err / bound, 0 where the error is 0 (also against a zero or infinite bound)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(err == 0, 0.0, err / bound)


def compare(dev: DeviceModel, vectors: Vectors, device: dict[str, Any], reference: Reference | None = None,
            rows: np.ndarray | None = None) -> tuple[list[Check], dict[str, Any]]:
    """Checks and figures for device outputs ``device[op] = (status (N,), values)`` from Device.batch.

    ``reference`` is ``Reference.of(dev, vectors.X)``, computed here when not given; ``rows``
    restricts the comparison to those vectors (their indices stay global in the examples)."""
    ref = reference if reference is not None else Reference.of(dev, vectors.X)
    idx = np.arange(len(vectors.X)) if rows is None else np.asarray(rows)
    out = _rows(device, idx)
    N, K = len(idx), dev.n_components
    checks: list[Check] = []
    failed = np.zeros(N, bool)  # some check failed on this vector

    def add(name: str, checked: np.ndarray, fails: np.ndarray, detail: str = "",
            err: np.ndarray | None = None, ratio: np.ndarray | None = None) -> None:
        """One check: ``fails`` where checked; ``err`` and ``ratio`` (error / bound, per vector) unless exact."""
        bad = np.flatnonzero(fails & checked)[:N_EXAMPLES]
        worst = largest = None
        if ratio is not None and err is not None:  # a NaN answer is an infinite error
            worst = float(np.max(np.where(checked, np.nan_to_num(ratio, nan=np.inf), 0.0), initial=0.0))
            largest = float(np.max(np.where(checked, np.nan_to_num(err, nan=np.inf), 0.0), initial=0.0))
        checks.append(Check(name, int(checked.sum()), int((fails & checked).sum()), detail, idx[bad].tolist(),
                            [vectors.kinds[i] for i in idx[bad]], worst, largest))
        failed[checked & fails] = True

    twin_status = {op: ref.twin_status(op)[idx] for op in OPS}
    every = np.ones(N, bool)
    for op in OPS:
        add(STATUS_CHECK.format(op=op), every, out[op][0] != twin_status[op],
            "NaN/Inf inputs get an error reply; overflow where float32 overflows")
    answered = {op: (out[op][0] == OK) & (twin_status[op] == OK) for op in OPS}
    n = np.arange(N)
    lj64 = ref.log_joint[idx]

    # predict: the float64 gap from the top to the predicted component, against its bound
    label = np.asarray(out["predict"][1])
    ok = answered["predict"]
    valid = ok & (label >= 0) & (label < K)
    safe = np.where(valid, label, 0)
    with np.errstate(invalid="ignore"):
        gap = np.where(valid, ref.gap[idx][n, safe], np.inf)
        gap = np.where(ok, gap, 0.0)
        gap_bound = np.where(valid, ref.gap_bound[idx][n, safe], 0.0)
        ties = ok & ~ref.certified[idx]
    add(VALUE_CHECKS["predict"], ok, gap > gap_bound,
        f"{int(ties.sum())} certified ties; error: the float64 gap from the top to the predicted component, "
        "bound: twin.prediction_gaps", gap, error_share(gap, gap_bound))

    def within(op: str, host: np.ndarray, bound: np.ndarray, detail: str) -> None:
        ok = answered[op]
        dev_v = np.asarray(out[op][1], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            err = np.abs(dev_v - host)
            if err.ndim == 2:  # per vector: its worst component
                fails = np.any(~(err <= bound), axis=1)
                ratio, err = np.max(error_share(err, bound), axis=1), np.max(err, axis=1)
            else:
                fails, ratio = ~(err <= bound), error_share(err, bound)
        add(VALUE_CHECKS[op], ok, fails, detail, np.where(ok, err, 0.0), np.where(ok, ratio, 0.0))

    within("log_joint", lj64, ref.log_joint_bound[idx], "bound: twin.log_joint_error_bound")
    score64, s_bound = ref.score[idx], ref.score_bound[idx]
    within("score", score64, s_bound, "bound: twin.score_error_bound")
    within("proba", ref.proba[idx], ref.proba_bound[idx], "bound: twin.proba_error_bound")

    if ref.threshold is not None and ref.anomaly_margin is not None:
        ok = answered["anomaly"]
        with np.errstate(invalid="ignore"):
            wrong = ok & (np.asarray(out["anomaly"][1]).astype(bool) != (score64 < ref.threshold))
            dist = np.where(wrong, np.abs(score64 - ref.threshold), 0.0)
        margin = ref.anomaly_margin[idx]
        add(VALUE_CHECKS["anomaly"], ok, dist > margin,
            "error: the float64 score's distance from the threshold where the flag differs, "
            "bound: twin.anomaly_margin", dist, error_share(dist, margin))
    per_vector = PerVector([vectors.kinds[i] for i in idx], np.where(answered["score"], score64, np.nan),
                           np.where(answered["score"], np.asarray(out["score"][1], dtype=np.float64), np.nan),
                           s_bound, failed, ties)

    def share(op: str, same: np.ndarray) -> float:
        k = int(answered[op].sum())
        return float(same[answered[op]].sum() / k) if k else 1.0

    t = ref.twin
    bits = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)  # noqa: E731
    bit_exact = {
        "predict": share("predict", label == t.label[idx]),
        "log_joint": share("log_joint", np.all(bits(out["log_joint"][1]) == bits(t.log_joint[idx]), axis=1)),
        "score": share("score", bits(out["score"][1]) == bits(t.score[idx])),
        "proba": share("proba", np.all(bits(out["proba"][1]) == bits(t.proba[idx]), axis=1)),
        "anomaly": share("anomaly", out["anomaly"][1] == t.anomaly[idx]),
    }
    figures = dict(certified_ties=int(ties.sum()), bit_exact=bit_exact, per_vector=per_vector)
    return checks, figures


def compare_by_kind(dev: DeviceModel, vectors: Vectors, device: dict[str, Any],
                    reference: Reference) -> dict[str, list[Check]]:
    """``compare`` on the vectors of each kind separately, from the run's one reference."""
    kinds = np.asarray(vectors.kinds)
    return {kind: compare(dev, vectors, device, reference, np.flatnonzero(kinds == kind))[0]
            for kind in dict.fromkeys(vectors.kinds)}
