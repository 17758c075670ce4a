"""The model file: exact round trip, validation naming the field, model id, atomic write, sklearn import."""
import json
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygmm
from tinygmm import Model, Scaler, from_sklearn, load, save
from tinygmm.errors import TinyGMMError
from tinygmm.model import model_to_dict

COV_TYPES = ["full", "tied", "diag", "spherical"]


def random_model(seed: int, K: int, D: int, ct: str, scaled: bool = True, threshold: float | None = -3.25) -> Model:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 1.0, K)
    means = rng.normal(size=(K, D)) * rng.uniform(0.01, 100)
    if ct == "full":
        A = rng.normal(size=(K, D, D))
        cov = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(D)
    elif ct == "tied":
        A = rng.normal(size=(D, D))
        cov = A @ A.T + 0.1 * np.eye(D)
    elif ct == "diag":
        cov = rng.uniform(0.05, 5.0, (K, D))
    else:
        cov = rng.uniform(0.05, 5.0, K)
    scaler = Scaler(rng.normal(size=D) * 50, rng.uniform(0.1, 20, D)) if scaled else None
    return Model(ct, w / w.sum(), means, cov, scaler, [f"f {j} (u)" for j in range(D)], threshold, {"note": "test"})


def assert_same_model(a: Model, b: Model) -> None:
    assert a.covariance_type == b.covariance_type
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.scaler == b.scaler
    assert a.feature_names == b.feature_names
    assert a.anomaly_threshold == b.anomaly_threshold
    assert a.metadata == b.metadata
    assert a.model_id == b.model_id


@pytest.mark.parametrize("ct", COV_TYPES)
def test_round_trip_is_bit_exact(tmp_path, ct):
    m = random_model(1, 3, 4, ct)
    save(m, tmp_path / "m.json")
    m2 = load(tmp_path / "m.json")
    assert_same_model(m, m2)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["format"] == "tinygmm-model" and doc["schema_version"] == 1
    assert doc["model_id"] == m.model_id


def test_file_is_plain_json_not_pickle(tmp_path):
    save(random_model(2, 2, 2, "full"), tmp_path / "m.json")
    raw = (tmp_path / "m.json").read_bytes()
    assert raw.startswith(b"{") and b"\x80" not in raw


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    K=st.integers(1, 4),
    D=st.integers(1, 4),
    ct=st.sampled_from(COV_TYPES),
    scaled=st.booleans(),
)
def test_saved_model_loads_to_identical_predictions(tmp_path, seed, K, D, ct, scaled):
    m = random_model(seed, K, D, ct, scaled)
    path = tmp_path / "p.json"
    save(m, path)
    m2 = load(path)
    X = np.random.default_rng(seed + 1).normal(size=(50, D)) * 30
    np.testing.assert_array_equal(m.score_samples(X), m2.score_samples(X))
    np.testing.assert_array_equal(m.predict_proba(X), m2.predict_proba(X))
    np.testing.assert_array_equal(m.predict(X), m2.predict(X))
    assert m2.model_id == m.model_id


# --- validation: every error names the bad field ------------------------------------


def edit(doc, key_path, value):
    d = doc
    for k in key_path[:-1]:
        d = d[k]
    d[key_path[-1]] = value


def negate_eigen(doc):
    c = np.array(doc["covariances"][2])
    doc["covariances"][2] = (-c).tolist()


CASES = [
    (lambda d: edit(d, ["schema_version"], 2), "schema_version"),
    (lambda d: edit(d, ["format"], "other"), "format"),
    (lambda d: edit(d, ["covariance_type"], "banana"), "covariance_type"),
    (lambda d: edit(d, ["weights", 0], d["weights"][0] + 0.01), "weights"),
    (lambda d: edit(d, ["weights", 1], -d["weights"][1]), "weights[1]"),
    (lambda d: edit(d, ["weights", 1], "0.3"), "weights[1]"),
    (lambda d: edit(d, ["means"], d["means"][:2]), "means"),
    (lambda d: edit(d, ["covariances", 1, 0, 0], None), "covariances[1][0][0]"),
    (lambda d: edit(d, ["covariances", 0, 0, 1], d["covariances"][0][0][1] + 1.0), "covariances[0]"),
    (negate_eigen, "covariances[2]"),
    (lambda d: edit(d, ["scaler", "scale", 1], 0.0), "scaler.scale[1]"),
    (lambda d: edit(d, ["scaler"], {"mean": [0.0]}), "scaler"),
    (lambda d: edit(d, ["feature_names"], ["a"]), "feature_names"),
    (lambda d: edit(d, ["anomaly_threshold"], "low"), "anomaly_threshold"),
    (lambda d: edit(d, ["metadata"], []), "metadata"),
    (lambda d: edit(d, ["n_components"], 7), "n_components"),
    (lambda d: d.pop("means"), "means"),
    (lambda d: edit(d, ["means", 0, 0], d["means"][0][0] * (1 + 1e-15) + 1e-300), "model_id"),
    (lambda d: edit(d, ["anomaly_threshold"], -1.0), "model_id"),
]


@pytest.mark.parametrize("mutate,field", CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_invalid_file_names_the_field(tmp_path, mutate, field):
    doc = model_to_dict(random_model(3, 3, 3, "full"))
    mutate(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TinyGMMError) as e:
        load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: field '{field}'"), msg


def test_edited_mean_reports_hand_edit(tmp_path):
    path = tmp_path / "model.json"
    save(random_model(3, 2, 2, "diag"), path)
    doc = json.loads(path.read_text())
    doc["means"][0][0] += 1.0
    path.write_text(json.dumps(doc))
    with pytest.raises(TinyGMMError, match="model_id.*changed after it was written"):
        load(path)


@pytest.mark.parametrize("ct,shape_field", [("tied", "covariances"), ("diag", "covariances[1, 2]"), ("spherical", "covariances[0]")])
def test_non_positive_variances_named(ct, shape_field):
    m = random_model(4, 3, 3, ct)
    cov = m.covariances.copy()
    if ct == "tied":
        cov[0, 0] = -1.0
    elif ct == "diag":
        cov[1, 2] = 0.0
    else:
        cov[0] = -2.0
    with pytest.raises(TinyGMMError, match=re.escape(f"field '{shape_field}'")):
        Model(ct, m.weights, m.means, cov, m.scaler, m.feature_names)


def test_nan_in_json_rejected(tmp_path):
    path = tmp_path / "m.json"
    save(random_model(5, 2, 2, "spherical"), path)
    path.write_text(path.read_text().replace('"anomaly_threshold": -3.25', '"anomaly_threshold": NaN'))
    with pytest.raises(TinyGMMError, match="NaN"):
        load(path)


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TinyGMMError, match="not a valid model file"):
        load(tmp_path / "x.json")
    with pytest.raises(TinyGMMError, match="no such model file"):
        load(tmp_path / "missing.json")


# --- model id -----------------------------------------------------------------------


def test_model_id_golden_value():
    # Pins the canonical serialisation: changing it changes every id users have recorded.
    m = Model("spherical", np.array([0.25, 0.75]), np.array([[0.0], [1.5]]), np.array([1.0, 2.0]))
    assert m.model_id == "c02a631c170b1d16"
    assert len(m.model_id) == 16


def test_model_id_ignores_names_and_metadata():
    a = random_model(6, 2, 3, "full")
    b = random_model(6, 2, 3, "full")
    b.feature_names = ["p", "q", "r"]
    b.metadata = {"created": "another day"}
    assert a.model_id == b.model_id


@pytest.mark.parametrize("change", ["weights", "means", "covariances", "scaler_mean", "scaler_scale", "no_scaler", "threshold", "no_threshold"])
def test_model_id_changes_with_each_parameter(change):
    base = random_model(7, 2, 2, "diag")
    m = random_model(7, 2, 2, "diag")
    bump = lambda a, i: a + np.where(np.arange(a.size).reshape(a.shape) == i, np.spacing(a), 0.0)  # noqa: E731
    if change == "weights":
        m.weights = np.array([base.weights[0] + 1e-12, base.weights[1] - 1e-12])
    elif change == "means":
        m.means = bump(base.means, 3)
    elif change == "covariances":
        m.covariances = bump(base.covariances, 0)
    elif change == "scaler_mean":
        m.scaler = Scaler(bump(base.scaler.mean, 1), base.scaler.scale)
    elif change == "scaler_scale":
        m.scaler = Scaler(base.scaler.mean, bump(base.scaler.scale, 0))
    elif change == "no_scaler":
        m.scaler = None
    elif change == "threshold":
        m.anomaly_threshold = np.nextafter(base.anomaly_threshold, 0)
    else:
        m.anomaly_threshold = None
    assert m.model_id != base.model_id


# --- atomic write -------------------------------------------------------------------


def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    save(random_model(8, 2, 2, "full"), path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(TinyGMMError, match="No space left"):
        save(random_model(9, 2, 2, "full"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_invalid_model_is_not_written(tmp_path):
    path = tmp_path / "model.json"
    save(random_model(8, 2, 2, "full"), path)
    before = path.read_bytes()
    m = random_model(9, 2, 2, "full")
    m.anomaly_threshold = float("nan")
    with pytest.raises(TinyGMMError, match="anomaly_threshold"):
        save(m, path)
    m = random_model(9, 2, 2, "full")
    m.metadata = {"bad": object()}
    with pytest.raises(TinyGMMError, match="metadata"):
        save(m, path)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_save_creates_parent_directories(tmp_path):
    save(random_model(1, 1, 1, "full"), tmp_path / "a" / "b" / "m.json")
    assert load(tmp_path / "a" / "b" / "m.json").n_features == 1


# --- behaviour on raw data ----------------------------------------------------------


def test_wrong_feature_count_is_a_user_error():
    m = random_model(10, 2, 3, "full")
    with pytest.raises(TinyGMMError, match="expects 3 features"):
        m.predict(np.zeros((4, 2)))


def test_scaler_matches_standard_scaler():
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).normal(size=(100, 3)) * [1, 100, 1e-3] + [5, -7, 1e4]
    X[:, 2] = 3.0  # constant column: scale 1, as scikit-learn
    ours, theirs = Scaler.fit(X), StandardScaler().fit(X)
    np.testing.assert_array_equal(ours.mean, theirs.mean_)
    np.testing.assert_array_equal(ours.scale, theirs.scale_)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))


def test_from_gmm_threshold_is_training_percentile():
    X = np.random.default_rng(1).normal(size=(1000, 2)) * [3, 0.5] + [10, 0]
    scaler = Scaler.fit(X)
    gmm = tinygmm.GaussianMixture(2, random_state=0).fit(scaler.transform(X))
    m = Model.from_gmm(gmm, scaler, ["a", "b"], X_train=X, threshold_percentile=5.0)
    assert m.anomaly_threshold == pytest.approx(np.percentile(gmm.score_samples(scaler.transform(X)), 5.0))
    assert m.is_anomaly(X).mean() == pytest.approx(0.05, abs=0.002)
    assert m.metadata["n_train"] == 1000 and m.metadata["tool"].startswith("tinygmm ")
    np.testing.assert_array_equal(m.to_gmm().predict(scaler.transform(X)), gmm.predict(scaler.transform(X)))


def test_from_gmm_rejects_unfitted():
    with pytest.raises(TinyGMMError, match="fit"):
        Model.from_gmm(tinygmm.GaussianMixture(2))


# --- scikit-learn import ------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(42)
    return np.vstack([rng.normal(c, s, size=(150, 3)) for c, s in [([0, 0, 0], 1), ([20, 5, 100], 3), ([-10, 40, 50], [1, 10, 5])]])


@pytest.mark.parametrize("ct", COV_TYPES)
@pytest.mark.parametrize("with_scaler", [False, True])
def test_from_sklearn_is_identical_to_sklearn(tmp_path, blobs, ct, with_scaler):
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(blobs) if with_scaler else None
    Xt = sc.transform(blobs) if sc is not None else blobs
    sk = SkGMM(3, covariance_type=ct, random_state=0).fit(Xt)
    save(from_sklearn(sk, sc, ["a", "b", "c"]), tmp_path / "m.json")
    m = load(tmp_path / "m.json")
    X = np.vstack([blobs, np.random.default_rng(3).normal(size=(100, 3)) * 30])
    Xs = sc.transform(X) if sc is not None else X
    np.testing.assert_array_equal(m.predict(X), sk.predict(Xs))
    np.testing.assert_allclose(m.predict_proba(X), sk.predict_proba(Xs), rtol=0, atol=1e-10)
    np.testing.assert_allclose(m.score_samples(X), sk.score_samples(Xs), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(m.covariances, sk.covariances_)
    assert m.feature_names == ["a", "b", "c"]


@pytest.mark.parametrize("opts", [{"with_mean": False}, {"with_std": False}])
def test_from_sklearn_scaler_without_mean_or_std(blobs, opts):
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler(**opts).fit(blobs)
    sk = SkGMM(2, random_state=0).fit(sc.transform(blobs))
    m = from_sklearn(sk, sc)
    np.testing.assert_array_equal(m.scaler.mean if "with_mean" in opts else m.scaler.scale, 0.0 if "with_mean" in opts else 1.0)
    np.testing.assert_allclose(m.score_samples(blobs), sk.score_samples(sc.transform(blobs)), atol=1e-10)


def test_from_sklearn_rejects_wrong_objects():
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(TinyGMMError, match="fitted GaussianMixture"):
        from_sklearn(SkGMM(2))
    with pytest.raises(TinyGMMError, match="StandardScaler"):
        from_sklearn(SkGMM(1).fit(X), scaler=object())
    with pytest.raises(TinyGMMError, match="StandardScaler, but MinMaxScaler has no mean_"):
        from_sklearn(make_pipeline(MinMaxScaler(), SkGMM(1)).fit(X))
    with pytest.raises(TinyGMMError, match="got one of StandardScaler, GaussianMixture and a scaler= beside it"):
        from_sklearn(make_pipeline(StandardScaler(), SkGMM(1)).fit(X), scaler=StandardScaler().fit(X))
    with pytest.raises(TinyGMMError, match="got one of StandardScaler, StandardScaler, GaussianMixture"):
        from_sklearn(make_pipeline(StandardScaler(), StandardScaler(), SkGMM(1)).fit(X))


@pytest.mark.parametrize("source", ["sklearn", "tinygmm"])
def test_from_sklearn_takes_a_pipeline_with_its_scaler(blobs, source):
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mixture = {"sklearn": SkGMM, "tinygmm": tinygmm.GaussianMixture}[source]
    pipe = make_pipeline(StandardScaler(), mixture(3, covariance_type="diag", random_state=0)).fit(blobs)
    scaler, gmm = pipe[0], pipe[-1]
    Xs = scaler.transform(blobs)
    scaler.feature_names_in_ = np.array(["Age", "Income", "Score"], dtype=object)  # as a data frame's columns set it
    m = from_sklearn(pipe, X_train=blobs)
    # the same as the two steps given one by one, the names the pipeline's
    assert_same_model(m, from_sklearn(gmm, scaler, ["Age", "Income", "Score"], X_train=blobs))
    assert m.feature_names == ["Age", "Income", "Score"]
    np.testing.assert_array_equal(m.scaler.mean, scaler.mean_)
    np.testing.assert_array_equal(m.predict(blobs), gmm.predict(Xs))
    np.testing.assert_allclose(m.score_samples(blobs), gmm.score_samples(Xs), rtol=1e-12, atol=1e-12)
    # a pipeline of the mixture alone takes a scaler beside it
    alone = make_pipeline(mixture(2, random_state=0)).fit(Xs)
    assert from_sklearn(alone, scaler).scaler == m.scaler


@pytest.mark.parametrize("ct", COV_TYPES)
def test_from_sklearn_takes_a_bayesian_gaussian_mixture(blobs, ct):
    from sklearn.mixture import BayesianGaussianMixture
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), BayesianGaussianMixture(n_components=5, covariance_type=ct,
                                                                   max_iter=500, random_state=0)).fit(blobs)
    bgm = pipe[-1]
    m = from_sklearn(pipe)
    # its point estimate, exactly: the mixture weights_, means_ and covariances_ describe
    np.testing.assert_array_equal(m.weights, bgm.weights_)
    np.testing.assert_array_equal(m.means, bgm.means_)
    np.testing.assert_array_equal(m.covariances, bgm.covariances_)
    assert m.metadata["source"].endswith("BayesianGaussianMixture")
    # scikit-learn predicts with expectations over the variational posterior, close to the point estimate's
    assert np.mean(m.predict(blobs) == pipe.predict(blobs)) > 0.99


@pytest.mark.parametrize("ct", COV_TYPES)
def test_from_sklearn_takes_a_float32_fit(blobs, ct):
    """A float32 fit's weights sum to 1, and its covariances are symmetric, only to float32's precision:
    the model renormalises the weights and takes the mean of each covariance and its transpose."""
    from sklearn.mixture import GaussianMixture as SkGMM

    X32 = blobs.astype(np.float32)
    for gmm in (SkGMM(3, covariance_type=ct, random_state=0).fit(X32),
                tinygmm.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X32)):
        assert gmm.means_.dtype == np.float32
        m = from_sklearn(gmm)
        assert abs(m.weights.sum() - 1.0) < 1e-15
        np.testing.assert_allclose(m.weights, gmm.weights_, rtol=1e-6)
        np.testing.assert_array_equal(m.means, gmm.means_)
        cov = gmm.covariances_.astype(np.float64)
        np.testing.assert_array_equal(m.covariances, 0.5 * (cov + np.swapaxes(cov, -1, -2)) if ct in ("full", "tied") else cov)
        np.testing.assert_array_equal(m.predict(blobs), gmm.predict(X32))


@pytest.mark.parametrize("covariance,n_init", [("full", 1), ("diag", 3)])
def test_cli_fit_scale_standard_is_the_pipeline(tmp_path, blobs, covariance, n_init):
    """`tinygmm fit --scale standard` makes the model from_sklearn makes of Pipeline(StandardScaler, GaussianMixture)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tinygmm.cli import main

    csv = tmp_path / "data.csv"
    csv.write_text("a,b,c\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in blobs))
    out = tmp_path / "model.json"
    assert main(["fit", str(csv), "-k", "3", "--covariance", covariance, "--n-init", str(n_init), "--seed", "5",
                 "--scale", "standard", "-o", str(out)]) == 0
    pipe = make_pipeline(StandardScaler(), tinygmm.GaussianMixture(3, covariance_type=covariance, n_init=n_init,
                                                                   random_state=5)).fit(blobs)
    cli_model, pipe_model = load(out), from_sklearn(pipe, feature_names=["a", "b", "c"], X_train=blobs)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(cli_model, name), getattr(pipe_model, name))
    assert cli_model.scaler == pipe_model.scaler
    assert cli_model.anomaly_threshold == pipe_model.anomaly_threshold
    assert cli_model.model_id == pipe_model.model_id


def test_startup_and_model_files_do_not_import_sklearn(tmp_path):
    """scikit-learn and SciPy load with fitting only: importing them takes about a second that the CLI's
    start, reading and writing model files and their float64 reference do not need."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, tinygmm; from tinygmm import cli, data, errors, model; "
        "cli.build_parser().parse_args(['info', sys.argv[1]]); "
        "model.save(tinygmm.Model('diag', [1.0], [[0.0, 0.0]], [[1.0, 1.0]]), sys.argv[1]); "
        "model.load(sys.argv[1]).log_joint(np.zeros((1, 2))); "
        "loaded = [k for k in sys.modules if k.startswith(('sklearn', 'scipy'))]; "
        "assert not loaded, loaded[:5]"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.json")], check=True)


def test_a_weights_list_of_the_wrong_length_is_named_as_such() -> None:
    with pytest.raises(TinyGMMError, match="field 'weights' has 2 entries but the model has 3 components"):
        Model("diag", np.array([0.5, 0.5]), np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(TinyGMMError, match=r"field 'means' must have shape \(3, n_features\)"):
        Model("diag", np.array([0.3, 0.3, 0.4]), np.zeros((2, 2)), np.ones((3, 2)))
