"""Fitting data larger than memory: the chunked fit, the in-memory fit and a two-worker LocalCluster
side by side in one run, from the same initial parameters.

Writes (once) a Parquet file of --rows rows of 8 features (default 20 million: about 1.3 GB,
uncompressed, row groups of --group-rows rows) drawn from 16 Gaussian components, then fits K=16
with full covariances for --passes EM passes, each way in its own process:

  * chunked:   GaussianMixture.fit(ParquetData(path)): one row group in memory at a time;
  * in memory: the whole file read into one array, then GaussianMixture.fit(X) (when it fits);
  * cluster:   a dask.distributed LocalCluster of 2 worker processes (1 thread each); each reads its
               row groups and keeps them (persist), then GaussianMixture.fit(that Dask array).

For each: seconds of the first pass (rows, mean, scatter; the in-memory fit's validation and
centring), median seconds per EM pass, the final lower bound and its difference from the in-memory
one, and the peak resident memory of the process (for the cluster: the client and each worker).

    python bench/fit_scale.py [--rows 20000000] [--passes 5] [--data /tmp/tinygmm-fit-scale.parquet]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

D, K = 8, 16
SEED = 0


def centres() -> np.ndarray:
    return np.random.RandomState(SEED).uniform(-10.0, 10.0, (K, D))


def write_data(path: Path, rows: int, group_rows: int) -> None:
    """The mixture's rows, written a row group at a time (never all in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.RandomState(SEED + 1)
    mu = centres()
    scales = rng.uniform(0.5, 1.5, (K, D))
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(f"x{j}", pa.float64()) for j in range(D)])
    with pq.ParquetWriter(tmp, schema, compression="none") as writer:
        for start in range(0, rows, group_rows):
            n = min(group_rows, rows - start)
            comp = rng.randint(K, size=n)
            X = mu[comp] + rng.standard_normal((n, D)) * scales[comp]
            writer.write_table(pa.table({f"x{j}": X[:, j] for j in range(D)}, schema=schema), row_group_size=n)
    tmp.replace(path)


def start_params() -> dict:
    """Every way starts here: the true centres moved by 0.3, unit precisions."""
    return dict(means_init=centres() + 0.3, weights_init=np.full(K, 1.0 / K),
                precisions_init=np.repeat(np.eye(D)[None], K, axis=0))


def run_mode(mode: str, path: Path, passes: int) -> dict:
    """One fit; the JSON it prints is read by the parent."""
    from tinygmm import GaussianMixture
    from tinygmm.fit.mixture import report_passes
    from tinygmm.fit.sources import ParquetData

    times: list[float] = []
    gm = GaussianMixture(K, covariance_type="full", max_iter=passes, tol=0.0, **start_params())
    out: dict = {"mode": mode}
    t0 = time.perf_counter()
    with warnings.catch_warnings(), report_passes(lambda i, ll, s: times.append(s)):
        warnings.simplefilter("ignore")  # tol=0: never "converged"
        if mode == "chunked":
            gm.fit(ParquetData(str(path)))
        elif mode == "memory":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            X = np.column_stack([table.column(j).to_numpy() for j in range(D)])
            del table
            out["read"] = time.perf_counter() - t0
            gm.fit(X)
        else:
            from distributed import Client, LocalCluster

            from distributed import wait

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=40) as cluster, Client(cluster) as client:
                t0 = time.perf_counter()
                X = ParquetData(str(path)).to_dask().persist()  # the blocks live on the workers
                wait(X)
                out["read"] = time.perf_counter() - t0
                gm.fit(X)
                out["workers_peak_mb"] = sorted(
                    v / 1024 for v in client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())
    total = time.perf_counter() - t0
    out.update(seconds=total, first=total - sum(times) - out.get("read", 0.0), per_pass=statistics.median(times),
               lower_bound=float(gm.lower_bound_), peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               means=gm.means_.tolist())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--group-rows", type=int, default=250_000, help="rows per Parquet row group")
    ap.add_argument("--passes", type=int, default=5, help="EM passes per fit (timed; median reported)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/tinygmm-fit-scale.parquet"))
    ap.add_argument("--modes", default="chunked,memory,cluster")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads per process (default 1: on a shared machine OpenBLAS's spinning threads "
                         "make a 2-thread pass 20-50x slower; the cluster's workers have 1 thread each anyway)")
    ap.add_argument("--mode", help=argparse.SUPPRESS)  # a child's one fit
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.data, args.passes)))
        return
    import pyarrow.parquet as pq

    if not args.data.exists() or pq.ParquetFile(args.data).metadata.num_rows != args.rows:
        t0 = time.perf_counter()
        write_data(args.data, args.rows, args.group_rows)
        print(f"wrote {args.data}: {args.rows:,} rows x {D} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    meta = pq.ParquetFile(args.data).metadata
    print(f"{args.data}: {meta.num_rows:,} rows x {D} features, {meta.num_row_groups} row groups, "
          f"{args.data.stat().st_size / 1e9:.2f} GB; K={K} full covariance, {args.passes} EM passes, "
          f"{os.cpu_count()} cores, {args.blas_threads} BLAS thread(s) per process")
    results = {}
    env = dict(os.environ, **{v: str(args.blas_threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                  "MKL_NUM_THREADS")})
    for mode in args.modes.split(","):
        proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--data", str(args.data),
                               "--passes", str(args.passes)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{mode}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = results.get("memory")
    names = {"chunked": "chunked (row groups)", "memory": "in memory", "cluster": "LocalCluster, 2 workers"}
    print(f"{'':24} | {'first pass s':>12} | {'s/EM pass':>9} | {'lower bound':>18} | {'vs in memory':>12} | "
          f"{'peak MB':>8}")
    print("-" * 99)
    for mode, r in results.items():
        diff = "" if ref is None else f"{abs(r['lower_bound'] - ref['lower_bound']) / abs(ref['lower_bound']):.1e}"
        peak = f"{r['peak_mb']:8.0f}"
        if "workers_peak_mb" in r:
            peak += " (workers " + ", ".join(f"{w:.0f}" for w in r["workers_peak_mb"]) + ")"
        if "read" in r:
            peak += f" (read {r['read']:.0f} s)"
        print(f"{names[mode]:24} | {r['first']:12.1f} | {r['per_pass']:9.2f} | {r['lower_bound']:18.12f} | "
              f"{diff:>12} | {peak}")
    if ref is not None:
        worst = max(np.max(np.abs(np.array(r["means"]) - np.array(ref["means"]))) for r in results.values())
        print(f"largest difference of a mean from the in-memory fit's: {worst:.1e}")


if __name__ == "__main__":
    main()
