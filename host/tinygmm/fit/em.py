"""EM numerics: all components evaluated by one matrix product per chunk of data.

Data are centred once by their mean (``Xc = X - center``). A component's log-joint
``log w_k + log N(x | mu_k, P_k^-1)`` is then a linear function of the expanded
features ``phi(x) = [x_i x_j (i <= j), x_i, 1]`` (``[x_i^2, x_i, 1]`` for diag and
spherical), so one ``(K, F) @ (F, n)`` product gives every log-joint of a chunk, and
``resp @ phi`` gives every sufficient statistic of the M-step: E- and M-step share
one pass over the data, arrays are component-major ``(K, n)``.

The expansion ``x'Px - 2 mu'Px + mu'P mu`` cancels when a component's mean sits far
from the centre relative to its spread: its rounding error is about
``4 eps r_k`` with ``r_k = ||mu_k @ L_k||^2`` for the points near the component
(the ones that matter). Components whose ``r_k`` exceeds ``R_EXACT`` are evaluated
in the exact form ``||(x - mu_k) @ L_k||^2``, and their covariance is recomputed
from centred differences, so the error stays below ~1e-11 per point.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

from .covariance import (
    LOG_2PI,
    log_det_cholesky,
    precision_cholesky,
    precisions_from_cholesky,
)

# 4 * eps * R_EXACT ~ 1e-11: the worst absolute error the expanded form may add to a log-joint.
R_EXACT = 1e4
# Rows per chunk: the expanded features of one chunk stay within ~4 MiB (cache- and RAM-friendly).
CHUNK_BYTES = 4 << 20
# Smallest shifted log-joint kept: e^-700 is still a normal float64 (min normal ~ e^-708).
LOG_TINY = -700.0
# scikit-learn adds 10 eps to each component's weight so that empty components divide safely.
NK_EPS = 10 * np.finfo(np.float64).eps


class Params:
    """Mixture parameters in centred coordinates (means relative to ``center``)."""

    def __init__(self, covariance_type: str, weights: np.ndarray, means_c: np.ndarray,
                 covariances: np.ndarray | None, prec_chol: np.ndarray):
        self.covariance_type = covariance_type
        self.weights = weights
        self.means_c = means_c
        self.covariances = covariances
        self.prec_chol = prec_chol
        self.offsets: np.ndarray | None = None  # _quadratic_offsets, once the factor is final


def _tri(D: int) -> int:
    return D * (D + 1) // 2


def n_expanded(covariance_type: str, D: int) -> int:
    """Number F of expanded features."""
    return {"full": _tri(D) + D + 1, "tied": D + 1}.get(covariance_type, 2 * D + 1)


def features(xt: np.ndarray, covariance_type: str, buf: np.ndarray | None = None) -> np.ndarray:
    """Expanded features (F, n) of centred columns ``xt`` (D, n), feature-major so every row is contiguous.

    full [x_i x_j (i <= j), x, 1], diag/spherical [x^2, x, 1], tied [x, 1]. ``buf`` (F, >= n) is
    reused when given: fresh multi-megabyte arrays per chunk cost more in page faults than the maths.
    """
    D, n = xt.shape
    F = n_expanded(covariance_type, D)
    phi = np.empty((F, n)) if buf is None else buf[:, :n]
    if covariance_type == "full":
        T = _tri(D)
        off = 0
        for i in range(D):  # row i of the upper triangle: x_i * x_j for j >= i
            np.multiply(xt[i], xt[i:], out=phi[off:off + D - i])
            off += D - i
        phi[T:T + D] = xt
    elif covariance_type in ("diag", "spherical"):
        np.multiply(xt, xt, out=phi[:D])
        phi[D:2 * D] = xt
    else:
        phi[:D] = xt
    phi[-1] = 1.0
    return phi


def _quadratic_offsets(p: Params) -> np.ndarray:
    """r_k = ||mu_k @ L_k||^2: how far each mean is from the centre in its own metric."""
    ct, m, L = p.covariance_type, p.means_c, p.prec_chol
    if ct == "full":
        return np.sum(np.einsum("kd,kde->ke", m, L) ** 2, axis=1)
    if ct == "tied":
        return np.sum((m @ L) ** 2, axis=1)
    if ct == "diag":
        return np.sum((m * L) ** 2, axis=1)
    return np.sum(m**2, axis=1) * L**2


class LogJoint:
    """Precomputed coefficients turning expanded features into log-joints of all components."""

    def __init__(self, p: Params):
        self.p = p
        ct, m, L = p.covariance_type, p.means_c, p.prec_chol
        K, D = m.shape
        with np.errstate(divide="ignore"):  # a zero weight gives a log-joint of -inf, as in sklearn
            self.const = np.log(p.weights) - 0.5 * D * LOG_2PI + log_det_cholesky(L, ct, D)
        r = p.offsets if p.offsets is not None else _quadratic_offsets(p)
        self.exact = np.flatnonzero(r > R_EXACT)
        if ct == "full":
            P = precisions_from_cholesky(L, ct)
            iu, ju, twice = _upper(D)
            W = np.empty((K, _tri(D) + D + 1))
            W[:, :_tri(D)] = P[:, iu, ju] * twice
            W[:, _tri(D):-1] = np.einsum("kij,kj->ki", P, m)
            W[:, -1] = self.const - 0.5 * r
        elif ct in ("diag", "spherical"):
            prec = L**2 if ct == "diag" else np.repeat((L**2)[:, None], D, axis=1)
            W = np.empty((K, 2 * D + 1))
            W[:, :D] = -0.5 * prec
            W[:, D:2 * D] = prec * m
            W[:, -1] = self.const - 0.5 * r
        else:
            self.b = m @ L  # means in the whitened space
            self.b_aug = np.column_stack([self.b, np.full(K, -0.5), self.const - 0.5 * r])
            W = None
        self.W = W
        self.r = r

    def __call__(self, xt: np.ndarray, phi: np.ndarray, buf: np.ndarray | None = None) -> np.ndarray:
        """Log-joints (K, n) of centred columns ``xt`` (D, n) with expanded features ``phi`` (F, n)."""
        p = self.p
        out = None if buf is None else buf[:, :xt.shape[1]]
        if p.covariance_type == "tied":
            # whitened points y = L'x with ||y||^2 and 1 appended: one product gives
            # const_k - 0.5 ||b_k||^2 + b_k . y - 0.5 ||y||^2 for every component
            D, n = xt.shape
            ya = np.empty((D + 2, n))
            y = np.matmul(p.prec_chol.T, xt, out=ya[:D])
            np.einsum("dn,dn->n", y, y, out=ya[D])
            ya[D + 1] = 1.0
            out = np.matmul(self.b_aug, ya, out=out)
            for k in self.exact:
                out[k] = self.const[k] - 0.5 * np.sum((y - self.b[k][:, None]) ** 2, axis=0)
            return out
        out = np.matmul(self.W, phi, out=out)
        for k in self.exact:
            out[k] = self.const[k] - 0.5 * _exact_quadratic(xt, p, k)
        return out


def _exact_quadratic(xt: np.ndarray, p: Params, k: int) -> np.ndarray:
    """||(x - mu_k) @ L_k||^2 from centred differences (no cancellation)."""
    diff = xt - p.means_c[k][:, None]
    ct, L = p.covariance_type, p.prec_chol
    if ct == "full":
        return np.sum((L[k].T @ diff) ** 2, axis=0)
    if ct == "diag":
        return np.sum((diff * L[k][:, None]) ** 2, axis=0)
    return np.sum(diff**2, axis=0) * L[k] ** 2


def _chunk_rows(xt: np.ndarray) -> int:
    """Columns per chunk: the expanded features of a chunk stay within CHUNK_BYTES."""
    return min(xt.shape[1], max(256, CHUNK_BYTES // (8 * (_tri(xt.shape[0]) + xt.shape[0] + 1))))


def _chunks(xt: np.ndarray):
    rows = _chunk_rows(xt)
    for s in range(0, xt.shape[1], rows):
        yield slice(s, min(s + rows, xt.shape[1]))


def evaluate(xt: np.ndarray, p: Params, reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``reduce`` applied to the (K, n) log-joints of each chunk, results concatenated along the last axis."""
    lj = LogJoint(p)
    return np.concatenate([reduce(lj(xt[:, c], features(xt[:, c], p.covariance_type)))
                           for c in _chunks(xt)], axis=-1)


@functools.lru_cache(maxsize=8)
def _floor_row(n: int) -> np.ndarray:
    """A (1, n) row of LOG_TINY: np.maximum against a row runs ~4x faster than against a scalar."""
    row = np.full((1, n), LOG_TINY)
    row.flags.writeable = False
    return row


def log_sum_exp_inplace(a: np.ndarray) -> np.ndarray:
    """log-sum-exp over axis 0 in one pass; ``a`` is left holding the normalised exp (responsibilities).

    Shifted log-joints are clamped at LOG_TINY so that no subnormal float reaches the matrix
    products (subnormal arithmetic is ~10x slower on x86); a responsibility below e^-700
    (1e-304) is zero at any precision a result carries.
    """
    mx = a.max(axis=0)
    a -= mx
    np.maximum(a, _floor_row(a.shape[1]), out=a)
    np.exp(a, out=a)
    tot = a.sum(axis=0)
    lse = mx + np.log(tot)
    a *= np.reciprocal(tot, out=tot)  # one division per column, then products
    return lse


def responsibilities(log_joint: np.ndarray) -> np.ndarray:
    """Posterior probabilities (K, n) from log-joints (K, n), computed in place."""
    log_sum_exp_inplace(log_joint)
    return log_joint


class Workspace:
    """Buffers one fit reuses across its EM passes; data that fit in one chunk keep their
    expanded features (they depend on the data only)."""

    def __init__(self, xt: np.ndarray, covariance_type: str, n_components: int):
        rows = _chunk_rows(xt)
        self.single_chunk = rows >= xt.shape[1]
        self.phi = np.empty((n_expanded(covariance_type, xt.shape[0]), rows))
        self.a = np.empty((n_components, rows))
        if self.single_chunk:
            features(xt, covariance_type, self.phi)


def em_sums(xt: np.ndarray, params: Sequence[Params], ws: Workspace | None = None
            ) -> list[tuple[float, np.ndarray]]:
    """E-step with each of ``params`` fused with its M-step statistics: (total log-likelihood,
    resp @ phi.T) per parameter set. Every set must have the same covariance type and K.

    Responsibilities live one chunk at a time: no (K, N) array is kept. Several sets (restarts
    run side by side) share each chunk's expanded features and one read of the data.
    """
    ljs = [LogJoint(p) for p in params]
    ws = ws or Workspace(xt, params[0].covariance_type, params[0].means_c.shape[0])
    sums = [np.zeros((ws.a.shape[0], ws.phi.shape[0])) for _ in params]
    totals = [0.0] * len(params)
    for c in _chunks(xt):
        phi = ws.phi if ws.single_chunk else features(xt[:, c], params[0].covariance_type, ws.phi)
        for i, lj in enumerate(ljs):
            a = lj(xt[:, c], phi, ws.a)
            totals[i] += float(np.sum(log_sum_exp_inplace(a)))
            sums[i] += a @ phi.T
    return list(zip(totals, sums))


def em_pass(xt: np.ndarray, p: Params, ws: Workspace | None = None) -> tuple[float, np.ndarray]:
    """E-step with ``p`` fused with the M-step statistics: (mean log-likelihood, resp @ phi.T)."""
    (total, S), = em_sums(xt, [p], ws)
    return total / xt.shape[1], S


@functools.lru_cache(maxsize=32)
def _upper(D: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major upper-triangle indices (i <= j) and the factor -0.5 (diagonal) or -1 (off-diagonal,
    which appears twice in x'Px) that turns precision entries into expanded-feature coefficients."""
    iu, ju = np.triu_indices(D)
    return iu, ju, np.where(iu == ju, -0.5, -1.0)


def _unpack_upper(packed: np.ndarray, D: int) -> np.ndarray:
    """(K, D(D+1)/2) row-major upper triangles to symmetric (K, D, D)."""
    iu, ju, _ = _upper(D)
    out = np.empty((packed.shape[0], D, D))
    out[:, iu, ju] = packed
    out[:, ju, iu] = packed
    return out


def m_step(xt: np.ndarray, S: np.ndarray | None, resp: Callable[[], np.ndarray], covariance_type: str,
           reg_covar: float, scatter: np.ndarray | None = None) -> tuple[np.ndarray, Params]:
    """New parameters from statistics ``S = resp @ phi.T``; exact recomputation where needed.

    ``resp()`` gives the (K, N) responsibilities, asked for only when some covariance must be
    recomputed from centred differences. ``S=None`` does so for every component (initialisation).
    ``scatter`` is ``xt @ xt.T`` (tied only). Returns (nk, params); weights are nk/sum(nk).
    """
    ct = covariance_type
    D = xt.shape[0]
    exact_all = S is None
    if exact_all:
        S = resp() @ features(xt, ct).T
    if ct == "tied" and scatter is None:
        scatter = xt @ xt.T
    nk, params = params_from_stats(S, D, ct, reg_covar, scatter)
    redo = needs_exact(params, exact_all)
    if redo.size:
        apply_exact(params, nk, exact_sums(xt, resp(), params.means_c, ct, redo), redo, reg_covar)
    return nk, params


def params_from_stats(S: np.ndarray, D: int, covariance_type: str, reg_covar: float,
                      scatter: np.ndarray | None) -> tuple[np.ndarray, Params]:
    """(nk, parameters) from the summed statistics ``S`` in the expanded form, before any exact
    recomputation (``needs_exact`` says which components need one). ``scatter``: tied only."""
    ct = covariance_type
    nk = S[:, -1] + NK_EPS
    lin = slice(_tri(D), _tri(D) + D) if ct == "full" else slice(D, 2 * D) if ct in ("diag", "spherical") else slice(0, D)
    m = S[:, lin] / nk[:, None]
    if ct == "full":
        cov = _unpack_upper(S[:, :_tri(D)], D) / nk[:, None, None] - m[:, :, None] * m[:, None, :]
        cov[:, np.arange(D), np.arange(D)] += reg_covar
    elif ct == "tied":
        assert scatter is not None
        cov = (scatter - (nk[:, None] * m).T @ m) / nk.sum()
        cov.flat[:: D + 1] += reg_covar
    else:
        cov = S[:, :D] / nk[:, None] - m**2 + reg_covar
        if ct == "spherical":
            cov = cov.mean(axis=1)
    return nk, Params(ct, nk / nk.sum(), m, cov, None)


def needs_exact(p: Params, exact_all: bool = False) -> np.ndarray:
    """Components whose expanded-form covariance may have lost digits (or is not PD).

    Sets ``p.prec_chol`` when the expanded form is kept.
    """
    K = p.means_c.shape[0]
    if exact_all:
        return np.arange(K)
    try:
        p.prec_chol = precision_cholesky(p.covariances, p.covariance_type)
    except ValueError:
        return np.arange(K)
    r = p.offsets = _quadratic_offsets(p)
    if p.covariance_type == "tied":
        return np.arange(K) if np.any(r > R_EXACT) else np.empty(0, int)
    return np.flatnonzero(r > R_EXACT)


def exact_sums(xt: np.ndarray, resp: np.ndarray, means_c: np.ndarray, covariance_type: str,
               which: np.ndarray) -> np.ndarray:
    """Responsibility-weighted scatter about the new means from centred differences: sum over the
    points of r (x - mu)(x - mu)' for the components ``which`` (diagonals only for diag and
    spherical; summed over every component for tied). Sums over blocks of data add up."""
    ct, D = covariance_type, xt.shape[0]
    if ct == "tied":
        out = np.zeros((D, D))
        for k in range(means_c.shape[0]):
            diff = xt - means_c[k][:, None]
            out += (resp[k] * diff) @ diff.T
        return out
    out = np.empty((len(which), D, D) if ct == "full" else (len(which), D))
    for i, k in enumerate(which):
        diff = xt - means_c[k][:, None]
        out[i] = (resp[k] * diff) @ diff.T if ct == "full" else (diff * diff) @ resp[k]
    return out


def apply_exact(p: Params, nk: np.ndarray, sums: np.ndarray, which: np.ndarray, reg_covar: float) -> None:
    """Replace the covariances of ``which`` by those of ``exact_sums`` and refactor the precisions."""
    ct, D = p.covariance_type, p.means_c.shape[1]
    if ct == "tied":
        cov = sums / nk.sum()
        cov.flat[:: D + 1] += reg_covar
        p.covariances = cov
    else:
        for i, k in enumerate(which):
            if ct == "full":
                c = sums[i] / nk[k]
                c.flat[:: D + 1] += reg_covar
            else:
                c = sums[i] / nk[k] + reg_covar
                if ct == "spherical":
                    c = c.mean()
            p.covariances[k] = c
    p.prec_chol = precision_cholesky(p.covariances, ct)
    p.offsets = None


def params_from_labels(xt: np.ndarray, labels: np.ndarray, n_components: int, covariance_type: str,
                       reg_covar: float) -> tuple[np.ndarray, Params]:
    """The M-step for hard responsibilities (label -1: no component), from centred differences.

    Equal to ``m_step`` with one-hot responsibilities, at O(N D^2) instead of O(K N D^2).
    Returns (nk, params); weights are nk/sum(nk).
    """
    ct = covariance_type
    K, D = n_components, xt.shape[0]
    nk = np.zeros(K)
    means = np.zeros((K, D))
    full = np.zeros((K, D, D))
    sq = np.zeros((K, D))
    # labels as int16 where they fit: NumPy's stable sort is then a radix sort (O(N))
    order = np.argsort(labels.astype(np.int16) if K < 2**15 else labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(K + 1))
    for k in range(K):
        members = xt[:, order[bounds[k]:bounds[k + 1]]]
        nk[k] = members.shape[1] + NK_EPS
        means[k] = members.sum(axis=1) / nk[k]
        diff = members - means[k][:, None]
        if ct in ("full", "tied"):
            full[k] = diff @ diff.T
        else:
            sq[k] = np.einsum("dn,dn->d", diff, diff)
    if ct == "full":
        cov = full / nk[:, None, None]
        cov[:, np.arange(D), np.arange(D)] += reg_covar
    elif ct == "tied":
        cov = full.sum(axis=0) / nk.sum()
        cov.flat[:: D + 1] += reg_covar
    else:
        cov = sq / nk[:, None] + reg_covar
        if ct == "spherical":
            cov = cov.mean(axis=1)
    return nk, Params(ct, nk / nk.sum(), means, cov, precision_cholesky(cov, ct))


def exact_log_joint(xt: np.ndarray, p: Params) -> np.ndarray:
    """Log-joints (K, n) from centred differences, one component at a time (the reference form)."""
    K = p.means_c.shape[0]
    D = xt.shape[0]
    with np.errstate(divide="ignore"):
        const = np.log(p.weights) - 0.5 * D * LOG_2PI + log_det_cholesky(p.prec_chol, p.covariance_type, D)
    out = np.empty((K, xt.shape[1]))
    for k in range(K):
        if p.covariance_type == "tied":
            y = p.prec_chol.T @ (xt - p.means_c[k][:, None])
            out[k] = const[k] - 0.5 * np.einsum("dn,dn->n", y, y)
        else:
            out[k] = const[k] - 0.5 * _exact_quadratic(xt, p, k)
    return out
