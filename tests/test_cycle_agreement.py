"""The on-device cycle counts `tinygmm verify` reports agree with bench/device_cost.py.

verify times N calls on the device itself (the firmware's `bench` command, Timer1 at the CPU
clock); device_cost.py counts the cycles of single calls exactly from simavr, interrupts off.
Both run the same core on the same ATmega328P model, so per call they must agree closely.
"""
from __future__ import annotations

import importlib.util
import io
import subprocess
from pathlib import Path

import numpy as np

from conftest import require_programs
from tinygmm import GaussianMixture
from tinygmm.device.fold import fold
from tinygmm.data import demo_data
from tinygmm.link.client import Device
from tinygmm.project.boards import get_board, get_emulator
from tinygmm.verify.session import emulator_transport
from tinygmm.model import Model, Scaler
from tinygmm.project.pio import run_pio
from tinygmm.project.export import export_project
from tinygmm.device.render import write_header
from tinygmm.resources import firmware_dir

REPO = Path(__file__).resolve().parents[1]
# The bench command's loop, argument copy and the Timer1 overflow interrupt add a little per call.
AGREEMENT = 0.10


def device_cost_module():
    spec = importlib.util.spec_from_file_location("device_cost", REPO / "bench" / "device_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verify_cycles_agree_with_device_cost(tmp_path: Path, pio_core, avr_toolchain) -> None:
    require_programs("simavr", install="apt-get install simavr libsimavr-dev")
    X, names = demo_data()
    scaler = Scaler.fit(X)
    model = Model.from_gmm(GaussianMixture(3, random_state=0).fit(scaler.transform(X)), scaler=scaler,
                           feature_names=names, X_train=scaler.transform(X))
    points = X[::60][:8].astype(np.float32)

    # exact cycles of one predict / score per point (device_cost.py's firmware and runner)
    dc = device_cost_module()
    runner = tmp_path / "simavr_cycles"
    subprocess.run(["gcc", "-O2", "-I/usr/include/simavr", str(firmware_dir() / "dev" / "simavr_cycles.c"),
                    "-lsimavr", "-lutil", "-o", str(runner)], check=True)
    header = write_header(fold(model), tmp_path / "model.h")
    exact = dc.run_firmware(tmp_path, header, points, runner)  # point, (empty, predict, score), (tag, cycles, result)
    exact_predict = exact[:, 1, 1] - exact[:, 0, 1]
    exact_score = exact[:, 2, 1] - exact[:, 0, 1]

    # the same model in the protocol firmware, timed by its bench command as verify does
    project = tmp_path / "project"
    export_project(model, ["uno"], project)
    run_pio(["run", "-e", "uno"], project, pio_core.core_dir, echo=io.StringIO())
    with emulator_transport(get_emulator("simavr")[0], project / get_board("uno").artifact) as transport:
        dev = Device(transport)
        dev.sync()
        assert dev.hello().clock_unit == "cycles"
        bench_predict = np.array([dev.bench("predict", x, 20).per_call for x in points])
        bench_score = np.array([dev.bench("score", x, 20).per_call for x in points])
    print(f"\npredict cycles, device_cost / verify: {np.median(exact_predict):.0f} / {np.median(bench_predict):.0f}; "
          f"score: {np.median(exact_score):.0f} / {np.median(bench_score):.0f}")
    np.testing.assert_allclose(bench_predict, exact_predict, rtol=AGREEMENT)
    np.testing.assert_allclose(bench_score, exact_score, rtol=AGREEMENT)
