"""Random Gaussian mixtures for the core/twin tests, and an independent float64 reference."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import scipy.linalg
from hypothesis import strategies as st

from tinygmm.model import Model, Scaler

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# Eigenvalue ratio of a "near-singular" covariance: condition number ~1e7, beyond which
# float32 inputs cannot resolve the thin direction at all.
NEAR_SINGULAR = 1e-7


def _spd(rng: np.random.Generator, D: int, near_singular: bool) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    lam = 10.0 ** rng.uniform(-1.5, 0.5, D)
    if near_singular and D > 1:
        lam[rng.integers(D)] *= NEAR_SINGULAR
    c = (q * lam) @ q.T
    return 0.5 * (c + c.T)


def random_model(
    rng: np.random.Generator,
    covariance_type: str,
    K: int,
    D: int,
    *,
    bad_scaling: bool = False,
    offset: float = 0.0,
    near_singular: bool = False,
    scaler: bool = False,
    threshold: bool = True,
) -> Model:
    """A mixture in raw units: features scaled by 10^U(-3, 3) when ``bad_scaling``, shifted by ``offset``."""
    feat_scale = 10.0 ** rng.uniform(-3, 3, D) if bad_scaling else np.ones(D)
    shift = offset * rng.choice([-1.0, 1.0], D)
    w = rng.dirichlet(np.ones(K)) + 0.02
    w /= w.sum()
    mu = rng.normal(scale=3.0, size=(K, D))
    if covariance_type == "full":
        cov = np.stack([_spd(rng, D, near_singular) for _ in range(K)])
    elif covariance_type == "tied":
        cov = _spd(rng, D, near_singular)
    elif covariance_type == "diag":
        cov = 10.0 ** rng.uniform(-1.5, 0.5, (K, D))
        if near_singular:
            cov[rng.integers(K), rng.integers(D)] *= NEAR_SINGULAR
    else:
        cov = 10.0 ** rng.uniform(-1.5, 0.5, K)
        if near_singular:
            cov[rng.integers(K)] *= NEAR_SINGULAR
    # raw units: x = shift + feat_scale * u
    raw_mu = shift + mu * feat_scale
    if covariance_type in ("full", "tied"):
        raw_cov = cov * np.outer(feat_scale, feat_scale)
    elif covariance_type == "diag":
        raw_cov = cov * feat_scale**2
    else:
        raw_cov = cov  # spherical stays spherical only without per-feature scaling (see below)
    sc = None
    if scaler:
        mean = w @ raw_mu + rng.normal(size=D) * feat_scale * 0.1
        scale = feat_scale * 10.0 ** rng.uniform(-0.3, 0.3, D)
        if covariance_type == "spherical":
            scale = feat_scale  # keep the scaled-space model spherical
        sc = Scaler(mean, scale)
        means = (raw_mu - mean) / scale
        if covariance_type in ("full", "tied"):
            covs = raw_cov / np.outer(scale, scale)
        elif covariance_type == "diag":
            covs = raw_cov / scale**2
        else:
            covs = cov
    else:
        if covariance_type == "spherical":
            raw_mu = shift + mu  # a spherical model without a scaler lives in one unit
        means, covs = raw_mu, raw_cov
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2)) if covariance_type in ("full", "tied") else covs
    m = Model(covariance_type, w, means, covs, scaler=sc)
    if threshold:
        m.anomaly_threshold = float(np.percentile(reference_score(m, sample(m, rng, 500)), 2.0))
    return m


def _raw_space(m: Model) -> tuple[np.ndarray, np.ndarray]:
    """(means, full covariances) of the model in raw units."""
    K, D = m.n_components, m.n_features
    cov = {
        "full": lambda c: c,
        "tied": lambda c: np.broadcast_to(c, (K, D, D)),
        "diag": lambda c: np.stack([np.diag(r) for r in c]),
        "spherical": lambda c: c[:, None, None] * np.eye(D),
    }[m.covariance_type](m.covariances)
    if m.scaler is None:
        return m.means, cov
    s = m.scaler.scale
    return m.means * s + m.scaler.mean, cov * np.outer(s, s)


def sample(m: Model, rng: np.random.Generator, n: int) -> np.ndarray:
    """n points drawn from the mixture, raw units, rounded to float32 (what a device receives)."""
    means, cov = _raw_space(m)
    comp = rng.choice(m.n_components, size=n, p=m.weights)
    chol = np.linalg.cholesky(cov)
    x = means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.normal(size=(n, m.n_features)))
    return x.astype(np.float32)


def box_points(data: np.ndarray, rng: np.random.Generator, n: int, widen: float = 0.25) -> np.ndarray:
    lo, hi = data.min(axis=0).astype(np.float64), data.max(axis=0).astype(np.float64)
    pad = (hi - lo) * widen
    return rng.uniform(lo - pad, hi + pad, size=(n, data.shape[1])).astype(np.float32)


def far_points(data: np.ndarray, rng: np.random.Generator, n: int, factor: float = 1000.0) -> np.ndarray:
    """Points ``factor`` times the data span away from the data mean, in random directions."""
    d = data.astype(np.float64)
    span = np.maximum(d.max(axis=0) - d.min(axis=0), 1e-30)
    u = rng.normal(size=(n, d.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (d.mean(axis=0) + factor * span * u).astype(np.float32)


def reference_log_joint(m: Model, X: np.ndarray) -> np.ndarray:
    """float64 log-joints computed independently of tinygmm.device.fold (scipy Cholesky, (x - mu) first)."""
    x = np.asarray(X, dtype=np.float64)
    if m.scaler is not None:
        x = (x - m.scaler.mean) / m.scaler.scale
    K, D = m.n_components, m.n_features
    out = np.empty((x.shape[0], K))
    for k in range(K):
        d = x - m.means[k]
        if m.covariance_type in ("full", "tied"):
            c = m.covariances[k] if m.covariance_type == "full" else m.covariances
            L = scipy.linalg.cholesky(c, lower=True)
            y = scipy.linalg.solve_triangular(L, d.T, lower=True)
            quad = np.sum(y * y, axis=0)
            log_det = -np.sum(np.log(np.diag(L)))
        elif m.covariance_type == "diag":
            quad = np.sum(d * d / m.covariances[k], axis=1)
            log_det = -0.5 * np.sum(np.log(m.covariances[k]))
        else:
            quad = np.sum(d * d, axis=1) / m.covariances[k]
            log_det = -0.5 * D * math.log(m.covariances[k])
        out[:, k] = math.log(m.weights[k]) - 0.5 * D * math.log(2 * math.pi) + log_det - 0.5 * quad
    return out


def reference_score(m: Model, X: np.ndarray) -> np.ndarray:
    lj = reference_log_joint(m, X)
    top = lj.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.sum(np.exp(lj - top), axis=1))


@st.composite
def model_cases(draw, max_components: int = 32, max_features: int = 16) -> tuple[Model, int]:
    """(model, seed) over every covariance type, D 1..16, K 1..32, bad scaling, 1e5 offsets, near-singular."""
    ct = draw(st.sampled_from(COVARIANCE_TYPES))
    D = draw(st.integers(1, max_features))
    K = draw(st.integers(1, max_components))
    seed = draw(st.integers(0, 2**32 - 1))
    kwargs = dict(
        bad_scaling=draw(st.booleans()),
        offset=draw(st.sampled_from([0.0, 1e5])),
        near_singular=draw(st.booleans()),
        scaler=draw(st.booleans()),
        threshold=draw(st.booleans()),
    )
    return random_model(np.random.default_rng(seed), ct, K, D, **kwargs), seed


def verify_checks(m: Model, seed: int, n_each: int, device: Callable[[Any, np.ndarray], dict] | None = None
                  ) -> tuple[list, Any]:
    """The checks of `tinygmm verify` on the vector kinds it uses (training rows drawn from the model)
    for the answers ``device(folded model, X)`` (default: a device computing exactly as the float32
    twin): (checks, vectors)."""
    from tinygmm.device.fold import fold
    from tinygmm.verify.compare import Reference, compare, twin_answers
    from tinygmm.verify.vectors import make_vectors

    rng = np.random.default_rng(seed)
    vectors = make_vectors(m, sample(m, rng, n_each), n_each=n_each, seed=seed % 2**32)
    dev = fold(m)
    ref = Reference.of(dev, vectors.X)
    answers = twin_answers(ref.twin) if device is None else device(dev, vectors.X)
    return compare(dev, vectors, answers, ref)[0], vectors
