"""The verification suite: its comparisons can fail, and `tinygmm verify` runs them on a real native build."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from tinygmm.cli import main
from tinygmm.device.fold import fold
from tinygmm.model import Model, load
from tinygmm.project.export import export_project
from tinygmm.device.twin import DeviceTwin
from tinygmm.status import ERR_NONFINITE
from tinygmm.verify.vectors import load_vectors
from tinygmm.verify.compare import OPS, STATUS_CHECK, VALUE_CHECKS, compare, twin_answers


@pytest.fixture
def project(demo_project: Path) -> Path:
    return demo_project


def twin_outputs(model: Model, X: np.ndarray) -> dict:
    """What a perfect device answers: the twin's own statuses and values."""
    return twin_answers(DeviceTwin(fold(model)).evaluate(X))


def failed(checks) -> dict[str, int]:
    return {c.name.split(":")[0] + ":" + c.name.split(":")[1][:12]: c.failures for c in checks if not c.passed}


def test_the_twin_itself_passes_every_check(project: Path) -> None:
    model = load(project / "model.json")
    vectors = load_vectors(project / "test_vectors.json")
    checks, figures = compare(fold(model), vectors, twin_outputs(model, vectors.X))
    assert all(c.passed for c in checks), failed(checks)
    assert figures["bit_exact"]["log_joint"] == 1.0


def test_each_kind_of_wrong_answer_is_caught(project: Path) -> None:
    model = load(project / "model.json")
    vectors = load_vectors(project / "test_vectors.json")
    good = twin_outputs(model, vectors.X)
    sample = vectors.kinds.index("sample")

    def tampered(op: str, change) -> list[str]:
        out = {k: (s.copy(), v.copy()) for k, (s, v) in good.items()}
        change(*out[op])
        return [c.name for c in compare(fold(model), vectors, out)[0] if not c.passed]

    def relabel(s, v):
        v[sample] = (v[sample] + 1) % model.n_components
    assert tampered("predict", relabel) == [VALUE_CHECKS["predict"]]

    def shift_lj(s, v):
        v[sample] += np.float32(0.5)
    assert tampered("log_joint", shift_lj) == [VALUE_CHECKS["log_joint"]]

    def shift_score(s, v):
        v[sample] -= np.float32(0.01)
    assert VALUE_CHECKS["score"] in tampered("score", shift_score)

    def shift_proba(s, v):
        v[sample, 0] += np.float32(1e-4)
    assert tampered("proba", shift_proba) == [VALUE_CHECKS["proba"]]

    nan_row = vectors.kinds.index("nonfinite")

    def answer_nan(s, v):
        s[nan_row] = 0  # the device answered a NaN input instead of refusing it
    assert tampered("score", answer_nan) == [STATUS_CHECK.format(op="score")]
    assert good["score"][0][nan_row] == ERR_NONFINITE


def test_verify_native_passes_and_writes_the_report(project: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.json"
    log = tmp_path / "link.log"
    code = main(["verify", str(project), "-e", "native", "--emulator", "native", "--report", str(report),
                 "--log", str(log)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "certified float32 ties" in out
    for name in VALUE_CHECKS.values():  # each value check printed as its error against its own bound
        assert any(line.split(name)[-1].strip().split()[1:3] == ["error/bound", "max"]
                   for line in out.splitlines() if name in line), out
    doc = json.loads(report.read_text())
    assert doc["format"] == "tinygmm-verify" and doc["version"] == 2 and doc["passed"] is True
    assert all((c["worst"] is None) == (c["name"].endswith("status equals the twin's") or c["name"].startswith("link:"))
               for c in doc["checks"])
    assert all(c["worst"] < 1 for c in doc["checks"] if c["worst"] is not None)
    assert doc["model_id"] == load(project / "model.json").model_id
    assert {c["name"].split(":")[0] for c in doc["checks"]} == {*OPS, "link"}
    assert doc["link"]["lines_sent"] > 0 and doc["link"]["resent_lines"] == 0
    assert doc["n_vectors"] == sum(doc["kinds"].values()) and doc["cycles"]["predict"] > 0
    assert "hello" in log.read_text()  # every byte sent and received, timestamped


def test_stale_firmware_is_refused(project: Path, tmp_path: Path, capsys) -> None:
    """A build of another model answers hello with its own id: verify stops before comparing."""
    model = load(project / "model.json")
    other = Model(model.covariance_type, model.weights, model.means + 0.01, model.covariances, model.scaler,
                  model.feature_names, model.anomaly_threshold, model.metadata)
    stale = tmp_path / "stale"
    export_project(model, ["native"], stale)
    assert main(["build", str(stale), "-e", "native"]) == 0
    export_project(other, ["native"], stale)  # the model changes, the binary is not rebuilt
    binary = stale / ".pio" / "build" / "native" / "program"
    future = time.time() + 60
    os.utime(binary, (future, future))
    capsys.readouterr()
    assert main(["verify", str(stale), "-e", "native", "--emulator", "native"]) == 1
    err = capsys.readouterr().err
    assert f"the device runs model {model.model_id}, expected {other.model_id}" in err


def test_the_env_follows_from_the_emulator_and_a_board_needs_one_named(project: Path, capsys) -> None:
    assert main(["verify", str(project), "--emulator", "native", "--no-bench"]) == 0
    assert "on native via emulator native" in capsys.readouterr().out
    assert main(["verify", str(project), "--port", "/dev/ttyS0"]) == 1
    assert "name the board's env with -e" in capsys.readouterr().err


def test_verify_argument_errors(project: Path, capsys) -> None:
    assert main(["verify", str(project), "-e", "native", "--port", "/dev/ttyS0"]) == 1
    assert "use --emulator native" in capsys.readouterr().err
    assert main(["verify", str(project), "-e", "uno", "--emulator", "native"]) == 1
    assert "the native emulator runs the native env, not 'uno'" in capsys.readouterr().err


@pytest.mark.parametrize("emulator", ["simavr", "qemu"])
def test_verify_the_uno_firmware_in_an_emulator(project: Path, emulator: str, tmp_path: Path, capsys,
                                                avr_toolchain) -> None:
    from conftest import require_programs

    require_programs({"simavr": "simavr", "qemu": "qemu-system-avr"}[emulator],
                     install="apt-get install simavr libsimavr-dev qemu-system-misc")
    report = tmp_path / "report.json"
    assert main(["verify", str(project), "-e", "uno", "--emulator", emulator, "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["passed"] and doc["target"] == "uno" and doc["device"]["target"] == "uno"
    assert doc["bit_exact"]["predict"] == 1.0 and doc["bit_exact"]["log_joint"] == 1.0
    if emulator == "simavr":  # exact cycle counts on the ATmega328P
        assert doc["clock_unit"] == "cycles" and 1_000 < doc["cycles"]["predict"] < 100_000
    else:
        assert doc["cycles"] == {}


def test_the_overall_timeout_stops_a_run_and_reaps_the_emulator(project: Path, capsys, avr_toolchain) -> None:
    import subprocess as sp

    from conftest import require_programs

    require_programs("simavr", install="apt-get install simavr libsimavr-dev")
    assert main(["build", str(project), "-e", "uno"]) == 0  # the build is not what times out
    capsys.readouterr()
    assert main(["verify", str(project), "-e", "uno", "--emulator", "simavr", "--timeout", "0.5"]) == 1
    assert "did not finish within 0.5 s" in capsys.readouterr().err
    mine = sp.run(["pgrep", "-P", str(os.getpid()), "-f", "simavr_bridge"], capture_output=True)
    assert mine.returncode == 1, mine.stdout  # no emulator of ours left running
