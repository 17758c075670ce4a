"""Vectors per second over the serial link: the Uno firmware in simavr, throttled to real time.

simavr's UART moves bytes at the firmware's baud rate (115200) in emulated time, so with the
emulation throttled to 16 MHz of real time the link is as fast as a real Uno's. Printed, for the
batch form and for single requests, predict and score: vectors per second, request bytes the
protocol moves per vector, and the share of the raw-payload limit (11,520 bytes/s over 4 bytes per
input float). Every run also checks that the device never dropped a byte (no CRC error, no resend).
If the machine cannot keep the emulation at 16 MHz (a loaded CPU), rates are also given per
emulated second.

    python bench/link_throughput.py [--model model.json] [--vectors 2000] [--keep DIR]
"""
from __future__ import annotations

import argparse
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
                sent = dev.transcript.bytes_sent()
                t0 = time.perf_counter()
                if form == "batch":
                    res = dev.batch(op, X[:n])
                    values = res.values
                else:
                    values = np.array([getattr(dev, op)(x) for x in X[:n]])
                seconds = time.perf_counter() - t0
                want = twin.label[:n] if op == "predict" else twin.score[:n]
                agree = np.mean(values == want) if op == "predict" else np.mean(np.isfinite(values))
                rows.append(dict(form=form, op=op, n=n, seconds=seconds, bytes=dev.transcript.bytes_sent() - sent,
                                 agree=float(agree)))
        log = dev.transcript.text()
    drops = log.count("bad_crc") + log.count("corrupted") + log.count("retry")
    mhz = transport.emulated_mhz or UNO_MHZ
    for r in rows:
        r.update(drops=drops, mhz=mhz, rx=info.rx_buffer, batch=info.batch_max)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a model file (default: the demo data, 3 components, D=2)")
    ap.add_argument("--vectors", type=int, default=2000, help="vectors per batch measurement (default 2000)")
    ap.add_argument("--keep", type=Path, help="export and build the project here instead of a temporary folder")
    args = ap.parse_args()

    model = load(args.model) if args.model else demo_model()
    gmm = model.to_gmm()
    gmm.random_state = 0
    X = gmm.sample(args.vectors)[0]
    if model.scaler is not None:
        X = X * model.scaler.scale + model.scaler.mean
    X = X.astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="tinygmm-link-") as tmp:
        elf = build_uno(model, args.keep or Path(tmp) / "project")
        rows = measure(elf, model, X)

    D = model.n_features
    raw_limit = BAUD / 10 / (4 * D)  # vectors/s: 10 bits per byte on the wire, 4 bytes per float
    print(f"Uno firmware in simavr at real time, {BAUD} baud; model {model.model_id}: "
          f"K={model.n_components}, D={D}, {model.covariance_type}; device rx={rows[0]['rx']} B, "
          f"batch={rows[0]['batch']} vectors/line; emulation ran at {rows[0]['mhz']:.2f} MHz")
    print(f"raw-payload limit: {BAUD // 10} bytes/s / {4 * D} bytes per vector = {raw_limit:,.0f} vectors/s\n")
    print(f"{'form':>6} {'op':>8} {'vectors':>8} {'vec/s':>8} {'of limit':>9} {'B/vector':>9} "
          f"{'vec/s (emulated time)':>22} {'agree':>6}")
    for r in rows:
        rate = r["n"] / r["seconds"]
        emulated = rate * UNO_MHZ / r["mhz"]
        print(f"{r['form']:>6} {r['op']:>8} {r['n']:>8} {rate:8,.0f} {rate / raw_limit:9.1%} "
              f"{r['bytes'] / r['n']:9.2f} {emulated:22,.0f} {r['agree']:6.1%}")
    batch_predict = next(r for r in rows if r["form"] == "batch" and r["op"] == "predict")
    share = batch_predict["n"] / batch_predict["seconds"] * UNO_MHZ / batch_predict["mhz"] / raw_limit
    print(f"\nbytes dropped by the device (CRC errors or resends): {rows[0]['drops']}")
    print(f"batch predict: {share:.1%} of the raw-payload limit (target {TARGET_SHARE:.0%} for D=2): "
          + ("met" if share >= TARGET_SHARE else "NOT met"))


if __name__ == "__main__":
    main()
