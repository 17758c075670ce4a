"""Per-covariance-type maths: parameter counts, Cholesky factors of precisions, log-densities.

Shapes follow scikit-learn: covariances and ``precisions_cholesky`` are
``full`` (K, D, D), ``tied`` (D, D), ``diag`` (K, D), ``spherical`` (K,), and a
precision factor ``L`` satisfies ``precision = L @ L.T`` so that the quadratic form
of a point is ``||(x - mu) @ L||^2``.
"""
from __future__ import annotations

import math

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

LOG_2PI = math.log(2.0 * math.pi)

ILL_DEFINED_COVARIANCE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters: covariances + means + (K - 1) weights."""
    K, D = n_components, n_features
    cov = {
        "full": K * D * (D + 1) // 2,
        "tied": D * (D + 1) // 2,
        "diag": K * D,
        "spherical": K,
    }[covariance_type]
    return cov + K * D + K - 1


def precision_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors of the precisions from covariances (ValueError if not PD)."""
    if covariance_type in ("full", "tied"):
        try:
            cov_chol = np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            raise ValueError(ILL_DEFINED_COVARIANCE) from None
        D = covariances.shape[-1]
        # precision = inv(C C^T) = inv(C)^T inv(C), so L = inv(C)^T is lower-triangular.
        eye = np.broadcast_to(np.eye(D), cov_chol.shape)
        return np.swapaxes(np.linalg.solve(cov_chol, eye), -1, -2)
    if np.any(covariances <= 0.0):
        raise ValueError(ILL_DEFINED_COVARIANCE)
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Factor precisions as U U^T with U upper-triangular (scikit-learn's convention, #26415)."""
    if covariance_type in ("full", "tied"):
        # Cholesky of the row-and-column-reversed matrix, reversed back, gives U.
        flipped = precisions[..., ::-1, ::-1]
        return np.linalg.cholesky(flipped)[..., ::-1, ::-1].copy()
    return np.sqrt(precisions)


def precisions_from_cholesky(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """precision = L L^T (full, tied) or L^2 (diag, spherical)."""
    if covariance_type in ("full", "tied"):
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)
    return prec_chol**2


def log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray | float:
    """log det L, which is half of log det(precision)."""
    if covariance_type == "full":
        return np.sum(np.log(np.abs(np.diagonal(prec_chol, axis1=1, axis2=2))), axis=1)
    if covariance_type == "tied":
        return float(np.sum(np.log(np.abs(np.diag(prec_chol)))))
    if covariance_type == "diag":
        return np.sum(np.log(prec_chol), axis=1)
    return n_features * np.log(prec_chol)


def log_gaussian_prob(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """(N, K) log N(x_n | mu_k, Sigma_k) in float64, one component at a time from the differences
    x - mu_k: no cancellation however far the data sit from the origin (the reference form)."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    K = means.shape[0]
    const = -0.5 * D * LOG_2PI + np.broadcast_to(log_det_cholesky(prec_chol, covariance_type, D), (K,))
    out = np.empty((N, K))
    for k in range(K):
        diff = X - means[k]
        if covariance_type in ("full", "tied"):
            y = diff @ (prec_chol[k] if covariance_type == "full" else prec_chol)
        elif covariance_type == "diag":
            y = diff * prec_chol[k]
        else:
            y = diff * prec_chol[k]
        out[:, k] = const[k] - 0.5 * np.einsum("nd,nd->n", y, y)
    return out


def covariances_from_precision_cholesky(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Invert the precisions (used when a user gives ``precisions_init``)."""
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions_from_cholesky(prec_chol, covariance_type))
    return 1.0 / prec_chol**2
