"""Every CPU class in QEMU and every AVR board in simavr: the demo model and a model of each covariance
type, built once per session with the offline PlatformIO core, verified bit for bit against the float32
twin; exact instruction counts; a CPU class is no board (no port, nothing to flash)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require, require_programs
from tinygmm.cli import main
from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.model import Model, Scaler, load
from tinygmm.project.boards import BOARDS, get_board
from tinygmm.project.build import SIMAVR_HEADER
from tinygmm.project.export import export_project
from tinygmm.project.pio import parse_memory_use, run_pio
from tinygmm.resources import firmware_dir
from tinygmm.verify.session import verify_project

CPU_CLASSES = [b.env for b in BOARDS.values() if b.stand_in]
AVR_BOARDS = [b.env for b in BOARDS.values() if b.toolchain is not None and b.platform_name == "atmelavr"]
TARGETS = CPU_CLASSES + AVR_BOARDS
# The demo model is full covariance; all four have D=2, which the hardware-float classes evaluate
# directly (TINYGMM_DIRECT_FEATURES), so "wide" (full, D=5) takes them through the pruning search too.
MODELS = ("demo", "tied", "diag", "spherical", "wide")
# A verify run has a whole-run deadline: a firmware that hangs fails the test instead of the session.
VERIFY_TIMEOUT = 240.0


def require_target(env: str) -> None:
    board = get_board(env)
    missing = board.missing_tools()
    require(not missing, f"the {env} build needs apt-get install " + " ".join(missing))
    emulator = board.emulators[0]
    if emulator.transport == "simavr":
        require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install " + " ".join(emulator.packages))
    else:
        require_programs(str(emulator.options["qemu"]), install="apt-get install " + " ".join(emulator.packages))


def _model(kind: str, demo_project: Path) -> tuple[Model, np.ndarray]:
    X, names = demo_data()
    if kind == "demo":
        return load(demo_project / "model.json"), X
    if kind == "wide":
        from sklearn.datasets import make_blobs

        X, _ = make_blobs(600, n_features=5, centers=4, random_state=0)
        gmm = GaussianMixture(4, covariance_type="full", random_state=0).fit(X)
        return Model.from_gmm(gmm, X_train=X), X
    scaler = Scaler.fit(X)
    gmm = GaussianMixture(3, covariance_type=kind, random_state=0).fit(scaler.transform(X))
    return Model.from_gmm(gmm, scaler=scaler, feature_names=names, X_train=X), X


@pytest.fixture(scope="session")
def cpu_projects(tmp_path_factory, pio_core, demo_project):
    """Projects for each model, exported for every CPU class and AVR board; each built once, on first use,
    with every buildable env in one `pio run`."""
    root = tmp_path_factory.mktemp("cpu")
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            model, X = _model(kind, demo_project)
            project = root / kind
            export_project(model, TARGETS, project, X_train=X)
            envs = [e for e in TARGETS if get_board(e).buildable_here()]
            if envs:
                run_pio(["run", *(a for e in envs for a in ("-e", e))], project, pio_core.core_dir, echo=False)
            built[kind] = project
        return built[kind]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
        yield get


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", MODELS)
def test_every_model_is_bit_exact_on_every_cpu_class_and_avr_board(kind: str, target: str, cpu_projects) -> None:
    require_target(target)
    project = cpu_projects(kind)
    board = get_board(target)
    report = verify_project(project, emulator=board.emulators[0].name, bench=False, timeout=VERIFY_TIMEOUT)
    failed = [f"{c.name}: {c.failures} of {c.checked} ({c.detail})" for c in report.checks if not c.passed]
    assert report.passed, failed
    assert report.target == target and report.device["target"] == target
    # predictions and log-joints equal the float32 twin's bit for bit; score and proba go through the
    # target's own expf/logf and are held to their bounds by the checks above
    assert report.bit_exact["predict"] == 1.0 and report.bit_exact["log_joint"] == 1.0, report.bit_exact
    assert bool(report.scope) == board.stand_in  # a CPU class says what its run proves


def test_a_cpu_class_reports_instructions_and_what_it_proves(cpu_projects, capsys) -> None:
    require_target("cortex-m4f")
    project = cpu_projects("demo")
    assert main(["verify", str(project), "--emulator", "cortex-m4f", "--report", str(project / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "on cortex-m4f via emulator cortex-m4f" in out and "PASS" in out
    assert "instructions, score" in out
    assert "proves: Cortex-M4F class" in out and "not a board's peripherals, Arduino core, serial link or clock" in out
    doc = json.loads((project / "r.json").read_text())
    assert doc["clock_unit"] == "instructions" and doc["cycles"]["predict"] > 100
    assert "nano33ble" in doc["scope"]


def test_a_cpu_class_build_reports_its_size_against_the_machine(cpu_projects, pio_core) -> None:
    """The build's size report is read like the Uno's, and the memory estimate covers what was built."""
    from tinygmm.device.fold import fold
    from tinygmm.device.memory import memory_report

    project = cpu_projects("demo")
    for env in CPU_CLASSES:
        require_target(env)
        result = run_pio(["run", "-e", env], project, pio_core.core_dir, echo=False)
        use = parse_memory_use(result.output)
        assert use is not None and use.flash_max == get_board(env).flash, result.output[-400:]
        estimate = memory_report(fold(load(project / "model.json")), env, firmware=True)
        assert use.flash <= estimate.flash <= 1.5 * use.flash + 4096, (env, use.flash, estimate.flash)


# -- exact instruction counts --------------------------------------------------------------------


@pytest.mark.parametrize("env", CPU_CLASSES)
def test_the_glue_counts_instructions_exactly(env: str, tmp_path: Path) -> None:
    """2000 more nops read as exactly 2000 more instructions (firmware/dev/bare_bench.c, BENCH_CALIBRATE):
    the glue's counter and the emulator's -icount shift agree, whatever the host's speed."""
    from bare_build import build_bare, run_bare

    require_target(env)
    elf = build_bare(env, [firmware_dir() / "dev" / "bare_bench.c"], tmp_path / "calibrate.elf", ["BENCH_CALIBRATE"])
    (line,) = run_bare(env, elf, timeout=30)
    one, three = (int(v) for v in line.split())
    assert three - one == 2000, (one, three)
    assert 1000 <= one < 1100  # the counter's own reading adds a few dozen instructions


# -- a CPU class is no board --------------------------------------------------------------------


def test_a_cpu_class_has_no_port_and_nothing_to_flash(cpu_projects, capsys) -> None:
    project = cpu_projects("demo")
    assert main(["flash", str(project), "-e", "cortex-m4f", "--port", "/dev/null"]) == 1
    assert "cannot flash env 'cortex-m4f'" in capsys.readouterr().err
    with pytest.raises(TinyGMMError, match="runs in QEMU .*--emulator cortex-m4f, not --port"):
        verify_project(project, "cortex-m4f", port="/dev/null")
    with pytest.raises(TinyGMMError, match="runs nano33ble's CPU class: export the project with --board cortex-m4f"):
        verify_project(project, "nano33ble", emulator="cortex-m4f")
