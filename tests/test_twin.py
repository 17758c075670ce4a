"""The float32 twin on its own (no compiler needed): fidelity to float64 within the documented
bounds, agreement with the fitted model, statuses, and the export folding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tinygmm.errors import TinyGMMError
from tinygmm.device.fold import exact_parameters, fold, inverse_lower
from tinygmm.model import Model, Scaler, from_sklearn
from tinygmm.device.twin import (
    ERR_FEATURES, ERR_NO_THRESHOLD, ERR_NONFINITE, OK, U32, DeviceTwin, log_joint_error_bound, proba_error_bound,
    score_error_bound,
)

from _gmm_cases import box_points, model_cases, random_model, reference_log_joint, reference_score, sample


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=model_cases())
def test_twin_within_float64_bounds(case):
    m, seed = case
    rng = np.random.default_rng(seed)
    data = sample(m, rng, 800)
    X = np.concatenate([data, box_points(data, rng, 200)])
    out = DeviceTwin(fold(m)).evaluate(X)
    lj64 = reference_log_joint(m, X)
    bound = log_joint_error_bound(fold(m), X)
    assert np.all(np.abs(out.log_joint - lj64) <= bound)
    score64 = reference_score(m, X)
    assert np.all(np.abs(out.score - score64) <= score_error_bound(bound, lj64, m.n_components))
    proba64 = np.exp(lj64 - score64[:, None])
    assert np.all(np.abs(out.proba - proba64) <= proba_error_bound(bound, lj64, m.n_components))
    # Posteriors sum to one up to K roundings of the sum and one per quotient.
    assert np.all(np.abs(out.proba.astype(np.float64).sum(axis=1) - 1) <= (2 * m.n_components + 2) * U32)


def test_twin_agrees_with_sklearn_fit():
    from sklearn.datasets import make_blobs
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    X, _ = make_blobs(3000, n_features=4, centers=6, random_state=0)
    X = X * [1.0, 100.0, 0.01, 1.0] + [1e5, 0.0, 0.0, -50.0]
    sc = StandardScaler().fit(X)
    gmm = GaussianMixture(6, covariance_type="full", random_state=0).fit(sc.transform(X))
    m = from_sklearn(gmm, sc, X_train=X, threshold_percentile=2.0)
    X32 = X.astype(np.float32)
    out = DeviceTwin(fold(m)).evaluate(X32)
    ref = gmm.predict(sc.transform(X32.astype(np.float64)))
    assert np.mean(out.label == ref) >= 0.999
    score64 = gmm.score_samples(sc.transform(X32.astype(np.float64)))
    assert np.max(np.abs(out.score - score64)) < 1e-4
    assert abs(out.anomaly.mean() - 0.02) < 0.005


def test_statuses():
    m = random_model(np.random.default_rng(0), "diag", 3, 2, threshold=False)
    twin = DeviceTwin(fold(m))
    X = np.array([[0, 0], [np.nan, 0], [0, np.inf]], np.float32)
    out = twin.evaluate(X)
    np.testing.assert_array_equal(out.status_predict, [OK, ERR_NONFINITE, ERR_NONFINITE])
    np.testing.assert_array_equal(out.label[1:], [-1, -1])
    np.testing.assert_array_equal(out.status_anomaly, ERR_NO_THRESHOLD)
    np.testing.assert_array_equal(twin.evaluate(np.zeros((2, 3))).status_score, ERR_FEATURES)


def test_inverse_lower_is_accurate_for_ill_conditioned():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    cov = (q * np.logspace(-8, 1, 6)) @ q.T
    C = np.linalg.cholesky(0.5 * (cov + cov.T))
    A = inverse_lower(C)
    assert np.allclose(A @ C, np.eye(6), atol=1e-6)
    assert np.allclose(np.triu(A, 1), 0)


def test_fold_folds_scaler_into_factors_except_spherical():
    rng = np.random.default_rng(2)
    for ct in ("full", "tied", "diag"):
        assert fold(random_model(rng, ct, 3, 2, scaler=True)).inv_scale is None
    dev = fold(random_model(rng, "spherical", 3, 2, scaler=True, bad_scaling=True))
    assert dev.inv_scale is not None
    # Means are stored relative to the float32 centre, so a 1e5 offset leaves them small.
    m = random_model(rng, "diag", 3, 2, offset=1e5)
    assert np.all(np.abs(exact_parameters(m).means) < 50)


def test_fold_refuses_float32_overflow():
    m = Model("diag", [1.0], [[0.0]], [[1e-80]])
    with pytest.raises(TinyGMMError, match="float32"):
        fold(m)
    m = Model("spherical", [1.0], [[0.0, 0.0]], [1.0], scaler=Scaler([0.0, 0.0], [1e-300, 1.0]))
    with pytest.raises(TinyGMMError, match="float32"):
        fold(m)
