"""The pytest plugin, driven the way a team runs it: pytest over an exported project's suite."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tinygmm.project.export import export_project
from tinygmm.model import Model, load
from tinygmm.verify.compare import CHECK_NAMES, VALUE_CHECKS
from tinygmm.verify.vectors import KINDS

# The shipped suite: each check on each kind of vector, plus its three whole-run tests.
SUITE_TESTS = len(CHECK_NAMES) * len(KINDS) + 3


@pytest.fixture
def project(demo_project: Path) -> Path:
    return demo_project


def run(pytester: pytest.Pytester, project: Path, *args: str) -> pytest.RunResult:
    shutil.copytree(project / "hil", pytester.path / "hil")
    return pytester.runpytest_subprocess("hil", "--tinygmm-project", str(project), "-p", "no:cacheprovider", *args)


def test_suite_passes_on_the_native_build_with_junit(pytester, project, tmp_path) -> None:
    junit = tmp_path / "device.xml"
    result = run(pytester, project, "--tinygmm-emulator", "native", f"--junitxml={junit}")
    result.assert_outcomes(passed=SUITE_TESTS)
    result.stdout.fnmatch_lines(["*tinygmm: link log (every byte, timestamped): *.log"])
    logs = sorted((project / ".tinygmm" / "logs").glob("*-native-*.log"))
    assert logs and "batch predict" in logs[-1].read_text()
    xml = junit.read_text()
    predict_id = re.sub(r"[^a-z0-9]+", "-", VALUE_CHECKS["predict"].lower()).strip("-")
    assert f'test_device_agrees_with_host[{predict_id}-far1000]' in xml  # plain words, for -k
    # the figures a team tracks across runs are JUnit properties
    assert '<property name="bit_exact_log_joint" value="1.0000"' in xml
    assert '<property name="link_resent_lines" value="0"' in xml


def test_without_a_device_the_suite_skips_and_says_why(pytester, project) -> None:
    result = run(pytester, project, "-rs")
    result.assert_outcomes(skipped=SUITE_TESTS)
    result.stdout.fnmatch_lines(["*no board or emulator: give --tinygmm-port PORT or --tinygmm-emulator*"])


def test_a_missing_port_skips_naming_it(pytester, project) -> None:
    result = run(pytester, project, "--tinygmm-env", "uno", "--tinygmm-port", "/dev/ttyNOSUCH", "-rs")
    result.assert_outcomes(skipped=SUITE_TESTS)
    result.stdout.fnmatch_lines(["*no serial port /dev/ttyNOSUCH*"])


def test_stale_firmware_is_refused_before_any_comparison(pytester, project, tmp_path) -> None:
    model = load(project / "model.json")
    other = Model(model.covariance_type, model.weights, model.means + 0.01, model.covariances, model.scaler,
                  model.feature_names, model.anomaly_threshold, model.metadata)
    stale = tmp_path / "stale"
    shutil.copytree(project, stale)
    export_project(other, ["native", "uno", "esp32dev"], stale, force=True)
    program = stale / ".pio" / "build" / "native" / "program"
    program.touch()  # newer than the sources: not rebuilt, still runs the old model
    result = run(pytester, stale, "--tinygmm-emulator", "native", "-rs")
    result.assert_outcomes(errors=1, skipped=SUITE_TESTS - 1)  # reported once, not per test
    result.stdout.fnmatch_lines([f"*refusing to compare: the device runs model {model.model_id}, "
                                 f"expected {other.model_id}*"])


def test_a_failing_device_test_carries_the_device_log(pytester, project) -> None:
    pytester.makepyfile(test_mine="""
        def test_hello_says_something_else(tinygmm_device):
            assert tinygmm_device.hello().n_components == 99
    """)
    result = pytester.runpytest_subprocess("--tinygmm-project", str(project), "--tinygmm-emulator", "native",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tinygmm device log*", "*hello*"])


def test_the_suite_flashes_the_emulated_uno_first(pytester, project, pio_core, monkeypatch) -> None:
    """--tinygmm-flash: the upload through avrdude and Optiboot, then the suite on that emulated board."""
    from conftest import require
    from tinygmm.project.boards import BOARDS
    from tinygmm.project.build import SIMAVR_HEADER

    missing = BOARDS["uno"].missing_tools() + BOARDS["uno"].toolchain.missing_uploader()
    require(not missing and SIMAVR_HEADER.is_file(), "flashing the emulated uno needs avr-gcc, avrdude and simavr")
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    result = run(pytester, project, "--tinygmm-emulator", "simavr", "--tinygmm-flash", "--tinygmm-offline", "-s")
    result.assert_outcomes(passed=SUITE_TESTS)
    result.stdout.fnmatch_lines(["*bytes of flash verified*"])
    failed = pytester.runpytest_subprocess("hil", "--tinygmm-project", str(project), "-p", "no:cacheprovider",
                                           "--tinygmm-emulator", "qemu", "--tinygmm-flash", "--tinygmm-offline")
    failed.assert_outcomes(errors=1, skipped=SUITE_TESTS - 1)  # reported once
    failed.stdout.fnmatch_lines(["*the upload failed: the qemu emulator loads the firmware itself*"])
