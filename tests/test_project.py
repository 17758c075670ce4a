"""`tinygmm export`: the PlatformIO project, its manifest, and real builds through the offline core."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import fit_demo_model, require_programs
from tinygmm.device.fold import fold
from tinygmm.project.boards import BOARDS
from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.device.memory import memory_report
from tinygmm.model import Model, load
from tinygmm.project.pio import lint_ini, parse_memory_use, run_pio
from tinygmm.project.export import MANIFEST, MODEL_HEADER, export_project
from tinygmm.resources import firmware_dir
from tinygmm.verify.vectors import KINDS, load_vectors

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "shims"


@pytest.fixture(scope="module")
def model() -> Model:
    return fit_demo_model()


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return demo_data()[0]


def test_export_writes_a_complete_project(tmp_path: Path, model: Model, train: np.ndarray) -> None:
    result = export_project(model, ["uno", "esp32dev"], tmp_path / "p", X_train=train)
    p = tmp_path / "p"
    manifest = json.loads((p / MANIFEST).read_text())
    assert manifest["model_id"] == model.model_id and manifest["boards"] == ["uno", "esp32dev"]
    assert set(manifest["files"]) == set(result.written)
    for rel in ("platformio.ini", MODEL_HEADER.as_posix(), "model.json", "test_vectors.json", "README.md",
                "lib/tinygmm/tinygmm.h", "src/native/main.c", "src/arduino/main.cpp"):
        assert (p / rel).is_file(), rel
    # firmware copied byte for byte
    assert (p / "lib/tinygmm/tinygmm.h").read_bytes() == (firmware_dir() / "lib/tinygmm/tinygmm.h").read_bytes()
    assert load(p / "model.json").model_id == model.model_id
    assert model.model_id in (p / MODEL_HEADER).read_text()
    ini = (p / "platformio.ini").read_text()
    assert lint_ini(p / "platformio.ini") == []
    assert "default_envs = native" in ini and "-ffp-contract=off" in ini
    assert "upload_port" not in ini
    speeds = {line.split("=")[0].strip(): line.split("=")[1].strip() for line in ini.splitlines()
              if line.startswith(("monitor_speed", "test_speed"))}
    assert speeds["monitor_speed"] == speeds["test_speed"]
    for b in ("uno", "esp32dev"):
        assert f"platform = {BOARDS[b].platform}" in ini and "@" in BOARDS[b].platform  # pinned
    vec = load_vectors(p / "test_vectors.json")
    assert vec.model_id == model.model_id and set(vec.kinds) == set(KINDS)
    assert any("flash" in line for line in result.memory)


def test_reexport_rewrites_only_generated_files(tmp_path: Path, model: Model) -> None:
    p = tmp_path / "p"
    export_project(model, ["uno"], p)
    (p / "src" / "mine.c").write_text("int mine;\n")  # a user's own file
    (p / "notes.txt").write_text("keep me\n")
    again = export_project(model, ["uno"], p)
    assert again.written == [] and (p / "notes.txt").read_text() == "keep me\n"
    assert (p / "src" / "mine.c").read_text() == "int mine;\n"


def test_reexport_refuses_to_clobber_edits_and_foreign_files(tmp_path: Path, model: Model) -> None:
    p = tmp_path / "p"
    export_project(model, ["uno"], p)
    (p / "platformio.ini").write_text((p / "platformio.ini").read_text() + "\n; my change\n")
    other = Model(model.covariance_type, model.weights, model.means * 1.01, model.covariances, model.scaler,
                  model.feature_names, model.anomaly_threshold, model.metadata)
    with pytest.raises(TinyGMMError, match=r"platformio.ini \(edited since the last export\)"):
        export_project(other, ["uno"], p)
    assert "; my change" in (p / "platformio.ini").read_text()
    result = export_project(other, ["uno"], p, force=True)
    assert "platformio.ini" in result.written and other.model_id in (p / MODEL_HEADER).read_text()

    q = tmp_path / "q"
    (q / "src" / "native").mkdir(parents=True)
    (q / "src" / "native" / "main.c").write_text("/* someone else's */\n")
    with pytest.raises(TinyGMMError, match=r"src/native/main.c \(not written by tinygmm\)"):
        export_project(model, ["uno"], q)
    assert (q / "src" / "native" / "main.c").read_text() == "/* someone else's */\n"


def test_dropping_a_board_removes_nothing_but_stale_generated_files(tmp_path: Path, model: Model) -> None:
    p = tmp_path / "p"
    export_project(model, ["uno", "esp32dev"], p)
    result = export_project(model, ["uno"], p)
    assert "[env:esp32dev]" not in (p / "platformio.ini").read_text()
    assert result.removed == []  # every file is still generated; only the ini changed
    assert "platformio.ini" in result.written


def test_a_model_too_big_for_the_uno_is_refused(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    K, D = 64, 16  # 64 * (16 + 136 + 1) floats = 39 KB of parameters: more than the Uno's flash
    A = rng.normal(size=(K, D, D))
    cov = A @ np.swapaxes(A, 1, 2) + D * np.eye(D)
    big = Model("full", np.full(K, 1.0 / K), rng.normal(size=(K, D)), cov, None,
                [f"f{i}" for i in range(D)], None, {})
    with pytest.raises(TinyGMMError, match=r"does not fit.*bytes of (flash|RAM).*uno has \d+"):
        export_project(big, ["uno"], tmp_path / "big")
    assert not (tmp_path / "big").exists()
    export_project(big, ["esp32dev"], tmp_path / "big")  # the ESP32 has room


def test_exported_project_builds_native_and_uno(tmp_path: Path, model: Model, train: np.ndarray, pio_core,
                                                avr_toolchain) -> None:
    p = tmp_path / "p"
    export_project(model, ["uno", "esp32dev"], p, X_train=train)
    out = io.StringIO()
    run_pio(["run", "-e", "native"], p, pio_core.core_dir, echo=out)
    program = p / ".pio" / "build" / "native" / "program"
    assert program.is_file()
    hello = subprocess.run([str(program)], input="", capture_output=True, text=True, timeout=20)
    assert model.model_id in hello.stdout  # the boot banner names the model
    res = run_pio(["run", "-e", "uno"], p, pio_core.core_dir, echo=out)
    assert (p / ".pio" / "build" / "uno" / "firmware.hex").is_file()
    use = parse_memory_use(res.output)
    assert use is not None
    print(f"\nuno build: flash {use.flash} of {use.flash_max} B, RAM {use.ram} of {use.ram_max} B")
    assert use.flash_max == BOARDS["uno"].flash and use.ram_max == BOARDS["uno"].ram
    assert use.flash <= BOARDS["uno"].flash and use.ram <= BOARDS["uno"].ram
    # the estimate export refuses by stays close to what the build really takes
    estimate = memory_report(fold(model), "uno", firmware=True)
    assert abs(estimate.flash - use.flash) <= 0.1 * use.flash, (estimate.flash, use.flash)
    assert estimate.ram >= use.ram


def test_esp32_glue_compiles_for_the_host_with_an_arduino_shim(tmp_path: Path, model: Model) -> None:
    """No Xtensa toolchain is reachable here: compile the Arduino glue as C++11 against a shim."""
    require_programs("g++", install="apt-get install g++")
    p = tmp_path / "p"
    export_project(model, ["esp32dev"], p)
    assert lint_ini(p / "platformio.ini") == []
    sources = [p / "src" / "arduino" / "main.cpp", *sorted((p / "lib").rglob("*.c")), *sorted((p / "lib").rglob("*.cpp"))]
    cmd = ["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-DARDUINO=10819", "-DARDUINO_ARCH_ESP32",
           "-DTINYGMM_PROTO", "-DTINYGMM_TARGET=\"esp32dev\"", "-DTINYGMM_BAUD=115200", f"-I{SHIM}", f"-I{p / 'include'}",
           *(f"-I{d}" for d in sorted((p / "lib").iterdir())), "-x", "c++", *map(str, sources),
           str(SHIM / "arduino_shim.cpp"), "-o", str(tmp_path / "esp32_glue")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the shim's Serial is stdin/stdout: the glue boots and prints its banner naming the model
    run = subprocess.run([str(tmp_path / "esp32_glue")], input="", capture_output=True, text=True, timeout=20)
    assert model.model_id in run.stdout and "esp32dev" in run.stdout
