"""What a hostile test found, each fixed: a model whose samples all predict one component, a log that
cannot be written, a re-export that fails midway, a failed run with --report, a write the device
never reads, a deeply nested JSON file, and ports that are not what they seem."""
from __future__ import annotations

import json
import os
import pty
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygmm.cli import main
from tinygmm.errors import TinyGMMError
from tinygmm.link import Device, LinkTimeout, PtyTransport, SerialTransport
from tinygmm.model import Model, load
from tinygmm.project import export as export_module
from tinygmm.project.export import MANIFEST, export_project
from tinygmm.verify.vectors import load_vectors


def test_export_of_a_background_model_whose_samples_all_predict_one_component(tmp_path: Path) -> None:
    # a broad background component with a small weight: no sampled pair straddles a boundary
    m = Model("diag", np.array([0.99, 0.01]), np.zeros((2, 2)), np.array([[1.0, 1.0], [4.0, 4.0]]))
    export_project(m, ["uno"], tmp_path / "p")
    vectors = load_vectors(tmp_path / "p" / "test_vectors.json")
    assert "boundary" not in vectors.kinds and "sample" in vectors.kinds


def test_export_of_a_model_fitted_on_identical_rows(tmp_path: Path, capsys) -> None:
    (tmp_path / "same.csv").write_text("a,b\n" + "1.5,2.5\n" * 200)
    assert main(["fit", str(tmp_path / "same.csv"), "-k", "2", "--scale", "none", "-o", str(tmp_path / "m.json")]) == 0
    assert main(["export", str(tmp_path / "m.json"), "-o", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "test_vectors.json").is_file()


def test_a_deeply_nested_model_file_is_an_error_not_a_traceback(tmp_path: Path, capsys) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 2000 + "]" * 2000)
    with pytest.raises(TinyGMMError, match="nested too deeply"):
        load(path)
    assert main(["info", str(path)]) == 1
    assert "nested too deeply" in capsys.readouterr().err


@pytest.fixture
def model(demo_project: Path) -> Model:
    return load(demo_project / "model.json")


def test_a_reexport_that_fails_midway_leaves_the_old_project_whole(tmp_path: Path, model: Model,
                                                                   monkeypatch) -> None:
    project = tmp_path / "p"
    export_project(model, ["uno"], project)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    other = Model(model.covariance_type, model.weights, model.means + 0.5, model.covariances, model.scaler,
                  model.feature_names, model.anomaly_threshold, {})
    real_open = os.fdopen
    calls = {"n": 0}

    def disk_full_on_the_third_file(fd, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real_open(fd, *args, **kwargs)

    monkeypatch.setattr("tinygmm.files.os.fdopen", disk_full_on_the_third_file)
    with pytest.raises(TinyGMMError, match="No space left on device"):
        export_project(other, ["uno"], project)
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert after == before  # all old: no new header beside an old model.json, no temporary files
    monkeypatch.setattr("tinygmm.files.os.fdopen", real_open)
    export_project(other, ["uno"], project)
    assert json.loads((project / MANIFEST).read_text())["model_id"] == other.model_id
    assert load(project / "model.json").model_id == other.model_id
    assert other.model_id in (project / export_module.MODEL_HEADER).read_text()


def test_an_unwritable_log_folder_does_not_hide_the_result(demo_project: Path, tmp_path: Path, capsys) -> None:
    if os.geteuid() == 0:  # root writes anywhere: make the log path a file's child instead
        log = tmp_path / "a-file" / "link.log"
        (tmp_path / "a-file").write_text("")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        log = tmp_path / "ro" / "link.log"
    assert main(["verify", str(demo_project), "--emulator", "native", "--no-bench", "--log", str(log)]) == 0
    captured = capsys.readouterr()
    assert "PASS" in captured.out and "cannot write the link log" in captured.err


def test_stale_firmware_stays_the_error_when_the_log_cannot_be_written(demo_project: Path, tmp_path: Path,
                                                                        model: Model, capsys) -> None:
    stale = tmp_path / "stale"
    shutil.copytree(demo_project, stale, symlinks=True)
    other = Model(model.covariance_type, model.weights, model.means + 0.01, model.covariances, model.scaler,
                  model.feature_names, model.anomaly_threshold, {})
    export_project(other, ["native", "uno", "esp32dev"], stale, force=True)
    (stale / ".pio" / "build" / "native" / "program").touch()  # not rebuilt: still runs the old model
    (tmp_path / "a-file").write_text("")
    assert main(["verify", str(stale), "--emulator", "native", "--log", str(tmp_path / "a-file" / "x.log")]) == 1
    err = capsys.readouterr().err
    assert f"the device runs model {model.model_id}" in err and "cannot write the link log" in err


def test_a_failed_run_still_writes_its_report(demo_project: Path, tmp_path: Path, capsys) -> None:
    report = tmp_path / "report.json"
    assert main(["verify", str(demo_project), "-e", "uno", "--port", "/dev/ttyNOSUCHPORT",
                 "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    assert doc["passed"] is False and "no serial port /dev/ttyNOSUCHPORT" in doc["error"] and doc["format"] == "tinygmm-verify"


def test_vectors_of_another_project_are_named_as_such(demo_project: Path, tmp_path: Path, capsys) -> None:
    project = tmp_path / "p"
    shutil.copytree(demo_project, project, symlinks=True)
    vectors = json.loads((project / "test_vectors.json").read_text())
    vectors["model_id"] = "0123456789abcdef"
    (project / "test_vectors.json").write_text(json.dumps(vectors))
    assert main(["verify", str(project), "--emulator", "native"]) == 1
    assert "holds vectors of model 0123456789abcdef" in capsys.readouterr().err


def test_a_large_raw_write_to_a_device_that_never_reads_times_out() -> None:
    with PtyTransport([sys.executable, "-c", "import time; time.sleep(60)"]) as transport:
        start = time.monotonic()
        with pytest.raises(LinkTimeout, match="write timed out"):
            Device(transport).send_raw(b"x" * 100_000)
        assert time.monotonic() - start < 10


def test_dev_null_is_not_a_serial_port() -> None:
    with pytest.raises(TinyGMMError, match="is not a serial port"):
        SerialTransport("/dev/null")


def test_a_port_another_program_holds_open_is_busy() -> None:
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    reader = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL)  # a plain open, no lock
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                os.path.realpath(f"/proc/{reader.pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{reader.pid}/fd")):
            time.sleep(0.05)
        with pytest.raises(TinyGMMError, match=rf"busy: process {reader.pid} \(cat\) has it open"):
            SerialTransport(path)
    finally:
        reader.kill()
        reader.wait()
        os.close(master)


def _port_that(behaviour: str) -> tuple[int, str, subprocess.Popen]:
    """A pty whose far end echoes every byte, or chatters, like a loopback adapter or another program."""
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    code = {"echo": "import os,sys\nwhile True:\n    d=os.read(0,256)\n    os.write(1,d)",
            "noise": "import os,time\nwhile True:\n    os.write(1,b'temperature=21.5\\r\\n'); time.sleep(0.05)"}[behaviour]
    helper = subprocess.Popen([sys.executable, "-c", code], stdin=master, stdout=master)
    return master, path, helper


@pytest.mark.parametrize("behaviour, message", [
    ("echo", "echoes what it is sent"),
    ("noise", "but no tinygmm reply"),
])
def test_an_echoing_or_noisy_port_is_told_from_a_silent_one(behaviour: str, message: str) -> None:
    master, path, helper = _port_that(behaviour)
    try:
        with SerialTransport(path) as transport:
            with pytest.raises(LinkTimeout, match=message):
                Device(transport).sync(timeout=1.5)
    finally:
        helper.kill()
        helper.wait()
        os.close(master)


def test_a_silent_port_says_so() -> None:
    master, slave = pty.openpty()
    try:
        with SerialTransport(os.ttyname(slave)) as transport:
            with pytest.raises(LinkTimeout, match="did not answer a ping"):
                Device(transport).sync(timeout=1.0)
    finally:
        os.close(slave)
        os.close(master)


def test_permissions_are_kept_sane(tmp_path: Path, model: Model) -> None:
    export_project(model, ["native"], tmp_path / "p")
    assert stat.S_IMODE((tmp_path / "p" / "model.json").stat().st_mode) == 0o644
