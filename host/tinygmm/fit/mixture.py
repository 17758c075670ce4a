"""GaussianMixture: a scikit-learn estimator (``BaseEstimator``, ``DensityMixin``) whose EM is tinygmm's own."""
from __future__ import annotations

import math
import warnings
from time import time
from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import covariance as cov
from .em import Params, Workspace, em_pass, evaluate, log_sum_exp_inplace, m_step, params_from_labels, responsibilities
from .kmeans import kmeans, kmeans_plusplus


def _initial_array(value: Any, shape: tuple, name: str) -> np.ndarray:
    """A user's initial parameter as scikit-learn reads it (float64 or float32, finite), of ``shape``."""
    arr = check_array(value, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=True)
    if arr.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}")
    return arr


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

    def _fit(self, X: Any) -> np.ndarray:
        """EM with restarts; returns X as validated."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
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
                lower_bound, S = em_pass(xt, params, ws)
                old = params
                _, params = m_step(xt, S, lambda: evaluate(xt, old, responsibilities),
                                   self.covariance_type, self.reg_covar, scatter)
                lower_bounds.append(lower_bound)
                change = lower_bound - prev
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

        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,  # the caller of fit or fit_predict (through _fit and the _fit_context wrapper)
            )
        params, self.n_iter_, lower_bounds = best
        self._set_from_centred(params, center, X.dtype)
        self.lower_bound_ = X.dtype.type(max_lower_bound)
        self.lower_bounds_ = list(np.asarray(lower_bounds, dtype=X.dtype))
        return X

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
        X = validate_data(self, X, reset=False)
        means = np.asarray(self.means_, dtype=np.float64)
        center = means.mean(axis=0)
        xt = np.ascontiguousarray((X - center).T)
        return evaluate(xt, self._centred_params(center), reduce), np.result_type(X.dtype, self.means_.dtype)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample."""
        log_likelihoods, dtype = self._evaluate(X, log_sum_exp_inplace)
        return log_likelihoods.astype(dtype, copy=False)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples."""
        return float(self._evaluate(X, log_sum_exp_inplace)[0].mean())

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable component of each sample."""
        return self._evaluate(X, lambda a: np.argmax(a, axis=0))[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
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
