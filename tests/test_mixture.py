"""GaussianMixture against scikit-learn's, and the invariants of EM."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from conftest import MALL_CSV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygmm import GaussianMixture
from tinygmm.fit.em import R_EXACT, LogJoint, Params
from tinygmm.errors import ConvergenceWarning, NotFittedError

from sklearn import datasets  # noqa: E402  (the reference; in the test extra, never skipped)
from sklearn.mixture import GaussianMixture as SkGMM  # noqa: E402

TYPES = ["full", "tied", "diag", "spherical"]
FLOAT_ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
MALL = MALL_CSV


def three_blobs() -> np.ndarray:
    X, _ = datasets.make_blobs(600, n_features=2, centers=3, random_state=1)
    return X


def mall() -> np.ndarray:
    if not MALL.is_file():
        pytest.skip(f"{MALL} not present (the Mall Customers data is not part of the repository)")
    raw = np.genfromtxt(MALL, delimiter=",", skip_header=1, usecols=(2, 4))
    return raw


DATASETS = {
    "iris": lambda: datasets.load_iris().data,
    "wine": lambda: datasets.load_wine().data,
    "blobs": three_blobs,
    "mall": mall,
}


def shared_start(X: np.ndarray, K: int, ct: str, seed: int = 0) -> dict:
    """The same initial parameters for both estimators: K data rows and the data covariance."""
    rng = np.random.RandomState(seed)
    D = X.shape[1]
    prec = np.linalg.inv(np.cov(X.T) + 1e-6 * np.eye(D))
    precisions = {"full": np.repeat(prec[None], K, axis=0), "tied": prec,
                  "diag": np.repeat(np.diag(prec)[None], K, axis=0),
                  "spherical": np.full(K, np.mean(np.diag(prec)))}[ct]
    return dict(weights_init=np.full(K, 1.0 / K), means_init=X[rng.choice(len(X), K, replace=False)],
                precisions_init=precisions)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("ct", TYPES)
def test_same_start_same_fit_as_sklearn(name: str, ct: str) -> None:
    X = DATASETS[name]()
    kw = dict(covariance_type=ct, max_iter=500, tol=1e-9, **shared_start(X, 3, ct))
    sk = SkGMM(3, **kw).fit(X)
    tg = GaussianMixture(3, **kw).fit(X)
    assert tg.converged_ and sk.converged_
    assert tg.n_iter_ == sk.n_iter_
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert rel_err(getattr(tg, attr), getattr(sk, attr)) < 1e-6, attr
    assert tg.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9)
    np.testing.assert_array_equal(tg.predict(X), sk.predict(X))
    np.testing.assert_allclose(tg.score_samples(X), sk.score_samples(X), rtol=1e-7)
    assert tg.bic(X) == pytest.approx(sk.bic(X), rel=1e-9)
    assert tg.aic(X) == pytest.approx(sk.aic(X), rel=1e-9)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("ct", TYPES)
def test_restarts_reach_sklearn_likelihood(name: str, ct: str) -> None:
    """Both run k-means-initialised restarts with their own random streams; which local optimum
    one seed's restarts find is luck, so each side's best over a few seeds is compared."""
    X = DATASETS[name]()
    seeds = (0, 1, 2)
    sk = max(SkGMM(3, covariance_type=ct, n_init=10, random_state=s).fit(X).score(X) for s in seeds)
    tg = max(GaussianMixture(3, covariance_type=ct, n_init=10, random_state=s).fit(X).score(X) for s in seeds)
    assert tg >= sk - 1e-3


@pytest.mark.parametrize("ct", TYPES)
def test_imported_parameters_compute_what_sklearn_computes(ct: str) -> None:
    X = datasets.load_iris().data
    sk = SkGMM(4, covariance_type=ct, random_state=0).fit(X)
    tg = GaussianMixture(4, covariance_type=ct)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_", "n_features_in_"):
        setattr(tg, attr, getattr(sk, attr))
    Z = np.vstack([X, X * 10.0, X + 50.0])
    np.testing.assert_array_equal(tg.predict(Z), sk.predict(Z))
    np.testing.assert_allclose(tg.predict_proba(Z), sk.predict_proba(Z), atol=1e-10)
    np.testing.assert_allclose(tg.score_samples(Z), sk.score_samples(Z), rtol=1e-10)


def test_get_params_match_sklearn() -> None:
    assert GaussianMixture().get_params() == SkGMM().get_params()
    g = GaussianMixture().set_params(n_components=5, covariance_type="diag")
    assert (g.n_components, g.covariance_type) == (5, "diag")
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        g.set_params(nope=1)
    assert repr(g) == "GaussianMixture(covariance_type='diag', n_components=5)"


@pytest.mark.parametrize("params", [
    {"n_components": 0}, {"n_components": 1.5}, {"covariance_type": "bogus"}, {"tol": -1.0},
    {"reg_covar": -1e-3}, {"max_iter": -1}, {"n_init": 0}, {"init_params": "median"},
    {"warm_start": "yes"},
])
def test_parameter_validation_messages_match_sklearn(params: dict) -> None:
    X = datasets.load_iris().data
    with pytest.raises(ValueError) as sk_err:
        SkGMM(**params).fit(X)
    with pytest.raises(ValueError) as tg_err:
        GaussianMixture(**params).fit(X)
    # scikit-learn lists string options in set order; compare the message without them.
    strip = lambda s: re.sub(r"\{.*\}", "{...}", str(s))  # noqa: E731
    assert strip(tg_err.value) == strip(sk_err.value)


@pytest.mark.parametrize("ct", TYPES)
def test_initial_parameter_validation_matches_sklearn(ct: str) -> None:
    X = datasets.load_iris().data
    for bad in ({"weights_init": [0.5, 0.6]}, {"weights_init": [0.2, 0.2, 0.2]}, {"means_init": np.zeros((3, 4))},
                {"precisions_init": -np.ones({"full": (2, 4, 4), "tied": (4, 4), "diag": (2, 4), "spherical": (2,)}[ct])}):
        with pytest.raises(ValueError) as sk_err:
            SkGMM(2, covariance_type=ct, **bad).fit(X)
        with pytest.raises(ValueError) as tg_err:
            GaussianMixture(2, covariance_type=ct, **bad).fit(X)
        assert str(tg_err.value) == str(sk_err.value)


def test_bad_data_gives_clear_errors() -> None:
    X = datasets.load_iris().data
    with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
        GaussianMixture(5).fit(X[:4])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        GaussianMixture(2).fit(bad)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2).fit(bad)
    g = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 4 features"):
        g.predict(X[:, :3])
    with pytest.raises(ValueError, match="Expected 2D array"):
        g.predict(X[0])
    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(X)


def test_max_iter_warns_and_is_not_converged() -> None:
    X = datasets.load_iris().data
    with pytest.warns(ConvergenceWarning):
        g = GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    assert not g.converged_ and g.n_iter_ == 1


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_fits(init: str) -> None:
    X = three_blobs()
    g = GaussianMixture(3, init_params=init, random_state=0, n_init=2).fit(X)
    assert g.converged_
    sk = SkGMM(3, init_params=init, random_state=0, n_init=2).fit(X)
    assert g.score(X) >= sk.score(X) - 1e-3


def test_best_of_restarts_is_kept() -> None:
    X = datasets.load_wine().data
    one = GaussianMixture(5, covariance_type="diag", random_state=3).fit(X)
    many = GaussianMixture(5, covariance_type="diag", random_state=3, n_init=6).fit(X)
    assert many.lower_bound_ >= one.lower_bound_


def test_warm_start_continues_where_it_left_off() -> None:
    X = datasets.load_iris().data
    g = GaussianMixture(3, random_state=0, max_iter=2, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g.fit(X)
        first = g.lower_bound_
        g.fit(X)
    assert g.lower_bound_ >= first


@pytest.mark.parametrize("ct", TYPES)
def test_sample_draws_what_sklearn_draws(ct: str) -> None:
    X = datasets.load_iris().data
    sk = SkGMM(3, covariance_type=ct, random_state=7).fit(X)
    tg = GaussianMixture(3, covariance_type=ct, random_state=7)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "n_features_in_"):
        setattr(tg, attr, getattr(sk, attr))
    Xs, ys = tg.sample(500)
    Xk, yk = sk.sample(500)
    np.testing.assert_allclose(Xs, Xk, rtol=1e-12)
    np.testing.assert_array_equal(ys, yk)
    with pytest.raises(ValueError, match="at least one sample"):
        tg.sample(0)


@pytest.mark.parametrize("ct", TYPES)
def test_float32_stays_float32_as_in_sklearn(ct: str) -> None:
    X = datasets.load_iris().data
    X32 = X.astype(np.float32)
    sk = SkGMM(3, covariance_type=ct, random_state=0).fit(X32)
    tg = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X32)
    for attr in FLOAT_ATTRIBUTES:
        assert getattr(tg, attr).dtype == getattr(sk, attr).dtype == np.float32, attr
    assert type(tg.lower_bound_) is type(sk.lower_bound_) is np.float32
    assert {type(v) for v in tg.lower_bounds_} == {np.float32}
    for Z in (X32, X):  # float64 input promotes, as NumPy and scikit-learn do
        for method in ("score_samples", "predict_proba", "predict", "fit_predict"):
            assert getattr(tg, method)(Z).dtype == getattr(sk, method)(Z).dtype, (method, Z.dtype)
    assert tg.sample(5)[0].dtype == sk.sample(5)[0].dtype
    assert type(tg.score(X32)) is type(tg.bic(X32)) is float
    assert GaussianMixture(2, random_state=0).fit(X.astype(int)).means_.dtype == np.float64
    # EM runs in float64: the float32 fit is the float64 fit of the same numbers, rounded once
    tg = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X32)  # (fit_predict(X) above refitted it)
    tg64 = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X32.astype(np.float64))
    for attr in FLOAT_ATTRIBUTES:
        np.testing.assert_array_equal(getattr(tg, attr), getattr(tg64, attr).astype(np.float32), attr)
    assert tg.lower_bound_ == np.float32(tg64.lower_bound_)
    np.testing.assert_allclose(tg.score_samples(X32), tg64.score_samples(X32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ct", TYPES)
def test_far_tight_component_keeps_its_digits(ct: str) -> None:
    """A component far from the data centre in its own metric is evaluated in the exact form."""
    rng = np.random.RandomState(0)
    D = 3
    X = np.vstack([rng.normal(0.0, 1.0, (300, D)), rng.normal(1e3, 1e-2, (300, D))])
    g = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    center = X.mean(axis=0)
    p = Params(ct, g.weights_, g.means_ - center, g.covariances_, g.precisions_cholesky_)
    assert np.any(LogJoint(p).r > R_EXACT), "the test must exercise the exact path"
    # Reference: per-component quadratic forms from differences, as the definition reads.
    prec = g.precisions_
    ref = []
    for k in range(2):
        d = X - g.means_[k]
        P = {"full": lambda: prec[k], "tied": lambda: prec, "diag": lambda: np.diag(prec[k]),
             "spherical": lambda: prec[k] * np.eye(D)}[ct]()
        q = np.einsum("ni,ij,nj->n", d, P, d)
        logdet = 0.5 * np.linalg.slogdet(P)[1]
        ref.append(np.log(g.weights_[k]) - 0.5 * D * np.log(2 * np.pi) + logdet - 0.5 * q)
    ref = np.logaddexp(*ref)
    np.testing.assert_allclose(g.score_samples(X), ref, rtol=1e-11, atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), d=st.integers(1, 4),
       ct=st.sampled_from(TYPES), offset=st.sampled_from([0.0, 1e4]), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_em_invariants(seed: int, k: int, d: int, ct: str, offset: float, scale: float) -> None:
    rng = np.random.RandomState(seed)
    centers = rng.normal(0, 5, (k, d))
    X = (np.vstack([c + rng.normal(0, 1, (60, d)) for c in centers]) + offset) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # reg_covar well below the data's variance: a regularised M-step is not the likelihood's
        # maximiser, so only then must the likelihood never decrease.
        g = GaussianMixture(k, covariance_type=ct, random_state=seed, max_iter=50, tol=1e-6,
                            reg_covar=1e-9 * scale**2)
        labels = g.fit_predict(X)
    # responsibilities sum to one
    np.testing.assert_allclose(g.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    # EM never decreases the log-likelihood (up to rounding)
    lb = np.asarray(g.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]).max())
    # fit_predict agrees with fit + predict
    np.testing.assert_array_equal(labels, g.predict(X))
    assert abs(g.weights_.sum() - 1.0) < 1e-12
