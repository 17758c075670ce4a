"""Pictures: each plot rendered from the CLI to a PNG of the expected size, and its figure carrying the
expected labels and artists; without matplotlib the plotting commands say how to install it."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from conftest import require
from tinygmm.cli import main
from tinygmm.device.fold import fold
from tinygmm.data import demo_data
from tinygmm.model import Model, Scaler, load
from tinygmm.fit.selection import select_n_components

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False

INSTALL_ERROR = "tinygmm: error: plotting needs matplotlib: pip install 'tinygmm[plot]'\n"


@pytest.fixture
def mpl():
    require(HAVE_MPL, "needs matplotlib: pip install 'tinygmm[plot]' (it is in the test extra)")
    from tinygmm import plots

    return plots


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def expected_pixels(size: tuple[float, float], dpi: int) -> tuple[int, int]:
    return round(size[0] * dpi), round(size[1] * dpi)


def write_csv(path: Path, X: np.ndarray, names: list[str]) -> Path:
    lines = [",".join(names)] + [",".join(f"{v:.6g}" for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return path


def blobs3(n: int = 120) -> np.ndarray:
    """Three clusters in 3-D with features on very different scales (so the scaler matters)."""
    rng = np.random.default_rng(1)
    centres = np.array([[20.0, 1000.0, 0.1], [50.0, 3000.0, 0.5], [35.0, 2000.0, 0.9]])
    return np.vstack([c + rng.standard_normal((n, 3)) * [3.0, 200.0, 0.05] for c in centres])


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory) -> Path:
    X, _ = demo_data()
    return write_csv(tmp_path_factory.mktemp("plots") / "blobs.csv", X * [10.0, 1.0] + [100.0, 0.0],
                     ["Age", "Spending Score (1-100)"])


def fitted(X: np.ndarray, names: list[str], k: int, cov: str, scale: bool = True) -> Model:
    from tinygmm import GaussianMixture

    scaler = Scaler.fit(X) if scale else None
    Xs = scaler.transform(X) if scaler is not None else X
    gmm = GaussianMixture(k, covariance_type=cov, random_state=0).fit(Xs)
    return Model.from_gmm(gmm, scaler, names, X_train=X)


def ellipses(ax, sigma: float) -> list:
    return [p for p in ax.patches if p.get_gid() == f"sigma-{sigma:g}"]


def means_markers(ax):
    (means,) = [c for c in ax.collections if c.get_gid() == "means"]
    return means.get_offsets()


def contour_sets(ax) -> list:
    from matplotlib.contour import ContourSet

    return [c for c in ax.collections if isinstance(c, ContourSet)]


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def assert_inside_the_picture(fig) -> None:
    """The title, axis labels, tick labels and legends are drawn wholly inside the figure (none clipped)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    artists = [fig._suptitle] + [a for ax in fig.axes for a in (ax.xaxis.label, ax.yaxis.label, ax.title,
                                                               ax.get_legend()) if a is not None]
    for ax in fig.axes:  # the tick labels drawn: those within the view
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            artists += [t.label1 for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi and t.label1.get_visible()]
    for artist in artists:
        if not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        box = artist.get_window_extent(renderer)
        text = artist.get_text() if hasattr(artist, "get_text") else type(artist).__name__
        assert box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5, \
            f"{text!r} is clipped: {box} in a {width}x{height} picture"


# -- cluster plot ---------------------------------------------------------------------------


def test_plot_command_writes_the_cluster_png(mpl, blobs_csv: Path, tmp_path: Path, capsys) -> None:
    model_path = tmp_path / "model.json"
    assert main(["fit", str(blobs_csv), "-k", "3", "-o", str(model_path)]) == 0
    out = tmp_path / "clusters.png"
    assert main(["plot", str(model_path), str(blobs_csv), "-o", str(out)]) == 0
    assert f"plot written to {out}" in capsys.readouterr().out
    assert png_size(out) == expected_pixels(mpl.CLUSTER_SIZE, mpl.DPI)


def test_cluster_figure_labels_and_artists(mpl, blobs_csv: Path) -> None:
    from tinygmm.data import load_csv

    data = load_csv(blobs_csv)
    model = fitted(data.X, data.feature_names, 3, "full")
    model.metadata["data"] = "blobs.csv"
    fig = mpl.cluster_figure(model, data.X, units={"Age": "years"}, data="other.csv")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Age (years)", "Spending Score (1-100)")
    title = fig._suptitle.get_text()
    assert "k=3" in title and "full covariance" in title
    assert "fitted to blobs.csv" in title and f"the {len(data.X)} rows of other.csv" in title
    model.metadata["data"] = "Mall_Customers.csv"  # the tutorial's title: one line more, nothing clipped
    assert_inside_the_picture(mpl.cluster_figure(model, data.X, data="Mall_Customers.csv"))
    model.metadata["data"] = "blobs.csv"
    assert "negative log-likelihood (nats)" in title
    assert len(ellipses(ax, 1)) == len(ellipses(ax, 2)) == 3
    assert np.allclose(means_markers(ax), model.means * model.scaler.scale + model.scaler.mean)
    nll, threshold = contour_sets(ax)  # the log-spaced levels, then the anomaly threshold
    low = float(mpl.mixture_nll(means_markers(ax), model.weights, *mpl.raw_components(model)).min())
    assert len(nll.levels) == mpl.N_LEVELS and nll.levels[0] > low - 0.2
    # dark lines over a white halo, whatever the component colours, each level labelled with its value
    assert all(max(rgba[:3]) < 0.4 for rgba in nll.get_edgecolor())
    assert nll.get_path_effects() and threshold.get_path_effects()
    labels = {t.get_text() for t in ax.texts}
    assert {mpl._format_level(v) for v in nll.levels[:3]} <= labels
    # the threshold: the model's value, in the units it applies to, and where it lies on the contours' scale
    shift = float(np.sum(np.log(model.scaler.scale)))
    assert np.isclose(threshold.levels[0], -model.anomaly_threshold + shift)
    legend = legend_texts(ax)
    assert legend[:3] == [f"component {k} (weight {model.weights[k]:.2f})" for k in range(3)]
    assert {"component means", "1\u03c3 ellipse", "2\u03c3 ellipse"} <= set(legend)
    (entry,) = [t for t in legend if t.startswith("anomaly threshold")]
    value = f"{round(model.anomaly_threshold, 3):.6g}".replace("-", "\u2212")
    assert f"log-likelihood {value}\nof the scaled input" in entry
    assert f"{round(threshold.levels[0], 2):.6g} on the contours' scale" in entry
    assert any(t.startswith("negative log-likelihood (nats)") for t in legend)
    # every point is drawn once, in the colour of its predicted component
    labels = model.predict(data.X)
    points = [c for c in ax.collections if (c.get_label() or "").startswith("component ") and c.get_gid() != "means"]
    assert [len(c.get_offsets()) for c in points] == [int(np.sum(labels == k)) for k in range(3)]
    assert_inside_the_picture(fig)


@pytest.mark.parametrize("low,high", [(7.17, 36.4), (-1234.5678, -1100.0), (0.0, 0.1), (3.1415926, 3.44),
                                      (1e6 + 0.03, 1e6 + 500.0), (-2.3456, 1e4)])
def test_contour_levels_are_round_and_log_spaced(mpl, low: float, high: float) -> None:
    levels = mpl.contour_levels(low, high)
    assert len(levels) == mpl.N_LEVELS and levels[0] > low and np.all(np.diff(levels) > 0)
    target = low + np.geomspace(mpl.LOWEST_EXCESS, max(high - low, 4 * mpl.LOWEST_EXCESS), mpl.N_LEVELS)
    gaps = np.diff(target, prepend=low)
    gaps[0] = min(gaps[0], gaps[1])
    for level, aim, gap in zip(levels, target, gaps):  # the geometric level, to one digit of its gap
        assert abs(level - aim) <= gap / 2 + 1e-9 * abs(aim)
        assert len(mpl._format_level(level).lstrip("\u2212")) <= len(f"{abs(low):.0f}") + 4


def test_units_come_from_the_model_or_the_command_line(mpl, blobs_csv: Path, tmp_path: Path, capsys) -> None:
    model_path = tmp_path / "model.json"
    assert main(["fit", str(blobs_csv), "-k", "2", "--units", "Age=years", "-o", str(model_path)]) == 0
    model = load(model_path)
    assert model.metadata["units"] == {"Age": "years"} and model.metadata["data"] == "blobs.csv"
    fig = mpl.cluster_figure(model, model.means)  # the model's units
    assert fig.axes[0].get_xlabel() == "Age (years)"
    fig = mpl.cluster_figure(model, model.means, units={"Age": "yr", "Spending Score (1-100)": "1-100"})
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("Age (yr)", "Spending Score (1-100)")
    assert mpl.parse_units("1=points, Age = years", model.feature_names) == {"Spending Score (1-100)": "points",
                                                                              "Age": "years"}
    assert mpl.axis_label("Annual Income (k$)", "k$") == "Annual Income (k$)"
    out = tmp_path / "clusters.png"
    assert main(["plot", str(model_path), str(blobs_csv), "--units", "Age=decades", "-o", str(out)]) == 0
    capsys.readouterr()
    for units, error in (("Age", "'Age' is not NAME=UNIT"), ("Income=k$", "no feature 'Income'")):
        for argv in (["plot", str(model_path), str(blobs_csv), "--units", units, "-o", str(out)],
                     ["fit", str(blobs_csv), "-k", "2", "--units", units, "-o", str(tmp_path / "m2.json")]):
            assert main(argv) == 1
            assert error in capsys.readouterr().err


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_contours_and_ellipses_are_in_original_units(mpl, cov: str) -> None:
    X = blobs3()[:, :2]
    model = fitted(X, ["a", "b"], 3, cov)
    means, covs = mpl.raw_components(model)
    # the density in original units is the model's (scaled) density divided by prod(scale)
    nll = mpl.mixture_nll(X, model.weights, means, covs)
    assert np.allclose(nll, -model.score_samples(X) + np.sum(np.log(model.scaler.scale)), atol=1e-9)
    fig = mpl.cluster_figure(model, X)
    ax = fig.axes[0]
    for k, (e1, e2) in enumerate(zip(ellipses(ax, 1), ellipses(ax, 2))):
        axes = sorted([e1.width, e1.height])
        assert np.allclose(axes, sorted(2.0 * np.sqrt(np.linalg.eigvalsh(covs[k]))))
        assert np.isclose(e2.width, 2.0 * e1.width) and np.isclose(e2.height, 2.0 * e1.height)
    if cov in ("diag", "spherical"):  # axis-aligned in original units too
        assert all(np.isclose(math.sin(math.radians(2 * e.angle)), 0.0, atol=1e-9) for e in ellipses(ax, 1))


def test_more_features_make_a_pair_grid_or_the_two_named(mpl, tmp_path: Path) -> None:
    names = ["Age", "Annual Income (k$)", "Score"]
    X = blobs3()
    model = fitted(X, names, 3, "diag")
    fig = mpl.cluster_figure(model, X)
    grid = np.array(fig.axes).reshape(3, 3)
    for r in range(3):
        for c in range(3):
            ax = grid[r, c]
            if r > c:
                assert len(ellipses(ax, 1)) == 3 and len(contour_sets(ax)) == 1
                assert len(contour_sets(ax)[0].levels) == mpl.N_LEVELS
            elif r < c:
                assert not ax.axison
    assert [grid[2, c].get_xlabel() for c in range(3)] == names
    assert [grid[r, 0].get_ylabel() for r in (1, 2)] == names[1:]
    # components, means, 1 and 2 sigma, contours
    assert len(grid[0, 2].get_legend().get_texts()) == 3 + 3 + 1
    title = fig._suptitle.get_text()
    assert "pairwise marginals" in title and "\n" in title
    assert_inside_the_picture(fig)  # at the default size, nothing (the subtitle) clipped

    csv = write_csv(tmp_path / "three.csv", X, names)
    model_path = tmp_path / "model.json"
    from tinygmm.model import save

    save(model, model_path)
    out = tmp_path / "pair.png"
    assert main(["plot", str(model_path), str(csv), "--features", "Score,0", "-o", str(out)]) == 0
    assert png_size(out) == expected_pixels(mpl.CLUSTER_SIZE, mpl.DPI)
    fig = mpl.cluster_figure(model, X, ["Score", "0"])
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("Score", "Age")
    assert len(contour_sets(fig.axes[0])) == 1  # a marginal: no anomaly-threshold contour


def test_plot_names_a_bad_feature(mpl, blobs_csv: Path, tmp_path: Path, capsys) -> None:
    model_path = tmp_path / "model.json"
    assert main(["fit", str(blobs_csv), "-k", "2", "-o", str(model_path)]) == 0
    assert main(["plot", str(model_path), str(blobs_csv), "--features", "Age,Income", "-o",
                 str(tmp_path / "x.png")]) == 1
    assert "no feature 'Income'; its features: 0: 'Age', 1: 'Spending Score (1-100)'" in capsys.readouterr().err


# -- selection plot -------------------------------------------------------------------------


def test_select_plot_marks_k_and_the_critical_values(mpl, blobs_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "selection.png"
    assert main(["select", str(blobs_csv), "--k-range", "1:6", "--criterion", "lrt", "--plot", str(out)]) == 0
    assert f"plot written to {out}" in capsys.readouterr().out
    assert png_size(out) == expected_pixels(mpl.SELECTION_SIZE, mpl.DPI)

    from tinygmm.data import load_csv

    X = load_csv(blobs_csv).X
    for criterion in ("bic", "lrt"):
        sel = select_n_components(Scaler.fit(X).transform(X), range(1, 7), criterion=criterion, random_state=0)
        fig = mpl.selection_figure(sel, alpha=0.01)
        ic, lrt = fig.axes
        assert ic.get_xlabel() == "number of components k"
        assert [line.get_label().split(" ")[0] for line in ic.lines[:2]] == ["BIC", "AIC"]
        assert list(ic.lines[0].get_ydata()) == [r.bic for r in sel.rows]
        (chosen,) = [line for ax in fig.axes for line in ax.lines if line.get_gid() == "chosen"]
        assert chosen.get_xdata()[0] == sel.best_k
        (critical,) = [line for line in lrt.lines if line.get_gid() == "critical"]
        assert np.allclose(critical.get_ydata(), [chi2.isf(0.01, r.lrt_df) for r in sel.rows[:-1]])
        assert "\u03b1=0.01" in critical.get_label()
        # the critical value printed on the panel (one df per step here: 2-D full covariance, 6)
        value = chi2.isf(0.01, 6)
        assert {r.lrt_df for r in sel.rows[:-1]} == {6} and f"{value:.2f}" in critical.get_label()
        (printed,) = [t for t in lrt.texts if t.get_gid() == "critical-value"]
        assert printed.get_text() == f"\u03c7\u00b2(6) at \u03b1=0.01: {value:.2f}"
        assert f"chosen k={sel.best_k}" in fig._suptitle.get_text()
        assert_inside_the_picture(fig)
    # the CLI's picture names its data and columns
    sel = select_n_components(Scaler.fit(X).transform(X), range(1, 4), random_state=0)
    title = mpl.selection_figure(sel, data="blobs.csv", columns=["Age", "Score"])._suptitle.get_text()
    assert title.startswith("Choosing k for Age, Score of blobs.csv: k=1..3")


# -- verify plot ----------------------------------------------------------------------------


def test_verify_plot_from_a_native_build(mpl, tmp_path: Path, pio_core, monkeypatch, capsys) -> None:
    require(not subprocess.run(["sh", "-c", "command -v gcc"], capture_output=True).returncode,
            "the native build needs gcc: apt-get install gcc")
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    X, names = demo_data()
    csv = write_csv(tmp_path / "blobs.csv", X, names)
    assert main(["fit", str(csv), "-k", "3", "-o", str(tmp_path / "model.json")]) == 0
    assert main(["export", str(tmp_path / "model.json"), "--data", str(csv), "-o", str(tmp_path / "p")]) == 0
    out, report = tmp_path / "verify.png", tmp_path / "report.json"
    assert main(["verify", str(tmp_path / "p"), "-e", "native", "--emulator", "native", "--offline", "--no-bench",
                 "--report", str(report), "--plot", str(out)]) == 0
    assert f"plot written to {out}" in capsys.readouterr().out
    assert png_size(out) == expected_pixels(mpl.VERIFY_SIZE, mpl.DPI)
    assert "per_vector" not in json.loads(report.read_text())  # the JSON report stays a summary


def test_verify_figure_highlights_failures_and_ties(mpl, tmp_path: Path) -> None:
    from tinygmm.device.twin import DeviceTwin
    from tinygmm.verify.vectors import make_vectors
    from tinygmm.verify.compare import VALUE_CHECKS, compare
    from tinygmm.verify.report import VerifyReport

    X, names = demo_data()
    model = fitted(X, names, 3, "full")
    vectors = make_vectors(model, X, n_each=60)
    t = DeviceTwin(fold(model)).evaluate(vectors.X)
    outputs = {"predict": (t.status_predict, t.label), "log_joint": (t.status_log_joint, t.log_joint),
               "score": (t.status_score, t.score.copy()), "proba": (t.status_proba, t.proba),
               "anomaly": (t.status_anomaly, t.anomaly)}
    wrong = np.flatnonzero(np.asarray(vectors.kinds) == "sample")[:7]
    outputs["score"][1][wrong] -= np.float32(0.5)
    checks, figures = compare(fold(model), vectors, outputs)
    report = VerifyReport(model_id=model.model_id, target="native", transport="test", n_vectors=len(vectors.X),
                          kinds={}, checks=checks, **figures)
    assert not report.passed and sorted(np.flatnonzero(report.per_vector.failed)) == sorted(wrong)
    model.metadata["data"] = "blobs.csv"
    fig = mpl.verify_figure(report, model)
    errors, table = fig.axes
    by_gid = {c.get_gid(): c for c in errors.collections}
    # per vector: |device - host| / bound, with the bound at 1
    pv = report.per_vector
    share = np.abs(pv.device_score - pv.host_score) / pv.score_bound
    failures = by_gid["failures"].get_offsets()
    assert len(failures) == 7 and np.allclose(np.sort(failures[:, 1]), np.sort(share[wrong]))
    assert np.all(failures[:, 1] > 1.0)
    for n, kind in enumerate(dict.fromkeys(pv.kinds)):
        mine = (np.asarray(pv.kinds) == kind) & np.isfinite(share) & ~pv.failed
        drawn = by_gid[f"kind-{kind}"].get_offsets()
        assert np.allclose(drawn[:, 1], np.maximum(share[mine], mpl.ERROR_FLOOR))
        assert np.all((n < drawn[:, 0]) & (drawn[:, 0] < n + 1))  # each kind in its own slot
    (bound,) = [line for line in errors.lines if line.get_gid() == "bound"]
    assert list(bound.get_ydata()) == [1.0, 1.0] and errors.get_yscale() == "log"
    assert len(by_gid["ties"].get_offsets()) == int(pv.certified_tie.sum()) > 0
    assert errors.get_ylabel() == "score: |device \u2212 host| / error bound"
    assert errors.get_title().startswith("score error against its bound per vector: max ")
    # each check's worst error/bound: the score column of every vector shows its 7 failures
    (cells,) = [im for im in table.images if im.get_gid() == "worst"]
    columns = [t.get_text() for t in table.get_xticklabels()]
    assert columns == ["statuses", "predict", "log_joint", "score", "proba", "anomaly"]
    (score,) = [c for c in report.checks if c.name == VALUE_CHECKS["score"]]
    assert np.isclose(cells.get_array()[0, columns.index("score")], score.worst) and score.worst > 1.0
    assert f"7 fail\n{score.worst:.2g}" in [t.get_text() for t in table.texts]
    title = fig._suptitle.get_text()
    assert title.startswith("FAIL: model ") and "k=3, full covariance, fitted to blobs.csv" in title
    assert_inside_the_picture(fig)
    # a report read back from JSON has no per-vector results: said plainly
    from tinygmm.errors import TinyGMMError

    report.per_vector = None
    with pytest.raises(TinyGMMError, match="no per-vector results"):
        mpl.verify_figure(report)


# -- without matplotlib ---------------------------------------------------------------------


def test_without_matplotlib_plotting_commands_say_how_to_install(blobs_csv: Path, tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    model_path = tmp_path / "model.json"
    assert main(["fit", str(blobs_csv), "-k", "2", "-o", str(model_path)]) == 0
    assert main(["select", str(blobs_csv), "--k-range", "1:3"]) == 0
    capsys.readouterr()
    for argv in (["plot", str(model_path), str(blobs_csv), "-o", str(tmp_path / "c.png")],
                 ["select", str(blobs_csv), "--k-range", "1:3", "--plot", str(tmp_path / "s.png")],
                 ["verify", str(tmp_path / "nowhere"), "-e", "native", "--emulator", "native",
                  "--plot", str(tmp_path / "v.png")]):
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", INSTALL_ERROR), argv
    assert not list(tmp_path.glob("*.png"))


def test_importing_tinygmm_does_not_import_matplotlib() -> None:
    code = "import sys, tinygmm, tinygmm.cli, tinygmm.plots; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
