"""What one pass over data in blocks computes per block (:mod:`tinygmm.fit.sources` reads the blocks):
the first pass's summary (complete rows, mean, scatter, missing rows, a uniform sample), an EM pass's
statistics for every restart, the exact recomputation of far components, and a score. Each function
runs where its block is (a Dask task on a worker, or here); the caller adds the results up in block order.
"""
from __future__ import annotations

import contextlib
import itertools
import pickle
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..data import MAX_LISTED_ROWS
from .em import Params, Workspace, em_sums, evaluate, exact_sums, log_sum_exp_inplace, n_expanded, responsibilities
from .sources import Prep, Source

# Rows of the uniform sample drawn in the first pass: k-means initialisation and anomaly thresholds
# work on it (never fewer than SAMPLE_PER_COMPONENT rows per component).
SAMPLE_ROWS = 100_000
SAMPLE_PER_COMPONENT = 1_000


@dataclass
class Summary:
    """The first pass: complete rows, their mean and scatter about it, missing rows, a uniform sample."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray  # sum of (x - mean)(x - mean)'
    sample: np.ndarray  # (m, D) complete rows, in data order
    n_missing: int = 0
    missing_rows: list[int] = field(default_factory=list)  # the first few, 0-based

    @property
    def missing_listed(self) -> str:
        """The first missing rows, ' ...' when there are more: what an error about them names."""
        return ", ".join(map(str, self.missing_rows)) + (" ..." if self.n_missing > len(self.missing_rows) else "")

    @property
    def variance(self) -> np.ndarray:
        return np.diag(self.scatter) / max(self.n, 1)

    def add(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        """Chan et al.'s pairwise update: no cancellation however far the data sit from the origin."""
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.scatter = n, mean, scatter
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.scatter = self.scatter + scatter + np.outer(delta, delta) * (self.n * n / total)
        self.n = total


def summary_block(block: Any, prep: Prep, offset_and_picks: tuple[int, np.ndarray]) -> tuple:
    """(complete rows, their mean, scatter, the picked complete rows, missing rows, the first few)."""
    offset, picks = offset_and_picks
    xt, missing = prep.columns(block, offset, refuse=False)  # counted here, refused by the caller
    complete = np.ones(len(block), dtype=bool)
    complete[missing - offset] = False
    sample = prep.columns(np.asarray(block)[picks[complete[picks]]])[0].T
    listed = missing[:MAX_LISTED_ROWS].tolist()
    if xt.shape[1] == 0:
        return 0, None, None, sample, missing.size, listed
    mean = xt.mean(axis=1)
    xt -= mean[:, None]
    return xt.shape[1], mean, xt @ xt.T, sample, missing.size, listed


def sample_indices(rng: np.random.RandomState, n: int, m: int) -> np.ndarray:
    """``m`` distinct row numbers below ``n``, uniform, sorted: without the n-long permutation
    that ``choice(replace=False)`` makes (160 MB for 20 million rows)."""
    if m >= n:
        return np.arange(n)
    if 4 * m >= n:
        return np.sort(rng.choice(n, m, replace=False))
    picked = np.unique(rng.randint(0, n, size=m + m // 8 + 16))
    while picked.size < m:
        picked = np.union1d(picked, rng.randint(0, n, size=m - picked.size + 16))
    if picked.size > m:
        picked = np.sort(rng.choice(picked, m, replace=False))
    return picked


# Within shared_first_pass(): first passes already made, by (source, sample size, random state).
_FIRST_PASSES: ContextVar[dict | None] = ContextVar("first_passes", default=None)


@contextlib.contextmanager
def shared_first_pass() -> Iterator[None]:
    """Within the block, a fit that would make a first pass made before (the same source, sample size
    and random state: select_n_components over k with a seed) takes its summary instead, and its
    random state as that pass left it, so that it fits exactly as if it had read the data again."""
    token = _FIRST_PASSES.set({})
    try:
        yield
    finally:
        _FIRST_PASSES.reset(token)


def summarize(source: Source, rng: np.random.RandomState | None, sample_rows: int) -> Summary:
    """One pass: complete-row count, mean, scatter, missing rows, and a uniform sample of about
    ``sample_rows`` rows drawn with ``rng`` (all rows when there are fewer; none without ``rng``)."""
    made = _FIRST_PASSES.get()
    if made is None:
        return _summarize(source, rng, sample_rows)
    key = (id(source), sample_rows, None if rng is None else pickle.dumps(rng.get_state(legacy=False)))
    if key not in made:  # the source is kept with its summary, so that its id is not reused meanwhile
        summary = _summarize(source, rng, sample_rows)
        made[key] = (source, summary, None if rng is None else rng.get_state(legacy=False))
    _, summary, after = made[key]
    if rng is not None:
        rng.set_state(after)
    return summary


def _summarize(source: Source, rng: np.random.RandomState | None, sample_rows: int) -> Summary:
    sizes = source.block_rows()
    total = int(sum(sizes))
    picks = sample_indices(rng, total, sample_rows) if rng is not None else np.empty(0, dtype=np.int64)
    offsets = np.array([*block_offsets(source), total], dtype=np.int64)  # each block's first row, then the end
    cuts = np.searchsorted(picks, offsets)
    per_block = [(int(offsets[i]), picks[cuts[i]:cuts[i + 1]] - offsets[i]) for i in range(len(sizes))]
    D = source.n_features
    out = Summary(0, np.zeros(D), np.zeros((D, D)), np.empty((0, D)))
    samples = []
    for n, mean, scatter, sample, n_missing, missing in source.map(summary_block, per_block=per_block):
        out.add(n, mean, scatter)
        if sample.size:
            samples.append(sample)
        out.n_missing += n_missing
        out.missing_rows.extend(missing[:MAX_LISTED_ROWS - len(out.missing_rows)])
    if samples:
        out.sample = np.vstack(samples)
    return out


def _centred(block: Any, prep: Prep, center: np.ndarray, offset: int = 0) -> np.ndarray:
    return prep.columns(block, offset, center=center)[0]


def block_offsets(source: Source) -> list[int]:
    """The row number of each block's first row: what an error about a row adds to its place in the block."""
    rows = source.block_rows()
    return [0, *itertools.accumulate(rows)][:len(rows)]


def em_block(block: Any, prep: Prep, center: np.ndarray, params: list[Params]) -> list[tuple[float, np.ndarray]]:
    """(total log-likelihood, statistics) of each parameter set on this block: one E/M pass."""
    xt = _centred(block, prep, center)
    if xt.shape[1] == 0:
        K, ct = params[0].means_c.shape[0], params[0].covariance_type
        return [(0.0, np.zeros((K, n_expanded(ct, xt.shape[0]))))] * len(params)
    return em_sums(xt, params, Workspace(xt, params[0].covariance_type, params[0].means_c.shape[0]))


def exact_block(block: Any, prep: Prep, center: np.ndarray,
                jobs: list[tuple[Params, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """For each (E-step parameters, new means, components): :func:`~tinygmm.fit.em.exact_sums` on this block."""
    xt = _centred(block, prep, center)
    out = []
    for old, means_c, which in jobs:
        resp = evaluate(xt, old, responsibilities) if xt.shape[1] else np.zeros((means_c.shape[0], 0))
        out.append(exact_sums(xt, resp, means_c, old.covariance_type, which))
    return out


def score_block(block: Any, prep: Prep, center: np.ndarray, params: Params, offset: int) -> tuple[float, int]:
    """(sum of the log-likelihoods, rows) of this block, whose first row is row ``offset`` of the data."""
    xt = _centred(block, prep, center, offset)
    if xt.shape[1] == 0:
        return 0.0, 0
    return float(np.sum(evaluate(xt, params, log_sum_exp_inplace))), xt.shape[1]
