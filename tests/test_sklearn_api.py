"""tinygmm.GaussianMixture as a scikit-learn estimator: check_estimator, clone, Pipeline, GridSearchCV,
cross_val_score, and scikit-learn's own exception and warning classes."""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import tinygmm.errors
from tinygmm import GaussianMixture


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    """Three blobs on very different scales (a scaler matters)."""
    X, _ = make_blobs(600, n_features=2, centers=3, random_state=1)
    return X * [1.0, 100.0] + [5.0, 1000.0]


def _results(estimator) -> Counter:
    """(check, status) counted: some checks run twice (e.g. cloneable, on the estimator and on a clone)."""
    return Counter((r["check_name"], r["status"]) for r in check_estimator(estimator, on_fail=None, on_skip=None))


def test_check_estimator_passes_every_check_sklearns_own_passes() -> None:
    theirs, ours = _results(SkGMM()), _results(GaussianMixture())
    passed = lambda results: Counter({name: n for (name, status), n in results.items() if status == "passed"})  # noqa: E731
    assert sum(passed(theirs).values()) >= 40  # scikit-learn 1.9.1: 40 passed, the array API check skipped
    assert not passed(theirs) - passed(ours), "checks scikit-learn's GaussianMixture passes and tinygmm's does not"
    assert not [name for (name, status) in ours if status == "failed"]


def test_clone_keeps_parameters_and_drops_the_fit(X) -> None:
    g = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    c = clone(g)
    assert c.get_params() == g.get_params()
    assert not hasattr(c, "means_")
    with pytest.raises(NotFittedError):
        c.predict(X)


def test_pipeline_with_a_scaler(X) -> None:
    pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(X)
    Xs = StandardScaler().fit_transform(X)
    alone = GaussianMixture(3, random_state=0).fit(Xs)
    np.testing.assert_array_equal(pipe[-1].means_, alone.means_)
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(Xs))
    np.testing.assert_array_equal(pipe.score_samples(X), alone.score_samples(Xs))
    assert pipe.score(X) == alone.score(Xs)
    # the same fit as scikit-learn's own pipeline finds on these blobs
    sk = make_pipeline(StandardScaler(), SkGMM(3, random_state=0)).fit(X)
    assert pipe.score(X) == pytest.approx(sk.score(X), rel=1e-9)


def _minus_bic(estimator, X, y=None) -> float:
    """scikit-learn's scorers are higher-is-better."""
    return -estimator.bic(X)


def test_grid_search_over_k_and_covariance_type_scored_by_bic(X) -> None:
    grid = {"n_components": [1, 2, 3, 4, 5], "covariance_type": ["full", "tied", "diag", "spherical"]}
    ours = GridSearchCV(GaussianMixture(random_state=0), grid, scoring=_minus_bic).fit(X)
    theirs = GridSearchCV(SkGMM(random_state=0), grid, scoring=_minus_bic).fit(X)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_params_["n_components"] == 3
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=1e-6)
    best = ours.best_estimator_
    assert isinstance(best, GaussianMixture) and best.n_features_in_ == 2 and best.n_components == 3


def test_grid_search_by_default_score_and_cross_val_score(X) -> None:
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3, 4]}).fit(X)
    assert search.best_params_["n_components"] >= 3  # mean held-out log-likelihood keeps rising past the truth
    ours = cross_val_score(GaussianMixture(3, random_state=0), X, cv=3)
    theirs = cross_val_score(SkGMM(3, random_state=0), X, cv=3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_errors_and_warnings_are_sklearns(X) -> None:
    assert tinygmm.errors.NotFittedError is NotFittedError
    assert tinygmm.errors.ConvergenceWarning is ConvergenceWarning
    with pytest.raises(NotFittedError):
        GaussianMixture(2).score_samples(X)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a filter on scikit-learn's class applies
        GaussianMixture(3, max_iter=1, random_state=0).fit(X)
