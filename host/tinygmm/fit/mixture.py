"""GaussianMixture: a scikit-learn estimator (``BaseEstimator``, ``DensityMixin``) whose EM is tinygmm's own."""
from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from dataclasses import dataclass, field
from time import perf_counter, time
from typing import Any, Callable, Iterator

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import covariance as cov
from .em import (Params, Workspace, apply_exact, em_pass, evaluate, log_sum_exp_inplace, m_step, needs_exact,
                 params_from_labels, params_from_stats, responsibilities)
from .kmeans import kmeans, kmeans_plusplus
from .passes import block_offsets, score_block
from .sources import Source, as_source as _as_source, is_dask_array

# Called after every EM pass of a fit in this context (see report_passes).
_PASS_HOOK: contextvars.ContextVar[Callable[[int, float, float], None] | None] = contextvars.ContextVar(
    "tinygmm_pass_hook", default=None)


@contextlib.contextmanager
def report_passes(callback: Callable[[int, float, float], None]) -> Iterator[None]:
    """Within the block, every fit calls ``callback(pass_number, mean_log_likelihood, seconds)``
    after each EM pass (restarts run side by side report the best of them)."""
    token = _PASS_HOOK.set(callback)
    try:
        yield
    finally:
        _PASS_HOOK.reset(token)


@dataclass
class _Run:
    """One initialisation's EM run in a fit over blocks (restarts advance side by side)."""

    params: Params
    lower_bound: float = -np.inf
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


def _initial_array(value: Any, shape: tuple, name: str) -> np.ndarray:
    """A user's initial parameter as scikit-learn reads it (float64 or float32, finite), of ``shape``."""
    arr = check_array(value, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=True)
    if arr.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}")
    return arr


def _on_block(block: np.ndarray, gm: GaussianMixture, method: str, columns: int | None, dtype: np.dtype) -> np.ndarray:
    """``gm.method(block)`` for one block of a Dask array. A block may hold no rows (boolean
    filtering makes such blocks): the public methods refuse fewer than one row, so its empty
    result is made here."""
    if block.shape[0] == 0:
        return np.empty((0,) if columns is None else (0, columns), dtype=dtype)
    return getattr(gm, method)(block)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture model fitted by EM; a drop-in for ``sklearn.mixture.GaussianMixture``.

    Parameters, attributes, methods, parameter and input validation, ``NotFittedError`` and
    ``ConvergenceWarning`` are scikit-learn's (see its documentation). What differs is inside: EM
    runs on centred data with every component evaluated by one matrix product per chunk (see
    :mod:`tinygmm.fit.em`), always in float64, since the expanded features cancel digits that
    float32 does not have. Fitted attributes and outputs then take the input's float dtype, as
    scikit-learn's do.
    """

    # scikit-learn's rules for the very same parameters: its checks and its messages, word for word.
    _parameter_constraints: dict = dict(_SklearnGaussianMixture._parameter_constraints)

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full", tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, n_init: int = 1,
                 init_params: str = "kmeans", weights_init: Any = None, means_init: Any = None,
                 precisions_init: Any = None, random_state: Any = None, warm_start: bool = False,
                 verbose: int = 0, verbose_interval: int = 10):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- validation ----------------------------------------------------------------------
    def _check_initial_parameters(self, n_features: int) -> tuple:
        """weights_init, means_init and precisions_init checked as scikit-learn checks them, as float64."""
        K, D, ct = self.n_components, n_features, self.covariance_type
        w = m = p = None
        if self.weights_init is not None:
            w = _initial_array(self.weights_init, (K,), "weights")
            if np.any(w < 0.0) or np.any(w > 1.0):
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got max value "
                    f"{w.min():.5f}, min value {w.max():.5f}"
                )
            if not abs(1.0 - float(w.sum())) <= (1e-6 if w.dtype == np.float32 else 1e-8):
                raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")
        if self.means_init is not None:
            m = _initial_array(self.means_init, (K, D), "means")
        if self.precisions_init is not None:
            shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ct]
            p = _initial_array(self.precisions_init, shape, f"{ct} precision")
            if ct in ("full", "tied"):
                for mat in p.reshape(-1, D, D):
                    if not (np.allclose(mat, mat.T) and np.all(np.linalg.eigvalsh(mat) > 0.0)):
                        raise ValueError(f"'{ct} precision' should be symmetric, positive-definite")
            elif np.any(p <= 0.0):
                raise ValueError(f"'{ct} precision' should be positive")
        return tuple(None if a is None else a.astype(np.float64) for a in (w, m, p))

    # -- fitting -------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Estimate the parameters with EM, keeping the best of ``n_init`` initialisations."""
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of each row of X."""
        X = self._fit(X)
        # A final E-step so that fit_predict(X) always equals fit(X).predict(X).
        return self.predict(X)

    def _fit(self, X: Any) -> Any:
        """EM with restarts; returns X as validated (a source of blocks as given)."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        source = _as_source(X)
        if source is not None:
            self._fit_blocks(source, do_init)
            return X
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2, reset=do_init)
        n, D = X.shape
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, n_samples = {n}"
            )
        init = self._check_initial_parameters(D)
        n_init = self.n_init if do_init else 1

        X64 = np.asarray(X, dtype=np.float64)
        center = X64.mean(axis=0)
        xt = np.ascontiguousarray((X64 - center).T)  # feature-major: (D, N)
        scatter = xt @ xt.T if self.covariance_type == "tied" else None
        rng = check_random_state(self.random_state)
        ws = Workspace(xt, self.covariance_type, self.n_components)

        best = None
        max_lower_bound = -np.inf
        self.converged_ = False
        hook = _PASS_HOOK.get()
        for i_init in range(n_init):
            self._verbose_init_begin(i_init)
            if do_init:
                params = self._initial_params(X64, xt, center, rng, init)
                lower_bound = -np.inf
            else:
                params = self._centred_params(center)
                lower_bound = float(self.lower_bound_)
            lower_bounds: list[float] = []
            n_iter = 0
            converged = False
            for n_iter in range(1, self.max_iter + 1):
                prev = lower_bound
                t0 = perf_counter()
                lower_bound, S = em_pass(xt, params, ws)
                old = params
                _, params = m_step(xt, S, lambda: evaluate(xt, old, responsibilities),
                                   self.covariance_type, self.reg_covar, scatter)
                lower_bounds.append(lower_bound)
                change = lower_bound - prev
                if hook is not None:
                    hook(n_iter, lower_bound, perf_counter() - t0)
                self._verbose_iter_end(n_iter, change)
                if abs(change) < self.tol:
                    converged = True
                    break
            if self.max_iter > 0:
                self._verbose_init_end(lower_bound, converged)
            if best is None or lower_bound > max_lower_bound:
                max_lower_bound = lower_bound
                best = (params, n_iter, lower_bounds)
                self.converged_ = converged

        params, self.n_iter_, lower_bounds = best
        self._finish(params, center, X.dtype, max_lower_bound, lower_bounds)
        return X

    def _finish(self, params: Params, center: np.ndarray, dtype: np.dtype, lower_bound: float,
                lower_bounds: list[float], stacklevel: int = 5) -> None:
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=stacklevel,  # the caller of fit or fit_predict (through _finish, _fit and _fit_context)
            )
        self._set_from_centred(params, center, dtype)
        self.lower_bound_ = dtype.type(lower_bound)
        self.lower_bounds_ = list(np.asarray(lower_bounds, dtype=dtype))

    # -- fitting data read in blocks ---------------------------------------------------------
    def _fit_blocks(self, source: Any, do_init: bool) -> None:
        """EM over a source of blocks (memmap, Parquet, Dask array): the same EM as in memory, its
        statistics summed over the blocks. A first pass gives the rows, their mean and scatter and a
        uniform sample, which the initialisation (k-means++ and Lloyd's iterations, or the other
        ``init_params``) works on; then every EM pass reads each block once for all restarts, which
        run side by side until each converges."""
        from . import passes

        ct, K, D = self.covariance_type, self.n_components, source.n_features
        init = self._check_initial_parameters(D)
        n_init = self.n_init if do_init else 1
        rng = check_random_state(self.random_state)
        need_sample = do_init and any(a is None for a in init)
        summary = passes.summarize(source, rng if need_sample else None,
                                   max(passes.SAMPLE_ROWS, passes.SAMPLE_PER_COMPONENT * K) if need_sample else 0)
        if summary.n_missing and not source.prep.drop_missing:
            raise ValueError(f"Input X contains NaN: {summary.n_missing} row(s) have a missing value "
                             f"(rows {summary.missing_listed}).")
        n = summary.n
        # n_features_in_ and its checks as for an array (the rows need not be in memory)
        validate_data(self, np.zeros((2, D)), reset=do_init)
        if n < 2:
            raise ValueError(f"Found array with {n} sample(s) while a minimum of 2 is required by GaussianMixture.")
        if n < K:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {K}, n_samples = {n}")
        center = summary.mean
        sample_xt = np.ascontiguousarray((summary.sample - center).T)
        self.converged_ = False
        runs = []
        for i_init in range(n_init):
            self._verbose_init_begin(i_init)
            if do_init:
                runs.append(_Run(self._initial_params(summary.sample, sample_xt, center, rng, init)))
            else:
                runs.append(_Run(self._centred_params(center), float(self.lower_bound_)))
        hook = _PASS_HOOK.get()
        active = list(runs) if self.max_iter > 0 else []
        for n_iter in range(1, self.max_iter + 1):
            if not active:
                break
            t0 = perf_counter()
            per_block = source.map(passes.em_block, center, [r.params for r in active])
            updates = []
            for i, r in enumerate(active):
                total = sum(b[i][0] for b in per_block)
                S = sum(b[i][1] for b in per_block)
                nk, new = params_from_stats(S, D, ct, self.reg_covar, summary.scatter)
                updates.append((r, total / n, nk, new, needs_exact(new)))
            redo = [u for u in updates if u[4].size]
            if redo:  # components far from the centre: their covariances from centred differences, one more pass
                jobs = [(r.params, new.means_c, which) for r, _, _, new, which in redo]
                sums = source.map(passes.exact_block, center, jobs)
                for j, (_, _, nk, new, which) in enumerate(redo):
                    apply_exact(new, nk, sum(b[j] for b in sums), which, self.reg_covar)
            changes = []
            for r, lower_bound, _, new, _ in updates:
                changes.append(lower_bound - r.lower_bound)
                r.params, r.lower_bound, r.n_iter = new, lower_bound, n_iter
                r.lower_bounds.append(lower_bound)
                r.converged = abs(changes[-1]) < self.tol
            self._verbose_iter_end(n_iter, max(changes, key=abs))
            if hook is not None:
                hook(n_iter, max(r.lower_bound for r in active), perf_counter() - t0)
            active = [r for r in active if not r.converged]
        best = None
        for r in runs:
            if self.max_iter > 0:
                self._verbose_init_end(r.lower_bound, r.converged)
            if best is None or r.lower_bound > best.lower_bound:
                best = r
        assert best is not None
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self._finish(best.params, center, source.dtype, best.lower_bound, best.lower_bounds, stacklevel=6)

    def _initial_params(self, X: np.ndarray, xt: np.ndarray, center: np.ndarray,
                        rng: np.random.RandomState, init: tuple) -> Params:
        """Initial parameters from responsibilities of ``init_params``, overridden by user values."""
        w_init, m_init, p_init = init
        K, ct = self.n_components, self.covariance_type
        n = X.shape[0]
        weights = means_c = covariances = None
        if w_init is None or m_init is None or p_init is None:
            if self.init_params == "random":
                resp = rng.uniform(size=(n, K))
                resp = np.ascontiguousarray((resp / resp.sum(axis=1)[:, None]).T)
                nk, p = m_step(xt, None, lambda: resp, ct, self.reg_covar)
            else:  # hard assignments; -1: the row starts in no component
                if self.init_params == "kmeans":
                    labels, _ = kmeans(xt, K, rng)
                else:
                    idx = (rng.choice(n, size=K, replace=False) if self.init_params == "random_from_data"
                           else kmeans_plusplus(X, K, rng)[1])
                    labels = np.full(n, -1)
                    labels[idx] = np.arange(K)
                nk, p = params_from_labels(xt, labels, K, ct, self.reg_covar)
            weights, means_c, covariances = nk / n, p.means_c, p.covariances
        if w_init is not None:
            weights = w_init
        if m_init is not None:
            means_c = m_init - center
        if p_init is None:
            prec_chol = cov.precision_cholesky(covariances, ct)
        else:
            prec_chol = cov.precision_cholesky_from_precisions(p_init, ct)
            covariances = cov.covariances_from_precision_cholesky(prec_chol, ct)
        return Params(ct, weights, means_c, covariances, prec_chol)

    def _centred_params(self, center: np.ndarray) -> Params:
        """The fitted parameters in float64, means relative to ``center``."""
        def f64(a: np.ndarray) -> np.ndarray:
            return np.asarray(a, dtype=np.float64)

        return Params(self.covariance_type, f64(self.weights_), f64(self.means_) - center,
                      f64(self.covariances_), f64(self.precisions_cholesky_))

    def _set_from_centred(self, p: Params, center: np.ndarray, dtype: np.dtype) -> None:
        fitted = {"weights_": p.weights, "means_": p.means_c + center, "covariances_": p.covariances,
                  "precisions_cholesky_": p.prec_chol,
                  "precisions_": cov.precisions_from_cholesky(p.prec_chol, self.covariance_type)}
        for name, value in fitted.items():
            setattr(self, name, np.asarray(value, dtype=dtype))

    # -- inference -----------------------------------------------------------------------
    def _evaluate(self, X: Any, reduce: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.dtype]:
        """``reduce`` over the float64 (K, n) log-joints of chunks of X, about the mean of the means; and the
        dtype of the outputs, NumPy's promotion of X's and the model's (what scikit-learn's computes in)."""
        check_is_fitted(self)
        if isinstance(_as_source(X), Source) and not isinstance(X, np.ndarray):
            raise TypeError(f"{type(X).__name__} is read in blocks: score, bic and aic take it; for an output per "
                            "row, pass a Dask array (ParquetData(...).to_dask()) or the rows themselves")
        X = validate_data(self, X, reset=False)
        means = np.asarray(self.means_, dtype=np.float64)
        center = means.mean(axis=0)
        xt = np.ascontiguousarray((X - center).T)
        return evaluate(xt, self._centred_params(center), reduce), np.result_type(X.dtype, self.means_.dtype)

    def _per_block(self, X: Any, method: str, columns: int | None = None) -> Any:
        """``method`` applied to each block of a Dask array, lazily: a Dask array of the results."""
        check_is_fitted(self)
        dtype = np.result_type(X.dtype, self.means_.dtype) if method != "predict" else np.intp
        X = X.rechunk({1: -1})
        if columns is None:
            return X.map_blocks(_on_block, self, method, columns, dtype, drop_axis=1, dtype=dtype)
        return X.map_blocks(_on_block, self, method, columns, dtype, chunks=(X.chunks[0], (columns,)), dtype=dtype)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample (of a Dask array: a Dask array, computed block by block)."""
        if is_dask_array(X):
            return self._per_block(X, "score_samples")
        log_likelihoods, dtype = self._evaluate(X, log_sum_exp_inplace)
        return log_likelihoods.astype(dtype, copy=False)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples (memmaps, Parquet and Dask arrays: one pass over the blocks)."""
        if _as_source(X) is not None:
            total, n = self._total_log_likelihood(X)
            return total / n
        return float(self._evaluate(X, log_sum_exp_inplace)[0].mean())

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable component of each sample."""
        if is_dask_array(X):
            return self._per_block(X, "predict")
        return self._evaluate(X, lambda a: np.argmax(a, axis=0))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
        if is_dask_array(X):
            return self._per_block(X, "predict_proba", self.n_components)
        resp, dtype = self._evaluate(X, responsibilities)
        return np.ascontiguousarray(resp.T, dtype=dtype)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples and their component labels (same draws as scikit-learn for a seed)."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample."
            )
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        D = self.means_.shape[1]
        ct = self.covariance_type
        if ct == "full":
            X = np.vstack([rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(self.means_, self.covariances_, counts)])
        elif ct == "tied":
            X = np.vstack([rng.multivariate_normal(m, self.covariances_, int(s)) for m, s in zip(self.means_, counts)])
        else:
            X = np.vstack([m + rng.standard_normal(size=(s, D)) * np.sqrt(c)
                           for m, c, s in zip(self.means_, self.covariances_, counts)])
        y = np.concatenate([np.full(s, j, dtype=int) for j, s in enumerate(counts)])
        return X, y

    def _n_parameters(self) -> int:
        return cov.n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def _total_log_likelihood(self, X: Any) -> tuple[float, int]:
        """(score(X) * n, n): the criteria's likelihood term, from float64 log-likelihoods."""
        source = _as_source(X)
        if source is not None:
            check_is_fitted(self)
            if source.n_features != self.n_features_in_:
                raise ValueError(f"X has {source.n_features} features, but GaussianMixture is expecting "
                                 f"{self.n_features_in_} features as input.")
            center = np.asarray(self.means_, dtype=np.float64).mean(axis=0)
            parts = source.map(score_block, center, self._centred_params(center), per_block=block_offsets(source))
            return float(sum(p[0] for p in parts)), int(sum(p[1] for p in parts))
        log_likelihoods = self._evaluate(X, log_sum_exp_inplace)[0]
        n = log_likelihoods.shape[0]
        return float(log_likelihoods.mean()) * n, n

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        ll, n = self._total_log_likelihood(X)
        return -2.0 * ll + self._n_parameters() * math.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        ll, _ = self._total_log_likelihood(X)
        return -2.0 * ll + 2 * self._n_parameters()

    # -- verbose output, as scikit-learn prints it -----------------------------------------
    def _verbose_init_begin(self, i_init: int) -> None:
        if self.verbose:
            print(f"Initialization {i_init}")
            self._init_t0 = self._iter_t0 = time()

    def _verbose_iter_end(self, n_iter: int, change: float) -> None:
        if self.verbose and n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print(f"  Iteration {n_iter}")
            else:
                now = time()
                print(f"  Iteration {n_iter}\t time lapse {now - self._iter_t0:.5f}s\t ll change {change:.5f}")
                self._iter_t0 = now

    def _verbose_init_end(self, lower_bound: float, converged: bool) -> None:
        msg = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {msg}.")
        elif self.verbose >= 2:
            print(f"Initialization {msg}. time lapse {time() - self._init_t0:.5f}s\t lower bound {lower_bound:.5f}.")
