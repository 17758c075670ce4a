"""k-means for initialising EM: k-means++ seeding and Lloyd iterations, NumPy only."""
from __future__ import annotations

import numpy as np

# Rows per block when computing point-to-centre distances (bounds the (n, K) temporary).
_BLOCK_ROWS = 65536


def _sq_distances(X: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K), clipped at 0 (the expansion can dip below)."""
    d = x_sq[:, None] - 2.0 * (X @ centers.T) + np.einsum("kd,kd->k", centers, centers)[None, :]
    return np.maximum(d, 0.0, out=d)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
                    n_local_trials: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii; several candidates per step, best kept).

    Returns (centers (K, D), indices of the chosen rows (K,)).
    """
    n, _ = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    x_sq = np.einsum("nd,nd->n", X, X)
    indices = np.empty(n_clusters, dtype=int)
    indices[0] = random_state.randint(n)
    closest = _sq_distances(X, x_sq, X[indices[:1]])[:, 0]
    pot = closest.sum()
    for c in range(1, n_clusters):
        if pot <= 0.0:  # every point coincides with a centre: any new row will do
            candidates = random_state.randint(n, size=n_local_trials)
        else:
            cum = np.cumsum(closest)
            candidates = np.searchsorted(cum, random_state.uniform(size=n_local_trials) * pot)
            np.clip(candidates, None, n - 1, out=candidates)
        d = _sq_distances(X, x_sq, X[candidates])  # (n, trials)
        np.minimum(d, closest[:, None], out=d)
        pots = d.sum(axis=0)
        best = int(np.argmin(pots))
        indices[c] = candidates[best]
        closest = d[:, best].copy()
        pot = pots[best]
    return X[indices].copy(), indices


def _assign(X: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, float]:
    labels = np.empty(X.shape[0], dtype=int)
    inertia = 0.0
    for s in range(0, X.shape[0], _BLOCK_ROWS):
        d = _sq_distances(X[s:s + _BLOCK_ROWS], x_sq[s:s + _BLOCK_ROWS], centers)
        lab = np.argmin(d, axis=1)
        labels[s:s + _BLOCK_ROWS] = lab
        inertia += float(d[np.arange(lab.size), lab].sum())
    return labels, inertia


def kmeans(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
           max_iter: int = 300, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding then Lloyd iterations; returns (labels (n,), centers (K, D)).

    Stops when the centres move less than ``tol`` times the mean feature variance
    (scikit-learn's criterion). Data are centred first so the distance expansion keeps its digits.
    """
    Xc = X - X.mean(axis=0)
    tol_abs = tol * float(np.mean(np.var(Xc, axis=0)))
    centers, _ = kmeans_plusplus(Xc, n_clusters, random_state)
    x_sq = np.einsum("nd,nd->n", Xc, Xc)
    labels, _ = _assign(Xc, x_sq, centers)
    for _ in range(max_iter):
        counts = np.bincount(labels, minlength=n_clusters)
        sums = np.stack([np.bincount(labels, weights=Xc[:, d], minlength=n_clusters)
                         for d in range(Xc.shape[1])], axis=1)
        new = centers.copy()
        filled = counts > 0
        new[filled] = sums[filled] / counts[filled, None]
        if not filled.all():  # re-seed empty clusters with the points farthest from their centre
            d = np.sum((Xc - new[labels]) ** 2, axis=1)
            far = np.argsort(d)[::-1][: int((~filled).sum())]
            new[~filled] = Xc[far]
        shift = float(np.sum((new - centers) ** 2))
        centers = new
        labels, _ = _assign(Xc, x_sq, centers)
        if shift <= tol_abs:
            break
    return labels, centers + X.mean(axis=0)
