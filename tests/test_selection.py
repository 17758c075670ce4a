"""Choosing k: BIC/AIC vs scikit-learn, LRT sign, df and SciPy's chi-square p-value, the rule."""
import warnings

import numpy as np
import pytest
from scipy.stats import chi2

from tinygmm import GaussianMixture, select_n_components
from tinygmm.data import demo_data
from tinygmm.errors import ConvergenceWarning, TinyGMMError
from tinygmm.fit.selection import Row, _choose

@pytest.fixture(scope="module")
def demo_selection():
    X, _ = demo_data()
    return X, select_n_components(X, range(1, 6), random_state=0)


def test_three_blobs_choose_three_by_bic(demo_selection):
    X, sel = demo_selection
    assert sel.best_k == 3
    assert sel.rule == "lowest BIC"
    assert [r.k for r in sel.rows] == [1, 2, 3, 4, 5]
    assert sel.model.n_components == 3
    assert sel.best_row.bic == min(r.bic for r in sel.rows)


def test_bic_aic_match_sklearn_for_the_same_model(demo_selection):
    from sklearn.mixture import GaussianMixture as SkGMM

    X, sel = demo_selection
    row = sel.best_row
    g = sel.model
    sk = SkGMM(g.n_components, covariance_type=g.covariance_type)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(sk, attr, getattr(g, attr))
    sk.n_features_in_ = X.shape[1]
    assert row.bic == pytest.approx(sk.bic(X), rel=1e-12)
    assert row.aic == pytest.approx(sk.aic(X), rel=1e-12)
    assert row.n_parameters == sk._n_parameters() == 17
    assert row.log_likelihood == pytest.approx(sk.score(X) * len(X), rel=1e-12)
    assert row.bic == pytest.approx(g.bic(X), rel=1e-12)


def test_lrt_statistic_sign_and_df(demo_selection):
    X, sel = demo_selection
    for r, nxt in zip(sel.rows, sel.rows[1:]):
        # 2 * (ll_{k+1} - ll_k): positive when k+1 fits better (the seed article had it backwards).
        assert r.lrt_statistic == pytest.approx(2.0 * (nxt.log_likelihood - r.log_likelihood))
        assert r.lrt_df == nxt.n_parameters - r.n_parameters == 6  # full, D=2: 2 mean + 3 cov + 1 weight
        assert r.lrt_p_value == chi2.sf(r.lrt_statistic, r.lrt_df)
    assert sel.rows[0].lrt_statistic > 100 and sel.rows[0].lrt_p_value < 1e-20
    assert sel.rows[-1].lrt_statistic is None and sel.rows[-1].lrt_p_value is None


def test_lrt_chooses_three_on_blobs():
    X, _ = demo_data()
    sel = select_n_components(X, [1, 2, 3, 4], criterion="lrt", random_state=0)
    assert sel.best_k == 3
    assert sel.rule == "smallest k whose step to k+1 is not significant at alpha=0.05 (chi-square LRT)"


def row(k, p):
    return Row(k, 0.0, 1, 0.0, 0.0, True, 1.0, 1, p)


def test_lrt_rule_choices():
    rows = [row(1, 1e-9), row(2, 0.2), row(3, 0.001), Row(4, 0.0, 1, 0.0, 0.0, True)]
    assert _choose(rows, "lrt", 0.05, True)[0] == 2
    assert _choose(rows, "lrt", 0.3, True)[0] == 4  # 0.2 < 0.3: every step significant -> largest
    k, rule = _choose(rows[:1] + [Row(2, 0.0, 1, 0.0, 0.0, True)], "lrt", 0.05, True)
    assert k == 2 and "largest candidate" in rule
    assert "next candidate" in _choose(rows, "lrt", 0.05, False)[1]


def test_aic_and_bic_pick_their_minimum():
    rows = [Row(1, 0, 1, 10.0, 9.0, True), Row(2, 0, 1, 8.0, 7.0, True), Row(3, 0, 1, 9.0, 5.0, True)]
    assert _choose(rows, "bic", 0.05, True) == (2, "lowest BIC")
    assert _choose(rows, "aic", 0.05, True) == (3, "lowest AIC")


def test_restarts_match_gaussian_mixture_n_init_and_report_progress():
    X, _ = demo_data()
    events = []
    sel = select_n_components(X, [2, 4], n_init=3, random_state=7, progress=events.append)
    assert [(e.index, e.total, e.k, e.restart, e.n_init) for e in events] == [
        (1, 2, 2, 1, 3), (1, 2, 2, 2, 3), (1, 2, 2, 3, 3), (2, 2, 4, 1, 3), (2, 2, 4, 2, 3), (2, 2, 4, 3, 3)]
    ref = GaussianMixture(sel.best_k, n_init=3, random_state=7).fit(X)
    np.testing.assert_array_equal(sel.model.means_, ref.means_)
    assert sel.model.lower_bound_ == ref.lower_bound_
    assert sel.model.n_init == 3 and sel.model.random_state == 7


def test_convergence_warning_only_for_the_winner():
    X, _ = demo_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        select_n_components(X, [3], max_iter=1, random_state=0, n_init=2)
    assert [w.category for w in caught] == [ConvergenceWarning]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"candidates": []}, "no candidate"),
        ({"candidates": [0, 1]}, "at least 1"),
        ({"candidates": [1, 700]}, "needs at least 700 rows"),
        ({"candidates": [2], "criterion": "lrt"}, "at least two"),
        ({"candidates": [2], "criterion": "icl"}, "criterion"),
        ({"candidates": [2], "alpha": 1.5}, "alpha"),
        ({"candidates": [2], "n_init": 0}, "n_init"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, match):
    X, _ = demo_data()
    with pytest.raises(TinyGMMError, match=match):
        select_n_components(X, **kwargs)
