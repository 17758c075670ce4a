"""A board farm's wall time: the shipped pytest suite over two emulated Unos (simavr) and the native
build, run serially and with `pytest -n 2`, alternately, several times.

The model is make_blobs K=16, D=8, full (the slow one of bench/device_cost.py), so that each Uno has
work to do; the project is exported and built once with tinygmm's offline PlatformIO core.

    python bench/farm_wall.py [--repeat 3] [--workdir /tmp/tinygmm-farm]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS = ["--tinygmm-emulator", "simavr", "--tinygmm-emulator", "simavr", "--tinygmm-emulator", "native"]


def project(workdir: Path) -> Path:
    from sklearn.datasets import make_blobs

    from tinygmm.fit.mixture import GaussianMixture
    from tinygmm.model import Model
    from tinygmm.project.build import core_dir_for, ensure_built
    from tinygmm.project.export import export_project
    from tinygmm.project.firmware import read_firmware_project

    out = workdir / "project"
    if not (out / ".pio" / "build" / "uno" / "firmware.elf").is_file():
        X, _ = make_blobs(4000, n_features=8, centers=16, random_state=0)
        model = Model.from_gmm(GaussianMixture(16, covariance_type="full", random_state=0).fit(X), X_train=X)
        export_project(model, ["uno", "native"], out, X_train=X, force=True)
        for env in ("uno", "native"):
            ensure_built(read_firmware_project(out).firmware(env), core_dir_for(True))
    return out


def run(proj: Path, hil: Path, workers: int) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(hil), "--tinygmm-project", str(proj),
            *TARGETS, "--tinygmm-offline", "-n", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=hil.parent)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"pytest -n {workers} failed:\n{proc.stdout[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tinygmm-farm"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    proj = project(args.workdir)
    hil = args.workdir / "hil"
    shutil.rmtree(hil, ignore_errors=True)
    shutil.copytree(proj / "hil", hil)
    walls: dict[int, list[float]] = {0: [], 2: []}
    for _ in range(args.repeat):
        for n in (0, 2):
            walls[n].append(run(proj, hil, n))
    load = os.getloadavg()[0]
    print(f"the hil suite over 2 simavr Unos + native (K=16, D=8 full), {os.cpu_count()} cores, load {load:.1f}")
    for n, label in ((0, "serial (-n 0)"), (2, "pytest -n 2")):
        print(f"  {label:14} wall s: {', '.join(f'{w:.1f}' for w in walls[n])}  median {statistics.median(walls[n]):.1f}")
    print(f"  speed-up of the medians: {statistics.median(walls[0]) / statistics.median(walls[2]):.2f}x")


if __name__ == "__main__":
    main()
