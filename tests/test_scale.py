"""Fitting data read in blocks: a memmap, a Parquet file (row groups), a Dask array on Dask's default
scheduler and on a LocalCluster of two worker processes. From the same initial parameters every way
gives the in-memory fit's answer to 1e-10; memory stays about one block; restarts share each pass."""
from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tinygmm import GaussianMixture, cli, load
from tinygmm.fit import passes, sources
from tinygmm.fit.mixture import report_passes
from tinygmm.fit.sources import ChunkedArray, DaskSource, ParquetData
from tinygmm.pytest_plugin import IN_CI

try:
    import dask.array as da
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # the test extra installs them: under CI=true their absence is a failure
    if IN_CI:
        raise
    pytest.skip("needs tinygmm[dask]: pip install -e '.[test]'", allow_module_level=True)

TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]
RTOL = 1e-10
K = 4


CENTRES = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, 0.0], [0.0, 7.0, 3.0], [5.0, 5.0, 5.0]]) + 40.0
FAR = 1e3


def _centres(X: np.ndarray) -> np.ndarray:
    far = np.any(X > FAR / 2)
    return np.vstack([CENTRES[:-1], np.full(3, FAR)]) if far else CENTRES


def blobs(n: int = 24_000, far: bool = False, seed: int = 0) -> np.ndarray:
    """Four clusters in 3-D away from the origin; ``far``: one of them tight and 1000 away, so that its
    covariance must be recomputed from centred differences (one more pass over the blocks)."""
    rng = np.random.RandomState(seed)
    X = np.vstack([c + rng.normal(0.0, 1.0, (n // K, 3)) for c in CENTRES])
    if far:
        X[-n // K:] = FAR + rng.normal(0.0, 1e-2, (n // K, 3))
    return X[rng.permutation(len(X))]


def start(X: np.ndarray, ct: str, max_iter: int = 25) -> dict:
    """One starting point shared by every fit: a row of each cluster as its mean, unit precisions.

    From a start on its way to an optimum, EM contracts differences of rounding. From one where
    components are still trading clusters it amplifies them, by 1e4 in 25 passes: there even the
    in-memory fit of the same rows in reverse order differs by 1e-9 from the forward one.
    """
    D = X.shape[1]
    labels = np.argmin([np.sum((X - c) ** 2, axis=1) for c in _centres(X)], axis=0)
    means = np.array([X[np.flatnonzero(labels == k)[0]] for k in range(K)])
    precisions = {"full": np.repeat(np.eye(D)[None], K, axis=0), "tied": np.eye(D),
                  "diag": np.ones((K, D)), "spherical": np.ones(K)}[ct]
    return dict(covariance_type=ct, weights_init=np.full(K, 1.0 / K), means_init=means.reshape(K, D),
                precisions_init=precisions, max_iter=max_iter, tol=0.0)


def fit(X, **params) -> GaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges: the fixed number of passes is the point
        return GaussianMixture(K, **params).fit(X)


def assert_same_fit(a: GaussianMixture, b: GaussianMixture, rtol: float = RTOL) -> None:
    """Every fitted parameter and the lower bound agree to ``rtol`` relative to the parameter's size."""
    for name in FITTED:
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol * np.max(np.abs(x)), err_msg=name)
    assert abs(b.lower_bound_ - a.lower_bound_) <= rtol * abs(a.lower_bound_)
    assert a.n_iter_ == b.n_iter_


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same data as an .npy file (for a memmap) and as Parquet in row groups of 5000 rows."""
    d = tmp_path_factory.mktemp("scale")
    out = {}
    for far in (False, True):
        X = blobs(far=far)
        npy = d / f"x{int(far)}.npy"
        np.save(npy, X)
        parquet = d / f"x{int(far)}.parquet"
        pq.write_table(pa.table({f"f{j}": X[:, j] for j in range(X.shape[1])}), parquet, row_group_size=5000)
        out[far] = (X, npy, parquet)
    return out


@pytest.mark.parametrize("far", [False, True], ids=["near", "far-tight-component"])
@pytest.mark.parametrize("ct", TYPES)
def test_chunked_parquet_dask_and_in_memory_fits_agree(files, ct: str, far: bool) -> None:
    X, npy, parquet = files[far]
    params = start(X, ct)
    ref = fit(X, **params)
    memmap = np.load(npy, mmap_mode="r")
    assert isinstance(memmap, np.memmap)
    for data in (memmap, ChunkedArray(X, chunk_rows=3001), ParquetData(str(parquet)),
                 da.from_array(X, chunks=(7000, 3))):
        assert_same_fit(ref, fit(data, **params))


@dataclass(frozen=True)
class CountingChunks(ChunkedArray):
    """A ChunkedArray that records what each pass over it computed per block."""

    passes: list = field(default_factory=list, compare=False)

    def map(self, fn, *args, per_block=None):
        self.passes.append(fn.__name__)
        return super().map(fn, *args, per_block=per_block)


def test_restarts_share_each_pass(files) -> None:
    X = files[False][0]
    events = []
    data = CountingChunks(X, chunk_rows=5000)
    with report_passes(lambda i, ll, s: events.append(i)):
        g = fit(data, n_init=3, max_iter=6, tol=0.0, random_state=0)
    # one first pass (rows, mean, the sample every restart initialises from), then one per EM
    # iteration for all three restarts: not 3 x 6
    assert data.passes == ["summary_block"] + ["em_block"] * 6
    assert events == list(range(1, 7)) and g.n_iter_ == 6
    # the best of the three: at least as good as each restart run alone from the same stream
    rng = np.random.RandomState(0)
    alone = [fit(ChunkedArray(X, chunk_rows=5000), max_iter=6, tol=0.0, random_state=rng) for _ in range(3)]
    assert g.lower_bound_ == pytest.approx(max(a.lower_bound_ for a in alone), rel=1e-12)


def test_selection_over_k_reads_the_first_pass_once(files) -> None:
    """Choosing k on data in blocks: every k's fit starts from the same first pass (rows, mean and
    initialisation sample, one seed), so it is read once, and each k fits exactly as alone."""
    from tinygmm.fit.selection import select_n_components

    X = files[False][0]
    data = CountingChunks(X, chunk_rows=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen = select_n_components(data, [2, 3, 4], n_init=2, random_state=7, max_iter=5)
        alone = [GaussianMixture(k, n_init=2, random_state=7, max_iter=5).fit(ChunkedArray(X, chunk_rows=5000))
                 for k in (2, 3, 4)]
    assert data.passes.count("summary_block") == 1
    assert [r.bic for r in chosen.rows] == [g.bic(X) for g in alone]
    assert_same_fit(chosen.model, alone[[2, 3, 4].index(chosen.best_k)], rtol=0.0)
    assert passes._FIRST_PASSES.get() is None  # the sharing ends with the selection


def test_small_data_read_in_blocks_fit_as_in_memory(files) -> None:
    """With fewer rows than the initialisation sample, the sample is every row: the default k-means
    start and every restart are the in-memory fit's."""
    X = files[False][0]
    a = GaussianMixture(K, n_init=2, random_state=3).fit(X)
    b = GaussianMixture(K, n_init=2, random_state=3).fit(ChunkedArray(X, chunk_rows=4000))
    # both restarts reach this optimum with the components in another order, their lower bounds a
    # rounding apart: which one wins may differ, so the components are compared in one order
    for g in (a, b):
        order = np.argsort(g.means_[:, 0])
        for name in FITTED:
            setattr(g, name, getattr(g, name)[order])
    assert_same_fit(a, b, rtol=1e-9)


def test_a_large_sample_initialises_from_a_uniform_sample(monkeypatch) -> None:
    X = blobs(40_000)
    monkeypatch.setattr(passes, "SAMPLE_ROWS", 2_000)
    monkeypatch.setattr(passes, "SAMPLE_PER_COMPONENT", 10)
    g = GaussianMixture(K, random_state=0).fit(ChunkedArray(X, chunk_rows=7000))
    ref = GaussianMixture(K, random_state=0).fit(X)
    assert g.converged_ and abs(g.score(X) - ref.score(X)) < 1e-3  # the same optimum, found from a sample
    picks = passes.sample_indices(np.random.RandomState(0), 20_000_000, 100_000)
    assert len(np.unique(picks)) == 100_000 and np.all(np.diff(picks) > 0) and picks[-1] < 20_000_000


def test_a_memmap_fit_holds_about_one_block_in_memory(tmp_path, monkeypatch) -> None:
    """64 MB on disk, blocks of 2 MB: NumPy's allocations stay near one block (an in-memory fit copies
    the data twice), and the memmap's pages are handed back after each block."""
    rng = np.random.RandomState(0)
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(2_000_000, 4))
    for s in range(0, len(mm), 250_000):
        mm[s:s + 250_000] = rng.normal(size=(250_000, 4)) + (s // 250_000 % 2) * 4.0
    mm.flush()
    del mm
    monkeypatch.setattr(sources, "CHUNK_BYTES", 2 << 20)
    X = np.load(path, mmap_mode="r")

    def rss_file_kb() -> int:
        status = Path("/proc/self/status").read_text().splitlines()
        return next((int(line.split()[1]) for line in status if line.startswith(("RssFile", "RssShmem"))), 0)

    before = rss_file_kb()
    tracemalloc.start()
    g = fit(X, max_iter=3, random_state=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert g.n_iter_ == 3
    assert peak < 24e6, f"peak NumPy allocations {peak / 1e6:.1f} MB for 2 MB blocks of a 64 MB memmap"
    if before:
        assert rss_file_kb() - before < 16_000, "the memmap's pages stayed resident"


def test_missing_values_are_refused_or_dropped(tmp_path) -> None:
    X = blobs(8000)
    holes = X.copy()
    holes[[10, 4000, 7999], 1] = np.nan
    path = tmp_path / "holes.parquet"
    pq.write_table(pa.table({"a": holes[:, 0], "b": pa.array(holes[:, 1], from_pandas=True), "c": holes[:, 2]}),
                   path, row_group_size=3000)
    with pytest.raises(ValueError, match=r"3 row\(s\) have a missing value \(rows 10, 4000, 7999\)"):
        fit(ParquetData(str(path)), max_iter=2)
    with pytest.raises(ValueError, match="NaN"):
        fit(da.from_array(holes, chunks=(3000, 3)), max_iter=2)
    kept = np.delete(X, [10, 4000, 7999], axis=0)
    params = start(kept, "full")
    assert_same_fit(fit(kept, **params), fit(ParquetData(str(path), drop_missing=True), **params))
    inf = X.copy()
    inf[5, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fit(ChunkedArray(inf, chunk_rows=1000), max_iter=2)


def test_a_parquet_source_reads_its_footer_once(tmp_path, monkeypatch) -> None:
    """Opening the file reads its footer (schema, row groups) once, and a scaled or row-dropping copy
    of the source (as a fit with --scale makes) reads it no more; the copy keeps drop_missing."""
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": np.arange(10.0), "b": np.ones(10)}), path, row_group_size=4)
    opened = []
    real = sources._parquet_file
    monkeypatch.setattr(sources, "_parquet_file", lambda p: opened.append(p) or real(p))
    data = ParquetData(str(path), drop_missing=True)
    scaled = data.with_prep(sources.Prep(np.zeros(2), np.ones(2), False))
    assert len(opened) == 1 and scaled.group_rows == (4, 4, 2) and scaled.names == ("a", "b")
    assert scaled.prep.drop_missing and scaled.prep.shift is not None and data.prep.shift is None


def test_dask_outputs_are_lazy_and_equal(files) -> None:
    X = files[False][0]
    g = fit(X, **start(X, "full"))
    Xd = da.from_array(X, chunks=(5000, 3))
    for method in ("predict", "score_samples", "predict_proba"):
        out = getattr(g, method)(Xd)
        assert sources.is_dask_array(out), method
        np.testing.assert_allclose(out.compute(), getattr(g, method)(X), rtol=1e-12, atol=1e-300)
    assert g.score(Xd) == pytest.approx(g.score(X), rel=1e-12)
    assert g.bic(ParquetData(str(files[False][2]))) == pytest.approx(g.bic(X), rel=1e-12)


def test_the_cli_fits_parquet_as_it_fits_csv(files, tmp_path, capsys, monkeypatch) -> None:
    X, _, parquet = files[False]
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X, delimiter=",", header="f0,f1,f2", comments="")
    argv = ["--k-range", "3:5", "--n-init", "2", "--seed", "4"]
    assert cli.main(["fit", str(csv), *argv, "-o", str(tmp_path / "csv.json")]) == 0
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress per EM pass on a terminal
    monkeypatch.setattr(cli, "PROGRESS_INTERVAL", 0.0)  # every pass, however fast
    assert cli.main(["fit", str(parquet), *argv, "-o", str(tmp_path / "pq.json")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"fitting k=\d \(\d/3\), 2 restarts side by side: EM pass \d+, log-likelihood -[\d.]+ per row, "
                     r"[\d.e-]+ s/pass", err), err
    a, b = load(tmp_path / "csv.json"), load(tmp_path / "pq.json")
    assert a.n_components == b.n_components == 4
    np.testing.assert_allclose(b.means, a.means, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(b.scaler.scale, a.scaler.scale, rtol=1e-12)
    assert b.anomaly_threshold == pytest.approx(a.anomaly_threshold, rel=1e-8)


def test_a_file_that_is_not_parquet_is_named(tmp_path, capsys) -> None:
    for name, content in (("text.parquet", b"a,b\n1,2\n"), ("cut.parquet", None)):
        path = tmp_path / name
        if content is None:  # a copy cut short: its footer is gone
            table = pa.table({"f0": np.arange(100.0), "f1": np.arange(100.0)})
            pq.write_table(table, tmp_path / "whole.parquet")
            content = (tmp_path / "whole.parquet").read_bytes()[:200]
        path.write_bytes(content)
        assert cli.main(["fit", str(path), "-k", "2", "-o", str(tmp_path / "m.json")]) == 1
        err = capsys.readouterr().err
        assert f"{path} is not a Parquet file that can be read" in err and "Traceback" not in err, err
        assert not (tmp_path / "m.json").exists()


def test_the_cli_start_imports_no_dask_or_pyarrow(tmp_path) -> None:
    code = ("import sys, tinygmm, tinygmm.fit.mixture; from tinygmm import cli; "
            "cli.build_parser().parse_args(['fit', 'x.parquet', '-k', '2', '--dask', 'tcp://h:1', '-o', 'm.json']); "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'pyarrow')]; "
            "assert not loaded, loaded[:5]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# -- a LocalCluster of two worker processes --------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as lc, distributed.Client(lc) as client:
        yield client


def test_a_local_cluster_of_two_workers_fits_the_same(cluster, files) -> None:
    from distributed import get_task_stream

    X, _, parquet = files[True]  # the far component: the exact pass runs on the workers too
    params = start(X, "full", max_iter=8)  # every pass a round trip to the scheduler: ~0.1 s
    ref = fit(X, **params)
    with get_task_stream(cluster) as tasks:
        assert_same_fit(ref, fit(da.from_array(X, chunks=(4000, 3)).persist(), **params))
    assert len(cluster.scheduler_info()["workers"]) == 2
    assert len({t["worker"] for t in tasks.data}) == 2, "every block went to one worker"
    # a Parquet file read by the workers, one row group per task, restarts side by side
    assert_same_fit(ref, fit(DaskSource(ParquetData(str(parquet)).to_dask()), **params))
    g = GaussianMixture(K, n_init=2, random_state=0).fit(ParquetData(str(parquet)).to_dask())
    assert g.converged_


def test_the_cli_fits_on_a_cluster(cluster, files, tmp_path, capsys, monkeypatch) -> None:
    X, _, parquet = files[False]
    address = cluster.scheduler.address
    out = tmp_path / "m.json"
    assert cli.main(["fit", str(parquet), "-k", "4", "--dask", address, "-o", str(out)]) == 0
    assert cli.main(["fit", str(parquet), "-k", "4", "-o", str(tmp_path / "here.json")]) == 0
    np.testing.assert_allclose(load(out).means, load(tmp_path / "here.json").means, rtol=1e-9, atol=1e-9)
    monkeypatch.setattr(cli, "DASK_CONNECT_TIMEOUT", 1.0)
    assert cli.main(["fit", str(parquet), "-k", "4", "--dask", "tcp://127.0.0.1:1", "-o", str(out)]) == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


def test_warm_start_and_outputs_of_a_source(files) -> None:
    X, _, parquet = files[False]
    params = start(X, "diag", max_iter=3)
    a = fit(X, warm_start=True, **params)
    b = fit(ParquetData(str(parquet)), warm_start=True, **params)
    fit_again = GaussianMixture.fit
    for g, data in ((a, X), (b, ParquetData(str(parquet)))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_again(g, data)  # three more passes from where it stopped
    assert_same_fit(a, b)
    with pytest.raises(TypeError, match="read in blocks.*Dask array"):
        b.predict(ParquetData(str(parquet)))


# -- defects found in review -----------------------------------------------------------------------


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_fitting_file_after_file_keeps_only_a_few_open(tmp_path) -> None:
    rng = np.random.RandomState(0)
    before = _open_descriptors()
    for i in range(12):
        path = tmp_path / f"f{i}.parquet"
        pq.write_table(pa.table({"a": rng.randn(50), "b": rng.randn(50)}), path)
        GaussianMixture(1).fit(ParquetData(str(path)))
        path.unlink()  # a deleted file held open keeps its disk space too
    assert _open_descriptors() - before <= 4  # sources.OPEN_FILES per thread, whatever the number of files
    # a file written again is read again, and its old handle closed
    path = tmp_path / "again.parquet"
    pq.write_table(pa.table({"a": np.zeros(50) + rng.randn(50) * 0.1}), path)
    GaussianMixture(1).fit(ParquetData(str(path)))
    opened = _open_descriptors()
    pq.write_table(pa.table({"a": np.full(60, 5.0) + rng.randn(60) * 0.1}), path)
    assert GaussianMixture(1).fit(ParquetData(str(path))).means_[0, 0] == pytest.approx(5.0, abs=0.1)
    assert _open_descriptors() == opened


@pytest.mark.parametrize("make", [lambda X: ChunkedArray(X, chunk_rows=50), lambda X: da.from_array(X, chunks=(50, 2))],
                         ids=["chunked", "dask"])
def test_a_missing_value_is_named_by_its_row_in_the_data(make) -> None:
    X = np.random.RandomState(0).randn(200, 2)
    g = GaussianMixture(2, random_state=0).fit(X)
    X[157, 1] = np.nan
    for method in ("score", "bic", "aic"):
        with pytest.raises(ValueError, match=r"NaN \(row 157\)"):
            getattr(g, method)(make(X))


def test_complex_and_non_numeric_data_read_in_blocks_are_refused(tmp_path) -> None:
    rng = np.random.RandomState(0)
    Z = rng.randn(200, 2) + 1j * rng.randn(200, 2)
    Z.tofile(tmp_path / "c.bin")
    mm = np.memmap(tmp_path / "c.bin", dtype=np.complex128, mode="r", shape=(200, 2))
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture(1).fit(np.asarray(mm))  # in memory: scikit-learn's refusal
    for data in (mm, da.from_array(Z, chunks=(50, 2))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ComplexWarning first: refused before any block is read
            with pytest.raises(ValueError, match="Complex data not supported"):
                GaussianMixture(1).fit(data)
    with pytest.raises(ValueError, match="dtype <U1 is not numeric"):
        GaussianMixture(1).fit(da.from_array(np.full((10, 2), "a")))
    flags = np.eye(10, 2, dtype=bool)  # booleans are numbers, as in memory
    np.testing.assert_allclose(GaussianMixture(1).fit(ChunkedArray(flags)).means_, GaussianMixture(1).fit(flags).means_)


def test_a_negative_column_index_is_refused(tmp_path) -> None:
    path = tmp_path / "abc.parquet"
    pq.write_table(pa.table({"a": np.arange(5.0), "b": np.arange(5.0), "c": np.arange(5.0)}), path)
    for column in (-1, "-1", True):
        with pytest.raises(ValueError, match=rf"no column {re.escape(repr(column))}; available: 0: 'a', 1: 'b', 2: 'c'"):
            ParquetData(str(path), [column])
    assert ParquetData(str(path), [2, "0"]).names == ("c", "a")


def test_dask_outputs_of_blocks_left_with_no_rows(files) -> None:
    X = files[False][0]
    g = fit(X, **start(X, "full", max_iter=3))
    X = X[np.argsort(X[:, 0])]
    Xd = da.from_array(X, chunks=(3000, 3))
    kept = Xd[Xd[:, 0] > 45.0]  # the first blocks keep no row
    kept.compute_chunk_sizes()
    rows = X[X[:, 0] > 45.0]
    for chunks in (kept, da.from_array(X[:6000], chunks=((3000, 0, 3000), (3,)))):
        assert 0 in chunks.chunks[0]
        expected = rows if chunks is kept else X[:6000]
        for method in ("predict", "score_samples", "predict_proba"):
            np.testing.assert_allclose(getattr(g, method)(chunks).compute(), getattr(g, method)(expected), rtol=1e-12,
                                       atol=1e-300, err_msg=method)


@pytest.fixture(scope="module")
def holes(tmp_path_factory) -> tuple[np.ndarray, Path]:
    """Rows without a missing value, and a Parquet file of them with three rows holding a null or a NaN,
    in row groups of 3000, 0, 3000 and 2000 rows."""
    X = blobs(8000)
    a, b = X[:, 0].copy(), X[:, 1].copy()
    a[[10, 7999]] = np.nan
    b[4000] = np.nan
    table = pa.table({"a": a, "b": pa.array(b, from_pandas=True), "c": X[:, 2]})  # b[4000] a null
    path = tmp_path_factory.mktemp("holes") / "holes.parquet"
    with pq.ParquetWriter(path, table.schema) as w:
        for s, e in ((0, 3000), (3000, 3000), (3000, 6000), (6000, 8000)):
            w.write_table(table.slice(s, e - s))
    return np.delete(X, [10, 4000, 7999], axis=0), path


def test_to_dask_of_a_source_that_drops_missing_rows_drops_them(holes) -> None:
    kept, path = holes
    params = start(kept, "full", max_iter=5)
    ref = fit(kept, **params)
    Xd = ParquetData(str(path), drop_missing=True).to_dask()
    for data in (Xd, Xd.persist()):
        assert_same_fit(ref, fit(data, **params))
    np.testing.assert_array_equal(ref.predict(Xd).compute(), ref.predict(kept))
    assert ref.score(Xd) == pytest.approx(ref.score(kept), rel=1e-12)
    with pytest.raises(ValueError, match=r"3 row\(s\) have a missing value \(rows 10, 4000, 7999\)"):
        fit(ParquetData(str(path)).to_dask(), **params)


def test_the_cli_drops_missing_rows_on_a_cluster(cluster, holes, tmp_path, capsys) -> None:
    _, path = holes
    argv = ["fit", str(path), "-k", "2", "--drop-missing", "-o"]
    assert cli.main([*argv, str(tmp_path / "here.json")]) == 0
    assert "dropped 3 row(s) with missing values" in capsys.readouterr().err
    assert cli.main([*argv, str(tmp_path / "there.json"), "--dask", cluster.scheduler.address]) == 0
    assert "dropped 3 row(s) with missing values" in capsys.readouterr().err
    here, there = load(tmp_path / "here.json"), load(tmp_path / "there.json")
    np.testing.assert_allclose(there.means, here.means, rtol=1e-9, atol=1e-9)


def test_float32_parquet_columns_fit_as_a_float32_array(tmp_path) -> None:
    X = blobs(4000).astype(np.float32)
    path = tmp_path / "f32.parquet"
    pq.write_table(pa.table({f"f{j}": X[:, j] for j in range(3)}), path, row_group_size=1500)
    params = start(X.astype(np.float64), "diag", max_iter=4)
    ref = fit(X, **params)
    source = ParquetData(str(path))
    assert source.dtype == np.float32 and source.to_dask().dtype == np.float32
    for data in (source, source.to_dask()):
        g = fit(data, **params)
        assert g.means_.dtype == np.float32 and g.lower_bound_.dtype == np.float32
        assert_same_fit(ref, g, rtol=1e-6)
    assert ref.predict_proba(source.to_dask()).dtype == np.float32
    mixed = tmp_path / "mixed.parquet"  # a float64 or integer column: float64, as an array of them
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1].astype(np.float64)}), mixed)
    assert ParquetData(str(mixed)).dtype == np.float64 and ParquetData(str(mixed), ["a"]).dtype == np.float32
