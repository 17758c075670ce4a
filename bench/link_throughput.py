"""Vectors per second over the serial link: the Uno firmware in simavr, throttled to real time.

simavr's UART moves bytes at the firmware's baud rate (115200) in emulated time, so with the
emulation throttled to 16 MHz of real time the link is as fast as a real Uno's. Printed, for the
batch form and for single requests, predict and score: vectors per second, request bytes the
protocol moves per vector, the share of the raw-payload limit (11,520 bytes/s over 4 bytes per
input float), and the requests the host had to send again because bytes were lost or corrupted
(resends: must be 0). Models: the demo model (K=3, D=2), the Mall Customers model of
bench/device_cost.py (K=7 full, D=2; when the data set is present) and make_blobs K=16, D=8 full,
whose inferences take longer than the Uno's receive ring takes to fill.
If the machine cannot keep the emulation at 16 MHz (a loaded CPU), rates are also given per
emulated second.

    python bench/link_throughput.py [--model model.json] [--vectors 2000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinygmm import GaussianMixture
from tinygmm.device.fold import fold
from tinygmm.data import demo_data
from tinygmm.link.client import Device
from tinygmm.model import Model, Scaler, load
from tinygmm.project.boards import get_board, get_emulator
from tinygmm.project.offline import provision_offline
from tinygmm.project.pio import run_pio
from tinygmm.verify.session import emulator_transport
from tinygmm.project.export import export_project
from tinygmm.device.twin import DeviceTwin

import device_cost as dc  # bench/: the same Mall Customers and blobs models

BAUD = get_board("uno").baud
UNO_MHZ = get_board("uno").clock_hz / 1e6
TARGET_SHARE = 0.60  # the target for the D=2 batch predict


def demo_model() -> Model:
    X, names = demo_data()
    scaler = Scaler.fit(X)
    gmm = GaussianMixture(3, random_state=0).fit(scaler.transform(X))
    return Model.from_gmm(gmm, scaler=scaler, feature_names=names, X_train=scaler.transform(X))


def build_uno(model: Model, where: Path) -> Path:
    export_project(model, ["uno"], where, force=True)
    run_pio(["run", "-e", "uno"], where, provision_offline().core_dir, echo=False)
    return where / get_board("uno").artifact


def measure(elf: Path, model: Model, X: np.ndarray) -> list[dict]:
    rows = []
    twin = DeviceTwin(fold(model)).evaluate(X)
    with emulator_transport(get_emulator("simavr")[0], elf, realtime=1.0) as transport:
        dev = Device(transport)
        dev.sync()
        info = dev.hello()
        for form in ("batch", "single"):
            for op in ("predict", "score"):
                n = len(X) if form == "batch" else min(len(X), 200)
                sent, lost = dev.transcript.bytes_sent(), dev.stats.total()
                t0 = time.perf_counter()
                if form == "batch":
                    values = dev.batch(op, X[:n]).values
                else:
                    values = np.array([getattr(dev, op)(x) for x in X[:n]])
                seconds = time.perf_counter() - t0
                want = twin.label[:n] if op == "predict" else twin.score[:n]
                agree = np.mean(values == want) if op == "predict" else np.mean(np.isfinite(values))
                rows.append(dict(form=form, op=op, n=n, seconds=seconds, bytes=dev.transcript.bytes_sent() - sent,
                                 agree=float(agree), resends=dev.stats.total() - lost))
    mhz = transport.emulated_mhz or UNO_MHZ
    for r in rows:
        r.update(mhz=mhz, rx=info.rx_buffer, batch=info.batch_max)
    return rows


def models(path: Path | None) -> dict[str, Model]:
    """The models measured: the one given, else the demo, Mall Customers (when present) and blobs."""
    if path is not None:
        return {path.stem: load(path)}
    out = {"demo": demo_model()}
    if dc.MALL_CSV.is_file():
        out["mall"] = dc.mall_model()[0]
    else:
        print(f"{dc.MALL_CSV} not found: skipping the Mall Customers model", file=sys.stderr)
    out["blobs16x8"] = dc.blobs_model("full")[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="one model file (default: demo, Mall Customers and blobs)")
    ap.add_argument("--vectors", type=int, default=2000, help="vectors per batch measurement (default 2000)")
    ap.add_argument("--keep", type=Path, help="export and build the projects under this folder")
    args = ap.parse_args()

    print(f"Uno firmware in simavr at real time, {BAUD} baud; raw-payload limit = {BAUD // 10} bytes/s over "
          "4 bytes per input float; resends = requests sent again because bytes were lost (must be 0)\n")
    print(f"{'model':>10} {'K':>3} {'D':>3} {'rx':>4} {'form':>6} {'op':>8} {'vectors':>8} {'vec/s':>8} "
          f"{'of limit':>9} {'B/vector':>9} {'resends':>8} {'vec/s (emulated time)':>22} {'agree':>6}")
    total_resends = 0
    for name, model in models(args.model).items():
        gmm = model.to_gmm()
        gmm.random_state = 0
        X = gmm.sample(args.vectors)[0]
        if model.scaler is not None:
            X = X * model.scaler.scale + model.scaler.mean
        X = X.astype(np.float32)
        with tempfile.TemporaryDirectory(prefix="tinygmm-link-") as tmp:
            elf = build_uno(model, (args.keep or Path(tmp)) / name)
            rows = measure(elf, model, X)
        raw_limit = BAUD / 10 / (4 * model.n_features)  # vectors/s: 10 bits per byte, 4 bytes per float
        for r in rows:
            rate = r["n"] / r["seconds"]
            emulated = rate * UNO_MHZ / r["mhz"]
            total_resends += r["resends"]
            print(f"{name:>10} {model.n_components:>3} {model.n_features:>3} {r['rx']:>4} {r['form']:>6} "
                  f"{r['op']:>8} {r['n']:>8} {rate:8,.0f} {rate / raw_limit:9.1%} {r['bytes'] / r['n']:9.2f} "
                  f"{r['resends']:>8} {emulated:22,.0f} {r['agree']:6.1%}")
        if name == "demo":
            bp = next(r for r in rows if r["form"] == "batch" and r["op"] == "predict")
            share = bp["n"] / bp["seconds"] * UNO_MHZ / bp["mhz"] / raw_limit
            demo_line = (f"demo batch predict: {share:.1%} of the raw-payload limit (target {TARGET_SHARE:.0%} "
                         "for D=2): " + ("met" if share >= TARGET_SHARE else "NOT met"))
    print(f"\nresends over every model: {total_resends}" + ("" if total_resends == 0 else "  <- bytes were lost"))
    if args.model is None:
        print(demo_line)


if __name__ == "__main__":
    main()
