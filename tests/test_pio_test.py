"""`pio test` on an exported project with the offline core: tinygmm's runner reports each check as a
PlatformIO test case, natively and for the Uno in simavr, in PlatformIO's summary and JUnit file, and
a stale firmware fails a test case."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import fit_demo_model, require
from tinygmm.data import demo_data
from tinygmm.project.build import SIMAVR_HEADER
from tinygmm.project.export import export_project
from tinygmm.project.pio import run_pio
from tinygmm.verify.compare import CHECK_NAMES
from tinygmm.verify.session import LINK_CHECK
from test_pio_offline import NO_NETWORK


@pytest.fixture(scope="module")
def project(tmp_path_factory, pio_core) -> Path:
    p = tmp_path_factory.mktemp("piotest") / "p"
    export_project(fit_demo_model(3, 0), ["uno"], p, X_train=demo_data()[0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLATFORMIO_CORE_DIR", str(pio_core.core_dir))
        mp.delenv("TINYGMM_PIO_CORE", raising=False)  # the runner builds with the core PlatformIO runs with
        for key, value in NO_NETWORK.items():
            mp.setenv(key, value)
        yield p


def _pio_test(project: Path, *args: str) -> tuple[int, str, ET.Element]:
    junit = project / "junit.xml"
    junit.unlink(missing_ok=True)
    result = run_pio(["test", *args, "--junit-output-path", str(junit)], project, echo=io.StringIO(), check=False)
    return result.returncode, result.output, ET.parse(junit).getroot()


def _cases(root: ET.Element, env: str) -> dict[str, ET.Element]:
    suite = next(s for s in root.iter("testsuite") if s.get("name", "").startswith(f"{env}:"))
    return {c.get("name"): c for c in suite.iter("testcase")}


def _expected_names(model_id: str, board: str) -> set[str]:
    return {f"device: runs model {model_id} (built for {board})", *CHECK_NAMES, LINK_CHECK}


def test_pio_test_native_and_uno_in_simavr_report_every_check(project: Path, avr_toolchain) -> None:
    model_id = fit_demo_model(3, 0).model_id
    n = len(_expected_names(model_id, "native"))
    code, out, junit = _pio_test(project, "-e", "native")
    assert code == 0, out
    assert f"{n} test cases: {n} succeeded" in out and "native" in out
    cases = _cases(junit, "native")
    assert set(cases) == _expected_names(model_id, "native")
    assert all(c.find("failure") is None and c.find("error") is None for c in cases.values())
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install simavr libsimavr-dev")
    code, out, junit = _pio_test(project, "-e", "uno", "--test-port", "simavr")
    assert code == 0, out
    assert f"{n} test cases: {n} succeeded" in out and "Processing * in uno environment" in out
    assert set(_cases(junit, "uno")) == _expected_names(model_id, "uno")
    assert junit.get("failures") == "0" and junit.get("errors") == "0"


def test_stale_firmware_fails_a_test_case(project: Path) -> None:
    """Re-exported for another model but not rebuilt (--without-building): the device runs the old model."""
    old, new = fit_demo_model(3, 0), fit_demo_model(4, 1)
    run_pio(["run", "-e", "native"], project, echo=io.StringIO())  # the old model's firmware is there
    export_project(new, ["uno"], project, X_train=demo_data()[0])
    code, out, junit = _pio_test(project, "-e", "native", "--without-building")
    assert code != 0
    assert "1 test cases: 1 failed" in out
    case = _cases(junit, "native")[f"device: runs model {new.model_id} (built for native)"]
    failure = case.find("failure")
    assert failure is not None and old.model_id in (failure.get("message", "") + (failure.text or ""))
    assert junit.get("failures") == "1"
