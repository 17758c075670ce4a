"""Test vectors for comparing a device with the host: where float32 and far-away inputs bite.

Every vector is a float32 input in raw (unscaled) units with the kind of place it probes. The
file stores each value as its IEEE-754 bit pattern, so NaN, -0.0 and subnormals survive.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TinyGMMError
from ..model import Model

FORMAT = "tinygmm-vectors"
VERSION = 1
KINDS = ("train", "sample", "box", "far10", "far1000", "boundary", "extreme", "nonfinite")
# Bisection steps toward a decision boundary: 2^-40 of the segment is far below float32 spacing.
BISECT_STEPS = 40
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)


@dataclass
class Vectors:
    kinds: list[str]  # one of KINDS per row
    X: np.ndarray  # (n, D) float32, raw units
    model_id: str

    def of_kind(self, kind: str) -> np.ndarray:
        return self.X[np.asarray(self.kinds) == kind]


def _to_raw(model: Model, Z: np.ndarray) -> np.ndarray:
    return Z if model.scaler is None else Z * model.scaler.scale + model.scaler.mean


def _boundary_points(model: Model, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Points on the float64 decision boundary between pairs of differently-labelled points."""
    la, lb = model.predict(A), model.predict(B)
    A, B, la = A[la != lb], B[la != lb], la[la != lb]
    if not len(A):  # every pair predicts the same component (a background component, say): no boundary seen
        return A
    lo, hi = np.zeros(len(A)), np.ones(len(A))
    for _ in range(BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        same = model.predict(A + mid[:, None] * (B - A)) == la
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return A + (0.5 * (lo + hi))[:, None] * (B - A)


def make_vectors(model: Model, X_train: np.ndarray | None = None, n_each: int = 200, seed: int = 0) -> Vectors:
    """Vectors of every kind in KINDS (``train`` only when training data are given)."""
    rng = np.random.RandomState(seed)
    D = model.n_features
    gmm = model.to_gmm()
    gmm.random_state = seed
    sample = _to_raw(model, gmm.sample(max(n_each, 2))[0])
    lo, hi = sample.min(axis=0), sample.max(axis=0)
    if X_train is not None and len(X_train):
        lo, hi = np.minimum(lo, X_train.min(axis=0)), np.maximum(hi, X_train.max(axis=0))
    center, span = 0.5 * (lo + hi), np.maximum(hi - lo, 1e-30)
    parts: list[tuple[str, np.ndarray]] = []
    if X_train is not None and len(X_train):
        parts.append(("train", X_train[rng.choice(len(X_train), min(n_each, len(X_train)), replace=False)]))
    parts.append(("sample", sample[:n_each]))
    parts.append(("box", center + (rng.uniform(-1.0, 1.0, (n_each, D)) * span)))  # twice the data's box
    dirs = rng.normal(size=(n_each // 4 + 1, D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    parts.append(("far10", center + 10.0 * dirs * span))
    parts.append(("far1000", center + 1000.0 * dirs * span))
    if model.n_components > 1:
        i, j = rng.randint(len(sample), size=(2, 4 * n_each))
        parts.append(("boundary", _boundary_points(model, sample[i], sample[j])[:n_each]))
    extreme = [np.full(D, v) for v in (0.0, -0.0, _F32_MAX, -_F32_MAX, _F32_TINY, 1e-45, 1e30, -1e30)]
    parts.append(("extreme", np.array(extreme)))
    nonfinite = np.repeat(center[None, :], 3, axis=0)
    for r, v in enumerate((np.nan, np.inf, -np.inf)):
        nonfinite[r, r % D] = v
    parts.append(("nonfinite", nonfinite))
    kinds = [k for k, a in parts for _ in range(len(a))]
    with np.errstate(over="ignore"):
        X = np.vstack([a for _, a in parts]).astype(np.float32)
    return Vectors(kinds, X, model.model_id)


def dumps_vectors(vectors: Vectors) -> str:
    """The vectors as JSON, each value a float32 bit pattern in hex, one vector per line."""
    bits = vectors.X.view(np.uint32)
    rows = [json.dumps({"kind": k, "x": [f"{b:08x}" for b in row]}) for k, row in zip(vectors.kinds, bits)]
    head = json.dumps({"format": FORMAT, "version": VERSION, "model_id": vectors.model_id,
                       "n_features": int(vectors.X.shape[1])})[:-1]
    return head + ', "vectors": [\n' + ",\n".join(rows) + "\n]}\n"


def load_vectors(path: str | os.PathLike) -> Vectors:
    """Read a file ``dumps_vectors`` wrote (an exported project's test_vectors.json); a malformed one is a TinyGMMError naming the problem."""
    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} file")
        D = int(doc["n_features"])
        rows = doc["vectors"]
        bits = np.array([[int(h, 16) for h in r["x"]] for r in rows], dtype=np.uint32).reshape(len(rows), D)
        kinds = [str(r["kind"]) for r in rows]
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown vector kinds {unknown}")
        return Vectors(kinds, bits.view(np.float32), str(doc["model_id"]))
    except FileNotFoundError:
        raise TinyGMMError(f"{path}: no such test-vector file (re-run `tinygmm export`)") from None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise TinyGMMError(f"{path}: bad test-vector file: {e or 'JSON nested too deeply'}") from None
