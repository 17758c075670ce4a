"""Choosing the number of components: BIC / AIC / likelihood-ratio table and the choice it makes."""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
from scipy.stats import chi2
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ..errors import TinyGMMError
from .mixture import GaussianMixture, report_passes
from .passes import shared_first_pass
from .sources import as_source

CRITERIA = ("bic", "aic", "lrt")


@dataclass(frozen=True)
class Row:
    """One candidate number of components.

    ``lrt_*`` describe the test of this k against the next candidate (None on the last row):
    statistic ``2 * (ll_next - ll_k)`` on total log-likelihoods, degrees of freedom the
    difference in free parameters, and its chi-square upper-tail p-value.
    """

    k: int
    log_likelihood: float  # total over the N rows: score(X) * N
    n_parameters: int
    bic: float
    aic: float
    converged: bool
    lrt_statistic: float | None = None
    lrt_df: int | None = None
    lrt_p_value: float | None = None


@dataclass
class Selection:
    rows: list[Row]
    best_k: int
    model: GaussianMixture  # fitted with best_k components
    rule: str  # how best_k was chosen, as a sentence
    criterion: str

    @property
    def best_row(self) -> Row:
        return next(r for r in self.rows if r.k == self.best_k)


@dataclass(frozen=True)
class Progress:
    """Passed to the ``progress`` callback before each EM run and after each of its passes."""

    index: int  # 1-based position of k among the candidates
    total: int  # number of candidates
    k: int
    restart: int  # 1-based; 0: all n_init restarts side by side (data read in blocks)
    n_init: int
    em_pass: int = 0  # passes done (0: the run starts)
    log_likelihood: float | None = None  # mean per row, after the pass (the best restart's)
    seconds: float | None = None  # the pass's


def select_n_components(
    X: Any,
    candidates: Iterable[int],
    criterion: str = "bic",
    covariance_type: str = "full",
    n_init: int = 1,
    random_state: Any = None,
    alpha: float = 0.05,
    progress: Callable[[Progress], None] | None = None,
    **gmm_kwargs: Any,
) -> Selection:
    """Fit a GaussianMixture for each candidate k and choose one by BIC, AIC or a likelihood-ratio test.

    ``bic``/``aic``: the lowest value.  ``lrt``: the smallest k whose step to the next
    candidate does not improve the total log-likelihood significantly at ``alpha``
    (statistic ``2 (ll_{k+1} - ll_k)``, chi-square with the difference in parameter counts).
    Caveat: a mixture with k components is a boundary case of one with k+1, so the
    regularity conditions behind the chi-square limit do not hold; treat LRT p-values as a
    heuristic (they tend to favour too many components), and prefer BIC when in doubt.

    Each k gets ``n_init`` EM runs from one random stream, exactly as
    ``GaussianMixture(k, n_init=n_init, random_state=random_state).fit(X)`` would do, run
    here one at a time so that ``progress`` can report each of them. ``X`` may also be data read
    in blocks (a memmap, :class:`~tinygmm.fit.sources.ParquetData`, a Dask array): then each k is
    that one fit, its restarts side by side, and the likelihoods one more pass.
    """
    if criterion not in CRITERIA:
        raise TinyGMMError(f"criterion {criterion!r} is not one of {', '.join(CRITERIA)}")
    if not 0.0 < alpha < 1.0:
        raise TinyGMMError(f"alpha {alpha} must be between 0 and 1")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise TinyGMMError(f"n_init must be a positive integer, got {n_init!r}")
    source = as_source(X)
    if source is None:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise TinyGMMError("X must be a 2-D array of finite numbers")
    ks = _check_candidates(candidates, X.shape[0] if source is None else sum(source.block_rows()))
    if criterion == "lrt" and len(ks) < 2:
        raise TinyGMMError("the likelihood-ratio test needs at least two candidate values of k")

    n = 0
    fits: list[tuple[int, GaussianMixture, float, int]] = []
    # data read in blocks: the fits of every k share one first pass (rows, mean, initialisation sample)
    with shared_first_pass() if source is not None else contextlib.nullcontext():
        for index, k in enumerate(ks, start=1):
            report = None if progress is None else functools.partial(_report, progress, index, len(ks), k, n_init)
            if source is None:
                gmm = _fit_best_of(X, k, covariance_type, n_init, random_state, report, gmm_kwargs)
            else:
                gmm = _fit_side_by_side(source, k, covariance_type, n_init, random_state, report, gmm_kwargs)
            ll, n = gmm._total_log_likelihood(X if source is None else source)
            fits.append((k, gmm, ll, gmm._n_parameters()))

    rows = []
    for i, (k, gmm, ll, p) in enumerate(fits):
        lrt: dict[str, Any] = {}
        if i + 1 < len(fits):
            _, _, ll_next, p_next = fits[i + 1]
            stat = 2.0 * (ll_next - ll)
            df = p_next - p
            lrt = {"lrt_statistic": stat, "lrt_df": df, "lrt_p_value": float(chi2.sf(stat, df))}
        rows.append(
            Row(k, ll, p, -2.0 * ll + p * math.log(n), -2.0 * ll + 2.0 * p, bool(gmm.converged_), **lrt)
        )

    best, rule = _choose(rows, criterion, alpha, consecutive=all(b - a == 1 for a, b in zip(ks, ks[1:])))
    model = next(g for k, g, _, _ in fits if k == best)
    return Selection(rows, best, model, rule, criterion)


def _check_candidates(candidates: Iterable[int], n: int) -> list[int]:
    try:
        ks = sorted({int(k) for k in candidates})
    except (TypeError, ValueError):
        raise TinyGMMError(f"candidates must be whole numbers, got {candidates!r}") from None
    if not ks:
        raise TinyGMMError("no candidate numbers of components were given")
    if ks[0] < 1:
        raise TinyGMMError(f"the number of components must be at least 1, got {ks[0]}")
    if ks[-1] > n:
        raise TinyGMMError(f"k={ks[-1]} needs at least {ks[-1]} rows of data, but there are {n}; lower the k range")
    return ks


def _fit_best_of(
    X: np.ndarray,
    k: int,
    covariance_type: str,
    n_init: int,
    random_state: Any,
    report: Callable[[int], None] | None,
    gmm_kwargs: dict,
) -> GaussianMixture:
    """The n_init loop of GaussianMixture.fit, one EM run per call: same stream, same winner."""
    rng = check_random_state(random_state)
    best: GaussianMixture | None = None
    with warnings.catch_warnings():
        # Only the winner's convergence matters, as in GaussianMixture.fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for restart in range(1, n_init + 1):
            gmm = GaussianMixture(k, covariance_type=covariance_type, n_init=1, random_state=rng, **gmm_kwargs)
            _fit_reporting(gmm, X, k, restart, report)
            if best is None or gmm.lower_bound_ > best.lower_bound_:
                best = gmm
    assert best is not None
    best.set_params(n_init=n_init, random_state=random_state)
    _warn_unconverged(best, k)
    return best


def _report(progress: Callable[[Progress], None], index: int, n_ks: int, k: int, n_init: int, restart: int,
            em_pass: int = 0, ll: float | None = None, seconds: float | None = None) -> None:
    """Tell ``progress`` where the selection is: the fit of candidate ``index`` (k), its restart, its EM pass."""
    progress(Progress(index, n_ks, k, restart, n_init, em_pass, ll, seconds))


def _fit_side_by_side(source: Any, k: int, covariance_type: str, n_init: int, random_state: Any,
                      report: Callable[..., None] | None, gmm_kwargs: dict) -> GaussianMixture:
    """GaussianMixture.fit itself on data read in blocks: its restarts share every pass."""
    gmm = GaussianMixture(k, covariance_type=covariance_type, n_init=n_init, random_state=random_state, **gmm_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _fit_reporting(gmm, source, k, 0, report)
    _warn_unconverged(gmm, k)
    return gmm


def _fit_reporting(gmm: GaussianMixture, X: Any, k: int, restart: int, report: Callable[..., None] | None) -> None:
    """``gmm.fit(X)``, telling ``report`` when it starts and after each EM pass."""
    with contextlib.ExitStack() as stack:
        if report is not None:
            report(restart)
            stack.enter_context(report_passes(lambda i, ll, seconds: report(restart, i, ll, seconds)))
        try:
            gmm.fit(X)
        except ValueError as e:
            raise TinyGMMError(f"fitting k={k} failed: {e}") from None


def _warn_unconverged(best: GaussianMixture, k: int) -> None:
    if not best.converged_ and best.max_iter > 0:
        warnings.warn(
            f"k={k}: the best EM run did not converge in max_iter={best.max_iter} iterations; "
            "increase max_iter or tol, or check for degenerate data",
            ConvergenceWarning,
            stacklevel=4,
        )


def _choose(rows: list[Row], criterion: str, alpha: float, consecutive: bool) -> tuple[int, str]:
    if criterion in ("bic", "aic"):
        values = [getattr(r, criterion) for r in rows]
        return rows[int(np.argmin(values))].k, f"lowest {criterion.upper()}"
    step = "step to k+1" if consecutive else "step to the next candidate"
    for r in rows[:-1]:
        assert r.lrt_p_value is not None
        if r.lrt_p_value >= alpha:
            return r.k, f"smallest k whose {step} is not significant at alpha={alpha:g} (chi-square LRT)"
    return rows[-1].k, (
        f"every step was significant at alpha={alpha:g} (chi-square LRT), so the largest candidate; "
        "try a wider k range"
    )
