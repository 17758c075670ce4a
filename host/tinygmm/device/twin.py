"""The float32 device twin: what the C core outputs, computed in NumPy, many points at once.

Operation for operation as firmware/lib/tinygmm/tinygmm.h (same rounding, same order,
sums left to right), so with the C core built with -ffp-contract=off on a target with
IEEE single-precision arithmetic (x86-64 SSE, the ESP32 FPU, avr-libc's soft float for
+ - *), statuses, labels and log-joints are equal bit for bit. The log-joint path uses
no libm. ``score`` and ``predict_proba`` call exp/log, whose last bit differs between
libms (glibc/avr-libc expf vs NumPy's): bounded by ``score_twin_tolerance`` and
``proba_twin_tolerance``.

The C core's pruning (early exit) is exact, so the twin evaluates every row of every
component and takes the argmax (lowest index on ties) -- the same answer. For tied models
``predict`` is the argmax of the linear score ``t_k = tied_bias_k + b_k . w`` (the common
``-||w||^2`` dropped), mirrored by ``_linear_score``.

``log_joint_error_bound`` bounds the float32 log-joint's distance from the float64
log-joint of the original model (the fidelity of the device, not just of the twin);
``score_error_bound``, ``proba_error_bound``, ``prediction_gaps`` and ``anomaly_margin``
follow from it, each adding the rounding of its own float32 steps (docs/verify.md derives them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..status import ERR_FEATURES, ERR_NO_THRESHOLD, ERR_NONFINITE, ERR_OVERFLOW, OK
from .fold import DeviceModel


# Unit roundoff of float32 (round to nearest).
U32 = 2.0**-24
# TINYGMM_LSE_SKIP in tinygmm.h: terms exp(d), d < -17, cannot change a float32 sum >= 1.
LSE_SKIP = np.float32(-17.0)
# The first-order error analysis below drops products of two roundings (relative size
# ~1e-7 of the bound) and the float64 reference's own rounding (~1e-16): a factor 2 covers both.
BOUND_SAFETY = 2.0


def _gamma(n: np.ndarray | int) -> np.ndarray:
    """Higham's gamma_n = n u / (1 - n u): relative error of n chained float32 operations."""
    n = np.asarray(n, dtype=np.float64)
    return n * U32 / (1.0 - n * U32)


@dataclass
class DeviceOutputs:
    """Everything the device API returns for a batch; values are meaningful where the status is OK."""

    status_predict: np.ndarray  # (N,) int
    label: np.ndarray  # (N,) int, -1 where not OK
    status_log_joint: np.ndarray  # (N,)
    log_joint: np.ndarray  # (N, K) float32 (-inf for overflowed components)
    status_score: np.ndarray
    score: np.ndarray  # (N,) float32
    status_proba: np.ndarray
    proba: np.ndarray  # (N, K) float32
    status_anomaly: np.ndarray
    anomaly: np.ndarray  # (N,) bool


class DeviceTwin:
    """The float32 device twin of a folded model (``fold(model)``)."""

    def __init__(self, dev: DeviceModel):
        self.device = dev

    # -- the device computation -------------------------------------------------------
    def _prepare(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(status (N,), z (N, D) float32) as tinygmm__prepare."""
        dev = self.device
        x = np.asarray(X, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        N = x.shape[0]
        if x.shape[1] != dev.n_features:
            return np.full(N, ERR_FEATURES), np.zeros((N, dev.n_features), np.float32)
        status = np.where(np.all(np.isfinite(x), axis=1), OK, ERR_NONFINITE)
        x = x[:, dev.order]  # device order: feature i is input feature (i + lead) mod D
        with np.errstate(over="ignore", invalid="ignore"):
            z = x - dev.centre
            if dev.inv_scale is not None:
                z = z * dev.inv_scale
            if dev.covariance_type == "tied":
                z = _lower_matvec(dev.factor, z)
        status = np.where((status == OK) & ~np.all(np.isfinite(z), axis=1), ERR_OVERFLOW, status)
        return status, z

    def _log_joint(self, z: np.ndarray) -> np.ndarray:
        """(N, K) float32 log-joints of centred inputs (-inf where the quadratic form overflowed)."""
        dev = self.device
        D = dev.n_features
        ct = dev.covariance_type
        s = np.zeros((z.shape[0], dev.n_components), np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            if ct == "full":
                w = _lower_matvec_per_component(dev.factor, z)  # (N, K, D), rows as the device
            for i in range(D):
                if ct == "full":
                    y = w[:, :, i] - dev.offset[:, i]
                elif ct == "tied":
                    y = z[:, i, None] - dev.offset[:, i]
                elif ct == "diag":
                    y = (z[:, i, None] - dev.offset[:, i]) * dev.factor[:, i]
                else:
                    y = z[:, i, None] - dev.offset[:, i]
                s = s + y * y
            lj = dev.bias - s * dev.factor if ct == "spherical" else dev.bias - s
        return np.where(np.isnan(lj), np.float32(-np.inf), lj)

    def _linear_score(self, w: np.ndarray) -> np.ndarray:
        """(N, K) float32 linear scores of a tied model, t_k = c_k + sum_i b_ki w_i left to right
        (tinygmm__predict_tied); w = A z as _prepare leaves it."""
        dev = self.device
        t = np.broadcast_to(dev.tied_bias, (w.shape[0], dev.n_components)).astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(dev.n_features):
                t = t + dev.offset[:, i] * w[:, i, None]
        return t

    def evaluate(self, X: np.ndarray, threshold: float | None = None) -> DeviceOutputs:
        """All outputs of the device API for each row of ``X`` (raw, unscaled features)."""
        dev = self.device
        K = dev.n_components
        status, z = self._prepare(X)
        N = status.shape[0]
        ok = status == OK
        lj = np.full((N, K), np.nan, np.float32)
        lj[ok] = self._log_joint(z[ok])
        top = np.argmax(np.where(ok[:, None], lj, 0), axis=1)  # first maximum: lowest index on ties
        best = lj[np.arange(N), top]
        overflow_all = ok & (best == -np.inf)
        st_lj = np.where(ok & np.any(lj == -np.inf, axis=1), ERR_OVERFLOW, status)
        st = np.where(overflow_all, ERR_OVERFLOW, status)
        good = st == OK
        if dev.covariance_type == "tied":  # predict: argmax of the linear score, OVERFLOW if the top is +inf or NaN
            t = np.zeros((N, K), np.float32)
            t[ok] = self._linear_score(z[ok])
            with np.errstate(invalid="ignore"):
                st_predict = np.where(ok & ~np.isfinite(np.max(t, axis=1)), ERR_OVERFLOW, status)  # NaN: max NaN
            label = np.where(st_predict == OK, np.argmax(t, axis=1), -1)
        else:
            st_predict, label = st, np.where(good, top, -1)

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            d = lj - best[:, None]
            ssum = np.ones(N, np.float32)
            for k in range(K):
                add = good & (k != top) & ~(d[:, k] < LSE_SKIP)
                ssum = np.where(add, ssum + np.exp(np.where(add, d[:, k], 0)), ssum)
            score = np.where(ssum == 1, best, best + np.log(ssum)).astype(np.float32)

            e = np.where(np.arange(K) == top[:, None], np.float32(1), np.exp(d)).astype(np.float32)
            psum = np.ones(N, np.float32)
            for k in range(K):
                psum = np.where(k != top, psum + e[:, k], psum)
            proba = (e / psum[:, None]).astype(np.float32)

        thr = dev.anomaly_threshold if threshold is None else np.float32(threshold)
        if thr is None:
            st_anom = np.full(N, ERR_NO_THRESHOLD)
            anomaly = np.zeros(N, bool)
        else:
            st_anom = st
            anomaly = good & (score < thr)
        return DeviceOutputs(
            status_predict=st_predict,
            label=label,
            status_log_joint=st_lj,
            log_joint=np.where(((st_lj == OK) | (st_lj == ERR_OVERFLOW))[:, None], lj, np.nan).astype(np.float32),
            status_score=st,
            score=np.where(good, score, np.nan).astype(np.float32),
            status_proba=st,
            proba=np.where(good[:, None], proba, np.nan).astype(np.float32),
            status_anomaly=st_anom,
            anomaly=anomaly & (st_anom == OK),
        )

    # -- sklearn-style conveniences (values only; -1 / NaN where the device reports an error) --
    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.evaluate(X).label

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        return self.evaluate(X).log_joint

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.evaluate(X).score

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.evaluate(X).proba


def _lower_matvec(packed: np.ndarray, z: np.ndarray) -> np.ndarray:
    """w = A z for one packed lower-triangular A, each row summed left to right in float32."""
    D = z.shape[1]
    w = np.empty_like(z)
    p = 0
    for i in range(D):
        acc = packed[p] * z[:, 0]
        for j in range(1, i + 1):
            acc = acc + packed[p + j] * z[:, j]
        w[:, i] = acc
        p += i + 1
    return w


def _lower_matvec_per_component(packed: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, K, D): A_k z for each component's packed factor (K, P), rows left to right."""
    N, D = z.shape
    K = packed.shape[0]
    w = np.empty((N, K, D), np.float32)
    p = 0
    for i in range(D):
        acc = packed[:, p] * z[:, 0, None]
        for j in range(1, i + 1):
            acc = acc + packed[:, p + j] * z[:, j, None]
        w[:, :, i] = acc
        p += i + 1
    return w


# -- tolerances and error bounds ------------------------------------------------------------


def score_twin_tolerance(score: np.ndarray, n_components: int) -> np.ndarray:
    """|C score - twin score| allowed: exp/log from different libms.

    Each of glibc's/avr-libc's and NumPy's expf/logf is within 1 ulp of the true value, so
    two of them differ by <= 2 ulps: each term exp(d) <= 1 by <= 4u, the sum S >= 1 (K
    roundings that may go either way) by <= (4 + 2K)u relative, log S by that plus 2 ulps,
    and the final best + log S by one ulp of the result.
    """
    score = np.abs(np.asarray(score, dtype=np.float64))
    return 2.0 * np.spacing(score.astype(np.float32)).astype(np.float64) + (2.0 * n_components + 8.0) * 2.0 * U32


def proba_twin_tolerance(proba: np.ndarray, n_components: int) -> np.ndarray:
    """|C proba - twin proba| allowed: each exp term by <= 4u relative, their sum by
    <= (4 + 2K)u, the quotient by one more rounding; plus FLT_MIN for subnormal tails."""
    proba = np.abs(np.asarray(proba, dtype=np.float64))
    return proba * (2.0 * n_components + 10.0) * 2.0 * U32 + float(np.finfo(np.float32).tiny)


def log_joint_error_bound(dev: DeviceModel, X: np.ndarray) -> np.ndarray:
    """(N, K) bound on |float32 device log-joint - float64 log-joint of the model| at float32 inputs.

    First-order rounding analysis of the device formulas (u = 2^-24, gamma_n = nu/(1-nu)):
    with z the centred input, m_k the component mean (both relative to the centre), d = z - m_k
    and y the exact rows of the quadratic form,
      full/tied  |dy_i| <= gamma_{i+2} sum_j |A_ij z_j| + u |b_ki| + u |y_i| + u sum_j |A_ij d_j|
                 (dot product of i+1 terms and the rounding of z; b; the subtraction; the rounding of A)
      diag       |dy_i| <= u |a_i| (|z_i| + |m_i|) + 3u |y_i|
      spherical  |dd_i| <= e_z |z_i| + u |m_i| + u |d_i|  (e_z = u, or gamma_3 when the input is scaled)
    then |ds| <= sum_i (2|y_i| |dy_i| + dy_i^2) + gamma_{D+1} s (squares, D additions),
    spherical adds 2u h s (rounding of h and of s*h), and the bias adds u |bias| + u(|bias| + s).
    The result is multiplied by BOUND_SAFETY.
    """
    ex = dev.exact
    x = np.asarray(X, dtype=np.float32).astype(np.float64)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    x = x[:, dev.order]  # the exact parameters are in device order
    D = dev.n_features
    z = x - ex.centre
    if ex.inv_scale is not None:
        z = z * ex.inv_scale
    d = z[:, None, :] - ex.means[None, :, :]  # (N, K, D)
    ct = ex.covariance_type
    if ct in ("full", "tied"):
        A = ex.factor if ct == "full" else ex.factor[None]
        absA = np.abs(A)
        y = np.einsum("kij,nkj->nki", A, d)
        Az = np.einsum("kij,nj->nki", absA, np.abs(z))
        Ad = np.einsum("kij,nkj->nki", absA, np.abs(d))
        b = np.einsum("kij,kj->ki", A, ex.means)
        dy = _gamma(np.arange(D) + 2) * Az + U32 * np.abs(b)[None] + U32 * np.abs(y) + U32 * Ad
    elif ct == "diag":
        a = ex.factor
        y = d * a[None]
        dy = U32 * np.abs(a)[None] * (np.abs(z)[:, None, :] + np.abs(ex.means)[None]) + 3 * U32 * np.abs(y)
    else:
        e_z = _gamma(3) if ex.inv_scale is not None else U32
        y = d
        dy = e_z * np.abs(z)[:, None, :] + U32 * np.abs(ex.means)[None] + U32 * np.abs(d)
    s = np.sum(y * y, axis=2)
    ds = np.sum(2 * np.abs(y) * dy + dy * dy, axis=2) + _gamma(D + 1) * s
    if ct == "spherical":
        h = ex.factor[None]
        ds, s = h * ds + 2 * U32 * h * s, h * s
    bias = np.abs(ex.bias)[None]
    return BOUND_SAFETY * (U32 * bias + ds + U32 * (bias + s))


def logsumexp(a: np.ndarray) -> np.ndarray:
    """log sum_k exp(a_k) along the last axis, in float64 (-inf where every term is -inf)."""
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(a, axis=-1)
        m = np.where(np.isfinite(m), m, 0.0)
        return m + np.log(np.sum(np.exp(a - m[..., None]), axis=-1))


def lse_error_bound(lj_bound: np.ndarray, log_joint64: np.ndarray, lse64: np.ndarray) -> np.ndarray:
    """(N,) bound on |LSE(lj32) - LSE(lj64)| where |lj32_k - lj64_k| <= lj_bound_k (``lse64``:
    LSE(lj64), which the caller has).

    log-sum-exp increases with each argument, so over those errors it moves most at lj64 + bound:
    by log sum_k p_k exp(bound_k) (p the float64 posteriors), exactly, and down by no more
    (Jensen). This is <= max_k bound_k, and ~ sum_k p_k bound_k when the bounds are small: the loose
    bound of a component with no posterior weight (far from the point) does not count.
    """
    return logsumexp(log_joint64 + lj_bound) - lse64


def score_error_bound(lj_bound: np.ndarray, log_joint64: np.ndarray, n_components: int,
                      score64: np.ndarray | None = None) -> np.ndarray:
    """(N,) bound on |device score - float64 score| given the log-joint bounds and the float64
    log-joints (N, K) (``score64``: their log-sum-exp, the float64 score, when already computed).

    The log-joint errors move log-sum-exp by at most ``lse_error_bound``; the float32 log-sum-exp
    adds: dropped terms (each < 2^-24 of the sum, at most K of them: Ku), the K additions (Ku),
    exp and its argument (2u + 17u per kept term, relative to S), log (one ulp of log S <=
    u log K + u), and the final addition (u |score|). Together: lse_error_bound + u (|score| + 2K
    + 24 + log K), the rounding part doubled.
    """
    K = n_components
    score64 = logsumexp(log_joint64) if score64 is None else score64
    rounding = BOUND_SAFETY * U32 * (np.abs(score64) + 2 * K + 24 + np.log(K))
    return lse_error_bound(lj_bound, log_joint64, score64) + rounding


# The smallest normal float32: a subnormal (or, on a libm that flushes them, zeroed) exp term or
# quotient is off by less than this, absolutely.
FLT_MIN = float(np.finfo(np.float32).tiny)


def _logsumexp_without_each(a: np.ndarray) -> np.ndarray:
    """(N, K): log sum_{j != k} exp(a_j) for each k (-inf for K = 1)."""
    n = np.arange(a.shape[0])
    top = np.argmax(a, axis=1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m = a[n, top]
        m = np.where(np.isfinite(m), m, 0.0)
        t = np.exp(a - m[:, None])
        out = m[:, None] + np.log(np.sum(t, axis=1, keepdims=True) - t)  # >= the top's term 1: no cancellation
        rest = a.copy()
        rest[n, top] = -np.inf
        out[n, top] = logsumexp(rest)  # without the top: summed directly
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def proba_error_bound(lj_bound: np.ndarray, log_joint64: np.ndarray, n_components: int) -> np.ndarray:
    """(N, K) bound on |device proba - float64 proba| given the log-joint bounds and the float64
    log-joints (N, K).

    The device computes e_k = expf(fl(lj32_k - best)), S = 1 + sum_{k != top} e_k and fl(e_k / S).
    The rounding of the argument (u |d_k|, d_k = lj_k - best) and expf's (1 ulp: 2u) are errors of
    lj_k, so the terms are exactly exp(lj'_k - best) with |lj'_k - lj64_k| <= B_k = bound_k +
    u (|d_k| + 2) (doubled), and softmax(lj') lies in a box: its k-th entry increases with lj'_k
    and decreases with every other, so its extremes are, exactly,
      p+-_k = sigmoid(lj64_k +- B_k - log sum_{j != k} exp(lj64_j -+ B_j)),
    around p_k = sigmoid(lj64_k - log sum_{j != k} exp(lj64_j)). Then the K - 1 additions of
    positive terms (gamma_{K-1} relative to S) and the quotient (u) scale it by at most
    1 + gamma_{K-1} + u (doubled), and a subnormal (or flushed) term or quotient is off by
    < FLT_MIN absolutely, once in e_k and once in the quotient.
    """
    lj = np.asarray(log_joint64, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where(np.isfinite(lj), np.max(lj, axis=1, keepdims=True) - lj, 0.0)
        B = lj_bound + BOUND_SAFETY * U32 * (d + 2.0)
        p = _sigmoid(lj - _logsumexp_without_each(lj))
        hi = _sigmoid(lj + B - _logsumexp_without_each(lj - B))
        lo = _sigmoid(lj - B - _logsumexp_without_each(lj + B))
        bound = np.maximum(hi - p, p - lo) + BOUND_SAFETY * (_gamma(n_components - 1) + U32) * hi + 2 * FLT_MIN
    return np.where(np.isnan(bound), np.inf, bound)


def anomaly_margin(score_bound: np.ndarray, threshold: float) -> np.ndarray:
    """How far the float64 score must lie from the float64 threshold for the device's flag
    (float32 score < float32 threshold) to equal float64's: the score's bound plus the rounding
    of the threshold to float32 (known exactly)."""
    rounding = abs(float(np.float32(threshold)) - float(threshold))
    return np.asarray(score_bound, dtype=np.float64) + rounding


def _tied_exact(dev: DeviceModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z (N, D), w = A z (N, D), b = A m (K, D)) of a tied model in float64, from the exact parameters."""
    ex = dev.exact
    z = np.asarray(X, dtype=np.float32).astype(np.float64)[:, dev.order] - ex.centre
    return z, z @ ex.factor.T, ex.means @ ex.factor.T


def _tied_gaps(dev: DeviceModel, exact: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(top (N,), gap (N, K)) of a tied model: lj_top - lj_k = 2 (T_top - T_k) with the float64 linear
    scores T_k = (bias_k - ||b_k||^2) / 2 + b_k . w (``exact``: ``_tied_exact`` of the points). Far out
    ||w||^2 dwarfs the gaps (at x = 1e30, log-joints ~1e68 round to 1e52 in float64, gaps ~1e38); the
    linear scores keep them exact."""
    z, w, b = exact
    T = 0.5 * (dev.exact.bias - np.sum(b * b, axis=1)) + w @ b.T
    top = np.argmax(T, axis=1)
    return top, 2.0 * (T[np.arange(len(T)), top][:, None] - T)


def _tied_linear_bound(dev: DeviceModel, X: np.ndarray, top: np.ndarray,
                       exact: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(N, K) bound on |(lj_top - lj_k) - 2 (t_top - t_k)| for tied models, where t_k is the device's
    float32 linear score (``tinygmm__predict_tied``) and lj the float64 log-joints of the model
    (``exact``: ``_tied_exact(dev, X)`` when already computed).

    With w = fl(A32 z) (error dw, common to every component: |dw_i| <= c_i = gamma_{i+3} (|A| |z|)_i
    for the rounding of z, of A and the dot product), b_k the exact A m_k and its stored float32
    b32_k = b_k + e_k (|e_ki| <= f_ki = u (|b_ki| + (|A| |m_k|)_i): A's rounding and b's), and the
    exact identity lj_k = bias_k - ||A z||^2 + 2 b_k . A z - ||b_k||^2:
      2 t_k - lj_k - ||A z||^2 = 2 e_k . y_k - ||e_k||^2 + 2 b32_k . dw + (rounding of c_k and of t_k)
    with y_k = A z - b_k. ||A z||^2 drops out of the difference and b32 . dw leaves only
    (b32_k - b32_top) . dw, so far from the data, where |y| ~ |A z| is huge, the bound stays linear
    in |A z| like the true differences. Per component: |e_k . y_k| + ||e_k||^2 <= sum_i f_ki |y_ki| + f_ki^2,
    c_k = fl((bias_k - ||b32_k||^2) / 2) by u |c_k|, and t_k = c_k + b32_k0 w_0 + ... (left to right)
    by u sum_i |b32_ki w_i| (the D products) + u sum_i |s_ki| (the D additions, s_ki the partial
    sum after term i): near the data of a near-singular model |c_k| and b32_k . w are ~||w||^2 / 2
    with opposite signs, so the partial sums, not gamma_{D+1} (|c_k| + sum_i |b32_ki w_i|), are the
    scale of the roundings. Doubled (lj = 2t) and times BOUND_SAFETY.
    """
    ex = dev.exact
    z, Az, b = _tied_exact(dev, X) if exact is None else exact
    D = dev.n_features
    A = ex.factor
    absA = np.abs(A)
    c = _gamma(np.arange(D) + 3) * (np.abs(z) @ absA.T)  # (N, D): |dw|, common to all components
    b32 = dev.offset.astype(np.float64)  # what the device multiplies w by
    y = Az[:, None, :] - b[None]  # (N, K, D)
    f = U32 * (np.abs(b) + np.abs(ex.means) @ absA.T)  # (K, D)
    c32 = dev.tied_bias.astype(np.float64)  # (K,)
    terms = b32[None] * Az[:, None, :]  # (N, K, D): the products b32_ki w_i
    partial = c32[None, :, None] + np.cumsum(terms, axis=2)  # the sums after each term
    g = (np.einsum("kd,nkd->nk", f, np.abs(y)) + np.sum(f * f, axis=1)[None]
         + U32 * (np.abs(c32)[None] + np.sum(np.abs(terms) + np.abs(partial), axis=2)))  # (N, K)
    n = np.arange(z.shape[0])
    common = np.einsum("nd,nkd->nk", c, np.abs(b32[None] - b32[top][:, None, :]))
    return BOUND_SAFETY * 2.0 * (common + g + g[n, top][:, None])


def prediction_gaps(dev: DeviceModel, X: np.ndarray, log_joint64: np.ndarray,
                    log_joint_bound: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 top (N,), gap (N, K), bound (N, K)): the float64 gap lj_top - lj_k to each component,
    and the bound within which the device may predict k (0 for the top itself).

    The device predicts k only if its score for k is at least the top's; with the log-joints
    each within its bound, that needs gap_k <= bound_top + bound_k. Tied models compare the
    linear scores instead (``_tied_linear_bound`` bounds their difference's distance from the gap),
    and their gaps come from float64 linear scores (``_tied_gaps``), exact far out where the
    log-joints' rounding dwarfs them. ``log_joint_bound`` is ``log_joint_error_bound(dev, X)`` when
    already computed."""
    n = np.arange(len(X))
    if dev.covariance_type == "tied":  # predict compares the linear scores, not the log-joints
        exact = _tied_exact(dev, X)
        top, gap = _tied_gaps(dev, exact)
        pair = _tied_linear_bound(dev, X, top, exact)
    else:
        lj = np.asarray(log_joint64, dtype=np.float64)
        top = np.argmax(lj, axis=1)
        gap = lj[n, top][:, None] - lj
        bound = log_joint_error_bound(dev, X) if log_joint_bound is None else log_joint_bound
        pair = bound[n, top][:, None] + bound
    pair[n, top] = 0.0
    return top, gap, pair


def certified_argmax(dev: DeviceModel, X: np.ndarray, log_joint64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 argmax, certified) per point: certified where every rival's gap exceeds its bound
    (``prediction_gaps``), so the device must predict the same."""
    top, gap, pair = prediction_gaps(dev, X, log_joint64)
    margin = gap - pair
    margin[np.arange(len(top)), top] = np.inf
    return top, np.all(margin > 0, axis=1)
