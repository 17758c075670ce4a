"""Reading a large CSV: tinygmm's streaming reader against the csv module with float() per cell
(the reader tinygmm had before), side by side in one run, and the EM pass the data is read for.

Writes N rows of D random columns (default 2,000,000 x 8, about 170 MB), then prints seconds and
peak NumPy/Python memory (tracemalloc) of each reader, and the size of the float64 matrix.

    python bench/csv_read.py [--rows 2000000] [--features 8] [--keep FILE]
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from tinygmm.data import load_csv
from tinygmm.fit.mixture import GaussianMixture


def per_cell(path: Path) -> np.ndarray:
    """The plain way: the csv module, then float() per cell into a list of lists."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return np.array([[float(c) for c in row] for row in reader])


def measure(fn, *args) -> tuple[float, float, object]:
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--keep", type=Path, help="write the CSV here (default: a temporary file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinygmm-csv-") as tmp:
        path = args.keep or Path(tmp) / "big.csv"
        X = np.random.default_rng(0).normal(size=(args.rows, args.features)) * 100
        np.savetxt(path, X, delimiter=",", header=",".join(f"c{j}" for j in range(args.features)), comments="",
                   fmt="%.6f")
        matrix_mb = X.nbytes / 2**20
        del X
        print(f"{path.stat().st_size / 2**20:.0f} MB CSV, {args.rows:,} x {args.features}: "
              f"the float64 matrix is {matrix_mb:.0f} MB\n")
        print(f"{'':34} {'seconds':>8} {'peak MB':>8} {'x matrix':>9}")
        s_new, m_new, data = measure(load_csv, path)
        s_old, m_old, X_old = measure(per_cell, path)
        assert np.array_equal(data.X, X_old)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one iteration does not converge, by design
            s_em, m_em, _ = measure(lambda: GaussianMixture(16, max_iter=1, tol=0.0, random_state=0,
                                                            init_params="random_from_data").fit(data.X))
        for name, s, m in (("tinygmm load_csv (streaming)", s_new, m_new), ("csv module + float() per cell", s_old, m_old),
                           ("one EM fit, K=16 full, 1 iteration", s_em, m_em)):
            print(f"{name:34} {s:8.2f} {m:8.0f} {m / matrix_mb:9.2f}")
        print(f"\nload_csv: {s_old / s_new:.1f}x faster than per-cell parsing, peak memory {m_new / matrix_mb:.2f}x "
              "the matrix (targets: 5x, 2x)")


if __name__ == "__main__":
    main()
