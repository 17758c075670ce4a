"""Fold a Model into the float32 parameters the C core evaluates, once per export or verify run: the
DeviceModel is then passed to the twin, the error bounds, the header and the memory estimate.

Everything that can be computed once is computed here in float64 and rounded to
float32 exactly once per stored value (see firmware/lib/tinygmm/tinygmm.h for the
device-side formulas):

* centre ``c``: the scaler mean (the training mean), else the GMM mean ``sum w_k mu_k``,
  rounded to float32. Component means are stored *relative to the rounded centre*,
  computed in float64, so the rounding of ``c`` cancels and a 1e5 offset costs nothing.
* factors ``A_k``: lower-triangular with ``A_k^T A_k = precision_k`` (``A = C^-1`` for the
  Cholesky factor ``C`` of the covariance), times sqrt(1/2) so the device needs no 0.5.
  A scaler is folded into the columns of ``A`` (``A diag(1/scale)``) for full, tied and
  diag; spherical keeps one scalar per component and applies ``1/scale`` to the input.
* full/tied offsets ``b_k = A32_k m_k`` use the *rounded* factor, so the device computes
  ``A32 (z - m_k)`` up to rounding: the factor's own rounding then scales with the
  distance to the component, not with the distance to the centre.
* bias ``log w_k - D/2 log 2pi + log det A_k`` (log det of the unscaled factor: scores are
  log-densities of the scaled input, as on the host).
* tied only, the constant of the linear score predict uses: ``tied_bias_k = (bias_k - ||b_k||^2) / 2``
  with the stored float32 ``b_k``, so that ``bias_k - ||w - b_k||^2 = 2 (tied_bias_k + b_k . w) - ||w||^2``
  exactly; the last term is common to every component and drops out of the argmax.
* feature order: the device evaluates the features rotated so that its feature 0 is input
  feature ``lead`` (``z_i = x[(i + lead) mod D] - c_i``); every stored array is in that order.
  Row 0 of each quadratic form, the bound the device prunes with, then uses the feature that
  separates the components best (``choose_lead``). The factor is that of the rotated
  covariance, so this is exact: a different, equally valid float32 evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import TinyGMMError
from ..model import Model

COVARIANCE_CODES = {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
# tinygmm_model stores K and D as uint8_t (one byte each in flash on the Uno).
MAX_COMPONENTS = 255
MAX_FEATURES = 255
LOG_2PI = math.log(2.0 * math.pi)
HALF_SQRT = math.sqrt(0.5)


@dataclass(frozen=True, eq=False)
class Exact:
    """The folded parameters in float64, before rounding (used for error bounds)."""

    covariance_type: str
    centre: np.ndarray  # (D,) float64 value of the float32 centre
    inv_scale: np.ndarray | None  # (D,) exact 1/scale (spherical with scaler only)
    factor: np.ndarray  # full (K,D,D) / tied (D,D) lower-triangular; diag (K,D); spherical (K,) = 1/(2 var)
    means: np.ndarray  # (K, D) component means relative to the centre (input units of z)
    bias: np.ndarray  # (K,)


@dataclass(frozen=True, eq=False)
class DeviceModel:
    """A model as the device stores it: float32 arrays in tinygmm_model's layout."""

    covariance_type: str
    centre: np.ndarray  # (D,)
    inv_scale: np.ndarray | None  # (D,) or None
    bias: np.ndarray  # (K,)
    offset: np.ndarray  # (K, D): b_k (full, tied) or m_k (diag, spherical)
    factor: np.ndarray  # full (K, P), tied (P,), diag (K, D), spherical (K,); P = D(D+1)/2, rows packed
    anomaly_threshold: np.float32 | None
    model_id: str
    feature_names: tuple[str, ...]  # input order
    exact: Exact  # in device order
    source: Model  # the model folded (float64 reference, scaler and names for comments)
    lead: int = 0  # device feature i is input feature (i + lead) mod D
    tied_bias: np.ndarray | None = None  # (K,) tied: (bias_k - ||b_k||^2) / 2; None otherwise

    @property
    def order(self) -> np.ndarray:
        """Input column of each device feature: ``x[:, order]`` is the input in device order."""
        return (np.arange(self.n_features) + self.lead) % self.n_features

    @property
    def n_components(self) -> int:
        return int(self.bias.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.centre.shape[0])

    @property
    def covariance_code(self) -> int:
        return COVARIANCE_CODES[self.covariance_type]

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameter arrays in the order tinygmm_model points to them (inv_scale and tied_bias
        only if kept)."""
        out = {"centre": self.centre}
        if self.inv_scale is not None:
            out["inv_scale"] = self.inv_scale
        out.update(bias=self.bias, offset=self.offset.ravel(), factor=self.factor.ravel())
        if self.tied_bias is not None:
            out["tied_bias"] = self.tied_bias
        return out

    @property
    def n_floats(self) -> int:
        return sum(a.size for a in self.arrays().values())

    @property
    def parameter_bytes(self) -> int:
        return 4 * self.n_floats


def packed_size(n_features: int) -> int:
    """Floats in one packed lower-triangular D x D factor."""
    return n_features * (n_features + 1) // 2


def inverse_lower(C: np.ndarray) -> np.ndarray:
    """Inverse of lower-triangular ``C`` (..., D, D) by forward substitution.

    Backward stable, unlike a general LU inverse, which matters for near-singular covariances.
    """
    D = C.shape[-1]
    A = np.zeros_like(C)
    for i in range(D):
        rhs = -np.einsum("...j,...jc->...c", C[..., i, :i], A[..., :i, :])
        rhs[..., i] += 1.0
        A[..., i, :] = rhs / C[..., i, i, None]
    return A


def _rotated(model: Model, lead: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Means, covariances, scaler mean and scale with the features in device order."""
    D = model.n_features
    order = (np.arange(D) + lead) % D
    mu = np.asarray(model.means, dtype=np.float64)[:, order]
    cov = np.asarray(model.covariances, dtype=np.float64)
    ct = model.covariance_type
    if ct == "full":
        cov = cov[:, order][:, :, order]
    elif ct == "tied":
        cov = cov[order][:, order]
    elif ct == "diag":
        cov = cov[:, order]
    if model.scaler is None:
        return mu, cov, None, None
    return mu, cov, np.asarray(model.scaler.mean, np.float64)[order], np.asarray(model.scaler.scale, np.float64)[order]


# Samples drawn from the model to choose the lead feature (fixed seed: export is reproducible).
LEAD_SAMPLES = 256
# Another lead feature must leave at most this fraction of feature 0's unpruned components.
LEAD_GAIN = 0.9


def choose_lead(model: Model) -> int:
    """The input feature the device should evaluate first.

    For points drawn from the model, row 0 of component k bounds its log-joint by
    ``bias_k - (x_j - mu_kj)^2 / (2 var_kj)`` when feature j leads; components whose bound is
    below the best log-joint are pruned after that one row. Returns the j leaving the fewest
    components unpruned on average (0 unless another is better by 10%).
    Computed in the scaled space of the model (a scaler is per feature: it changes nothing).
    """
    K, D, ct = model.n_components, model.n_features, model.covariance_type
    if D == 1:
        return 0
    w = np.asarray(model.weights, dtype=np.float64)
    mu = np.asarray(model.means, dtype=np.float64)
    cov = np.asarray(model.covariances, dtype=np.float64)
    try:
        if ct == "full":
            chol = np.linalg.cholesky(cov)
        elif ct == "tied":
            chol = np.broadcast_to(np.linalg.cholesky(cov), (K, D, D))
        elif ct == "diag":
            chol = np.sqrt(cov)[:, :, None] * np.eye(D)
        else:
            chol = np.sqrt(cov)[:, None, None] * np.eye(D)
    except np.linalg.LinAlgError:
        return 0  # exact_parameters refuses the model with a clear message
    rng = np.random.default_rng(0)
    comp = rng.choice(K, size=LEAD_SAMPLES, p=w / w.sum())
    x = mu[comp] + np.einsum("nij,nj->ni", chol[comp], rng.normal(size=(LEAD_SAMPLES, D)))
    with np.errstate(divide="ignore"):
        bias = np.log(w) - np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    lj = np.empty((LEAD_SAMPLES, K))
    for k in range(K):
        y = np.linalg.solve(chol[k], (x - mu[k]).T)
        lj[:, k] = bias[k] - 0.5 * np.sum(y * y, axis=0)
    best = lj.max(axis=1, keepdims=True)
    var = np.einsum("kij,kij->ki", chol, chol)  # diagonal of chol @ chol.T
    unpruned = [np.mean(np.sum(bias - 0.5 * (x[:, None, j] - mu[:, j]) ** 2 / var[:, j] >= best, axis=1))
                for j in range(D)]
    best = int(np.argmin(unpruned))
    # Keep the input order unless another feature is clearly better (the estimate is noisy).
    return best if unpruned[best] < LEAD_GAIN * unpruned[0] else 0


def exact_parameters(model: Model, lead: int = 0) -> Exact:
    """Fold scaler, centre and constants into float64 parameters (see the module docstring),
    the features in device order (rotated by ``lead``)."""
    ct = model.covariance_type
    K, D = model.n_components, model.n_features
    mu, cov, scaler_mean, scaler_scale = _rotated(model, lead)
    if ct in ("full", "tied"):
        try:
            A = inverse_lower(np.linalg.cholesky(cov))
        except np.linalg.LinAlgError:
            raise TinyGMMError(f"covariance of the {ct} model is not positive definite") from None
        log_det = np.sum(np.log(np.diagonal(A, axis1=-2, axis2=-1)), axis=-1)
    elif ct == "diag":
        A = 1.0 / np.sqrt(cov)
        log_det = np.sum(np.log(A), axis=1)
    else:  # spherical: log det = D log(1/sigma) = -D/2 log var
        A = 0.5 / cov
        log_det = -0.5 * D * np.log(cov)
    bias = np.log(model.weights) - 0.5 * D * LOG_2PI + log_det
    bias = np.broadcast_to(bias, (K,)).astype(np.float64)

    inv_scale = None
    if scaler_mean is not None:
        mean, scale = scaler_mean, scaler_scale
        centre = _float32(mean, "scaler mean").astype(np.float64)
        if ct == "spherical":
            inv_scale = 1.0 / scale
            means = mu + (mean - centre) / scale
        else:
            A = A / scale  # columns: A diag(1/scale); diag: a / scale
            means = mu * scale + (mean - centre)
    else:
        centre = _float32(model.weights @ mu, "mean").astype(np.float64)
        means = mu - centre
    if ct != "spherical":
        A = A * HALF_SQRT
    return Exact(ct, centre, inv_scale, A, means, bias)


def _float32(a: np.ndarray, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = np.asarray(a, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise TinyGMMError(
            f"the model's {what} overflows float32 (|value| > 3.4e38); rescale the data (fit with a scaler) and refit"
        )
    return out


def fold(model: Model) -> DeviceModel:
    """The float32 device parameters of ``model``; TinyGMMError if it cannot be represented."""
    K, D = model.n_components, model.n_features
    if K > MAX_COMPONENTS or D > MAX_FEATURES:
        raise TinyGMMError(
            f"the device format holds at most {MAX_COMPONENTS} components and {MAX_FEATURES} features; "
            f"this model has {K} and {D}"
        )
    lead = choose_lead(model)
    ex = exact_parameters(model, lead)
    ct = model.covariance_type
    if ct in ("full", "tied"):
        A32 = _float32(ex.factor, "precision factor")
        rows, cols = np.tril_indices(D)  # row-major packing: row i holds A[i, 0..i]
        factor = A32[..., rows, cols]
        spec = "kij,kj->ki" if ct == "full" else "ij,kj->ki"
        offset = _float32(np.einsum(spec, A32.astype(np.float64), ex.means), "folded means")
    else:
        factor = _float32(ex.factor, "precision")
        offset = _float32(ex.means, "means")
    diag_factor = np.diagonal(A32, axis1=-2, axis2=-1) if ct in ("full", "tied") else factor
    if np.any(diag_factor == 0):
        raise TinyGMMError("a precision underflows to 0 in float32 (a variance above ~1e38); rescale the data and refit")
    tied_bias = None
    if ct == "tied":
        b = offset.astype(np.float64)
        tied_bias = _float32(0.5 * (ex.bias - np.sum(b * b, axis=1)), "tied bias (bias - ||A m||^2) / 2")
    thr = None if model.anomaly_threshold is None else _float32(np.array(model.anomaly_threshold), "anomaly threshold")[()]
    return DeviceModel(
        covariance_type=ct,
        centre=ex.centre.astype(np.float32),
        inv_scale=None if ex.inv_scale is None else _float32(ex.inv_scale, "scaler"),
        bias=_float32(ex.bias, "bias (log weight and log determinant)"),
        offset=offset,
        factor=factor,
        anomaly_threshold=thr,
        model_id=model.model_id,
        feature_names=tuple(model.feature_names),
        exact=ex,
        source=model,
        lead=lead,
        tied_bias=tied_bias,
    )
