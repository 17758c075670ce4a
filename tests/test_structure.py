"""The shape of the package: one board entry is all a new board needs, link/ is a leaf, modules stay small,
and every board's rendered platformio.ini passes PlatformIO's own lint."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from tinygmm.cli import main
from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.model import Model, Scaler
from tinygmm.project import boards
from tinygmm.project.build import SIMAVR_HEADER
from tinygmm.project.export import export_project, render_ini
from tinygmm.project.pio import lint_ini_text

PACKAGE = Path(__file__).resolve().parents[1] / "host" / "tinygmm"
# What a module may hold before its first lines must say why it is longer.
MODULE_LINE_LIMIT = 500


def test_link_imports_nothing_of_fitting_the_device_model_export_or_build() -> None:
    code = ("import sys, json, tinygmm.link.protocol, tinygmm.link.client, tinygmm.link.emulators; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tinygmm'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    outside = [m for m in loaded if not m.startswith("tinygmm.link")]
    # the package itself, and the leaves every layer shares (errors, atomic files, the core's status codes)
    assert set(outside) <= {"tinygmm", "tinygmm.errors", "tinygmm.files", "tinygmm.status"}, outside


def test_no_module_is_long_without_saying_why() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MODULE_LINE_LIMIT:
            head = "\n".join(lines[:15]).lower()
            assert "longer than" in head or "why it is long" in head, \
                f"{path.relative_to(PACKAGE)} has {len(lines)} lines and does not say why in its first lines"


def test_every_boards_env_passes_platformio_lint() -> None:
    text = render_ini("0123456789abcdef", list(boards.BOARDS.values()))
    assert lint_ini_text(text) == []
    for b in boards.BOARDS.values():
        assert f"[env:{b.env}]" in text


# -- a board added in-process is taken up everywhere -------------------------------------------


@pytest.fixture
def clone(monkeypatch) -> boards.Board:
    """A new board entry, nowhere else in the code: an Uno clone with less flash and its own emulator."""
    uno = boards.BOARDS["uno"]
    emu = dataclasses.replace(uno.emulators[0], name="simavr-clone")
    entry = dataclasses.replace(uno, env="unoclone", title="Uno clone (test)", flash=20480,
                                artifact=".pio/build/unoclone/firmware.elf", emulators=(emu,))
    monkeypatch.setitem(boards.BOARDS, "unoclone", entry)
    return entry


def _demo_model() -> tuple[Model, np.ndarray]:
    X, names = demo_data()
    scaler = Scaler.fit(X)
    gmm = GaussianMixture(3, random_state=0).fit(scaler.transform(X))
    return Model.from_gmm(gmm, scaler=scaler, feature_names=names, X_train=X), X


def test_a_new_board_entry_is_exported_checked_listed_and_linted(clone: boards.Board, tmp_path: Path,
                                                                  capsys) -> None:
    model, X = _demo_model()
    result = export_project(model, ["unoclone"], tmp_path / "p", X_train=X)
    ini = (tmp_path / "p" / "platformio.ini").read_text()
    assert "[env:unoclone]" in ini and lint_ini_text(ini) == []
    assert "target unoclone (estimated)" in result.memory and any("of 20480" in line for line in result.memory)
    # the memory check uses the entry's limits
    rng = np.random.RandomState(0)
    K, D = 32, 8  # 5.8 KB of parameters: the firmware fits the Uno, not the clone
    A = rng.normal(size=(K, D, D))
    big = Model("full", np.full(K, 1.0 / K), rng.normal(size=(K, D)), A @ np.swapaxes(A, 1, 2) + D * np.eye(D))
    export_project(big, ["uno"], tmp_path / "fits-uno")
    with pytest.raises(TinyGMMError, match="does not fit.*unoclone has 20480"):
        export_project(big, ["unoclone"], tmp_path / "big")
    assert main(["boards"]) == 0
    assert any(line.startswith("unoclone ") and "simavr-clone" in line for line in capsys.readouterr().out.splitlines())


def test_a_new_board_entry_builds_and_verifies_in_its_emulator(clone: boards.Board, tmp_path: Path, pio_core,
                                                               avr_toolchain, capsys, monkeypatch) -> None:
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install " + " ".join(clone.emulators[0].packages))
    model, X = _demo_model()
    export_project(model, ["unoclone"], tmp_path / "p", X_train=X)
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    assert main(["build", str(tmp_path / "p"), "-e", "unoclone"]) == 0
    assert (tmp_path / "p" / clone.artifact).is_file()
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "p"), "--emulator", "simavr-clone", "--no-bench"]) == 0
    out = capsys.readouterr().out
    assert "on unoclone via emulator simavr-clone" in out and "PASS" in out
