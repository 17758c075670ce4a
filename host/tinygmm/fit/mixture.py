"""GaussianMixture: scikit-learn's estimator API, EM in the log domain, no scikit-learn needed."""
from __future__ import annotations

import inspect
import math
import numbers
import warnings
from time import time
from typing import Any

import numpy as np

from . import covariance as cov
from .em import Params, Workspace, em_pass, evaluate, log_sum_exp_inplace, m_step, params_from_labels, responsibilities
from ..errors import ConvergenceWarning, NotFittedError
from .kmeans import kmeans, kmeans_plusplus

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def check_random_state(seed: Any) -> np.random.RandomState:
    """None -> NumPy's global RandomState, int -> a new one, a RandomState -> itself."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _check_array(X: Any, name: str = "X") -> np.ndarray:
    """A finite 2-D float64 array, with scikit-learn's messages for what is not."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Input {name} cannot be converted to an array of floats: {exc}") from None
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {'scalar' if X.ndim == 0 else f'{X.ndim}D'} array instead. "
            "Reshape your data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"Found array with shape {X.shape}; a minimum of 1 sample and 1 feature is required.")
    if not np.isfinite(X).all():
        what = "NaN" if np.isnan(X).any() else "infinity or a value too large for dtype('float64')"
        raise ValueError(f"Input {name} contains {what}.")
    return X


def _params_shape_check(value: Any, shape: tuple, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {arr.shape}")
    return arr


class GaussianMixture:
    """Gaussian mixture model fitted by EM; a drop-in for ``sklearn.mixture.GaussianMixture``.

    Parameters, attributes and methods are scikit-learn's (see its documentation). What
    differs is inside: EM runs on centred data with every component evaluated by one
    matrix product per chunk (see :mod:`tinygmm.fit.em`), and data are always float64.
    """

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

    # -- scikit-learn's BaseEstimator protocol -------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "GaussianMixture":
        """Set constructor parameters; unknown names raise ValueError."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {self!r}. "
                    f"Valid parameters are: {sorted(valid)!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name in sorted(self._param_names()):  # alphabetical, as scikit-learn prints them
            value = getattr(self, name)
            default = defaults[name]
            if isinstance(value, np.ndarray) or isinstance(default, np.ndarray) or value is not default and value != default:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- validation ----------------------------------------------------------------------
    def _validate_params(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(
                f"The '{name}' parameter of GaussianMixture must be {rule}. Got {getattr(self, name)!r} instead."
            )

        def is_int(v: Any) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        def is_real(v: Any) -> bool:
            return isinstance(v, numbers.Real) and not isinstance(v, bool)

        for name, low in (("n_components", 1), ("max_iter", 0), ("n_init", 1), ("verbose_interval", 1)):
            v = getattr(self, name)
            if not is_int(v) or v < low:
                raise bad(name, f"an int in the range [{low}, inf)")
        for name in ("tol", "reg_covar"):
            v = getattr(self, name)
            if not is_real(v) or not v >= 0.0:
                raise bad(name, "a float in the range [0.0, inf)")
        if self.covariance_type not in cov.COVARIANCE_TYPES:
            raise bad("covariance_type", f"a str among {set(sorted(cov.COVARIANCE_TYPES))}")
        if self.init_params not in INIT_PARAMS:
            raise bad("init_params", f"a str among {set(sorted(INIT_PARAMS))}")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise bad("warm_start", "an instance of 'bool' or an instance of 'numpy.bool'")
        if not (is_int(self.verbose) or isinstance(self.verbose, (bool, np.bool_))) or self.verbose < 0:
            raise bad("verbose", "an int in the range [0, inf) or a bool")

    def _check_initial_parameters(self, n_features: int) -> tuple:
        K, D, ct = self.n_components, n_features, self.covariance_type
        w = m = p = None
        if self.weights_init is not None:
            w = _params_shape_check(self.weights_init, (K,), "weights")
            if np.any(w < 0.0) or np.any(w > 1.0):
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got max value "
                    f"{w.min():.5f}, min value {w.max():.5f}"
                )
            if abs(1.0 - w.sum()) > 1e-8:
                raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f}")
        if self.means_init is not None:
            m = _params_shape_check(self.means_init, (K, D), "means")
        if self.precisions_init is not None:
            shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ct]
            p = _params_shape_check(self.precisions_init, shape, f"{ct} precision")
            if ct in ("full", "tied"):
                for mat in p.reshape(-1, D, D):
                    if not (np.allclose(mat, mat.T) and np.all(np.linalg.eigvalsh(mat) > 0.0)):
                        raise ValueError(f"'{ct} precision' should be symmetric, positive-definite")
            elif np.any(p <= 0.0):
                raise ValueError(f"'{ct} precision' should be positive")
        return w, m, p

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _check_X(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        X = _check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "GaussianMixture":
        """Estimate the parameters with EM, keeping the best of ``n_init`` initialisations."""
        self._fit(X)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of each row of X."""
        X = self._fit(X)
        # A final E-step so that fit_predict(X) always equals fit(X).predict(X).
        return self.predict(X)

    def _fit(self, X: Any) -> np.ndarray:
        """EM with restarts; returns X as validated."""
        self._validate_params()
        X = _check_array(X)
        n, D = X.shape
        if n < 2:
            raise ValueError(f"Found array with {n} sample(s) (shape={X.shape}) while a minimum of 2 is required by GaussianMixture.")
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, n_samples = {n}"
            )
        init = self._check_initial_parameters(D)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init and D != self.n_features_in_:
            raise ValueError(f"X has {D} features, but GaussianMixture is expecting {self.n_features_in_} features as input.")
        n_init = self.n_init if do_init else 1
        self.n_features_in_ = D

        center = X.mean(axis=0)
        xt = np.ascontiguousarray((X - center).T)  # feature-major: (D, N)
        scatter = xt @ xt.T if self.covariance_type == "tied" else None
        rng = check_random_state(self.random_state)
        ws = Workspace(xt, self.covariance_type, self.n_components)

        best = None
        max_lower_bound = -np.inf
        self.converged_ = False
        for i_init in range(n_init):
            self._verbose_init_begin(i_init)
            if do_init:
                params = self._initial_params(X, xt, center, rng, init)
                lower_bound = -np.inf
            else:
                params = self._centred_params(center)
                lower_bound = self.lower_bound_
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
                stacklevel=2,
            )
        params, self.n_iter_, self.lower_bounds_ = best
        self._set_from_centred(params, center)
        self.lower_bound_ = max_lower_bound
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
        return Params(self.covariance_type, self.weights_, self.means_ - center,
                      self.covariances_, self.precisions_cholesky_)

    def _set_from_centred(self, p: Params, center: np.ndarray) -> None:
        self.weights_ = p.weights
        self.means_ = p.means_c + center
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = p.prec_chol
        self.precisions_ = cov.precisions_from_cholesky(p.prec_chol, self.covariance_type)

    # -- inference -----------------------------------------------------------------------
    def _evaluate(self, X: Any, reduce) -> np.ndarray:
        """``reduce`` over the (K, n) log-joints of chunks of X, about the mean of the means."""
        X = self._check_X(X)
        center = self.means_.mean(axis=0)
        xt = np.ascontiguousarray((X - center).T)
        return evaluate(xt, self._centred_params(center), reduce)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample."""
        return self._evaluate(X, log_sum_exp_inplace)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples."""
        return float(self.score_samples(X).mean())

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable component of each sample."""
        return self._evaluate(X, lambda a: np.argmax(a, axis=0))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
        return self._evaluate(X, responsibilities).T.copy()

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples and their component labels (same draws as scikit-learn for a seed)."""
        self._check_is_fitted()
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

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        X = _check_array(X)
        return -2.0 * self.score(X) * X.shape[0] + self._n_parameters() * math.log(X.shape[0])

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        X = _check_array(X)
        return -2.0 * self.score(X) * X.shape[0] + 2 * self._n_parameters()

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
