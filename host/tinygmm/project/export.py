"""Export a model as a complete PlatformIO project, rewriting only the files tinygmm generated.

A project holds the rendered model header, the firmware sources copied from the package, a
``platformio.ini`` with one env per board, the model file, test vectors, the regression suite, the
`pio test` runner and a README. A re-export rewrites only the files the last one generated
(generated.py keeps the manifest and its rules).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..device.fold import DeviceModel, fold
from ..device.memory import check_fits, memory_report
from ..device.render import render_header
from ..model import Model, model_to_dict
from ..resources import firmware_dir, render_template
from ..verify.vectors import dumps_vectors, make_vectors
from .boards import DEFAULT_BAUD, Board, get_board
from .generated import MANIFEST, ExportResult, write_generated  # noqa: F401 (MANIFEST: where callers look for it)

MODEL_HEADER = Path("include") / "tinygmm_model.h"
# Firmware folders every project carries, relative to firmware/ (and to the project).
FIRMWARE_TREES = ("lib/tinygmm", "lib/tinygmm_proto", "lib/tinygmm_serial", "src")
# The regression suite every project carries (run by pytest with tinygmm's plugin).
SUITE = Path(__file__).resolve().parents[1] / "hil" / "test_device.py"
# Where PlatformIO looks for the custom test runner that `pio test` uses.
TEST_RUNNER = "test/test_custom_runner.py"


def render_test_runner() -> str:
    """test/test_custom_runner.py: `pio test` runs tinygmm's verification (tinygmm.pio_test)."""
    return render_template("test_custom_runner.py.j2", tool_version=__version__)


# The library name the project README's example commands use.
OWN_LIBRARY_NAME = "my_model"


def own_firmware_context(model: Model, name: str, library: str) -> dict:
    """What templates/own_firmware.md.j2 (a README's "use it in your own firmware") needs."""
    return dict(library_name=name, name=name, macro=name.upper(), header=f"{name}.h", library=library,
                features=", ".join(model.feature_names), has_threshold=model.anomaly_threshold is not None,
                baud=DEFAULT_BAUD)


def _board_context(b: Board) -> dict:
    return dict(env=b.env, title=b.title, platform=b.platform, board=b.board, framework=b.framework,
                flash=b.flash, ram=b.ram, embedded=b.embedded, on_a_port=b.on_a_port, src=b.glue,
                flags=list(b.build_flags),
                emulators=[{"name": e.name} for e in b.emulators])


def render_ini(model_id: str, boards: Sequence[Board], dirs: Sequence[tuple[str, str]] = (),
               baud: int = DEFAULT_BAUD) -> str:
    """platformio.ini: one env per board (native always first and default). PlatformIO's lint of
    every board's env is a test (tests/test_pio_offline.py), not a step of each export."""
    ordered = [get_board("native")] + [b for b in boards if b.env != "native"]
    return render_template("platformio.ini.j2", tool_version=__version__, model_id=model_id, dirs=list(dirs),
                           baud=baud, boards=[_board_context(b) for b in ordered])


def memory_lines(dev: DeviceModel, boards: Sequence[Board]) -> list[str]:
    """The estimated flash/RAM of the whole firmware on each embedded board; refuses, naming bytes
    needed and available, a board the model does not fit."""
    reports = [memory_report(dev, b.env, firmware=True) for b in boards if b.embedded]
    for report in reports:
        check_fits(report)
    return [line for report in reports for line in report.lines()]


def project_files(dev: DeviceModel, boards: Sequence[Board], X_train: np.ndarray | None = None,
                  seed: int = 0, memory: list[str] | None = None) -> dict[str, bytes]:
    """Every generated file of the project for the folded model: relative path -> content."""
    model = dev.source
    files: dict[str, bytes] = {}
    fw = firmware_dir()
    glues = {b.glue for b in (get_board("native"), *boards)}  # src/: only the glue folders its envs build
    for tree in FIRMWARE_TREES:
        for src in sorted((fw / tree).rglob("*")):
            rel = src.relative_to(fw)
            if src.is_file() and "__pycache__" not in src.parts and not (tree == "src" and rel.parts[1] not in glues):
                files[rel.as_posix()] = src.read_bytes()
    files["hil/test_device.py"] = SUITE.read_bytes()
    files[TEST_RUNNER] = render_test_runner().encode()
    files[MODEL_HEADER.as_posix()] = render_header(dev).encode()
    files["platformio.ini"] = render_ini(model.model_id, boards).encode()
    files["model.json"] = (json.dumps(model_to_dict(model), indent=1) + "\n").encode()
    files["test_vectors.json"] = dumps_vectors(make_vectors(model, X_train, seed=seed)).encode()
    memory = memory_lines(dev, boards) if memory is None else memory
    files["README.md"] = render_template("project_README.md.j2",
        title=f"tinygmm model {model.model_id}", tool_version=__version__, model_id=model.model_id,
        n_components=model.n_components, covariance_type=model.covariance_type,
        boards=[_board_context(b) for b in boards], memory=memory,
        offline_envs=list(dict.fromkeys(b.env for b in [get_board("native"), *boards] if b.toolchain is not None)),
        emulators="|".join(dict.fromkeys(e.name for b in [get_board("native"), *boards] for e in b.emulators)),
        **own_firmware_context(model, OWN_LIBRARY_NAME, f"/path/to/your/project/lib/{OWN_LIBRARY_NAME}")).encode()
    return files


def export_project(model: Model, board_names: Sequence[str], project: str | os.PathLike,
                   X_train: np.ndarray | None = None, force: bool = False, seed: int = 0) -> ExportResult:
    """Write (or refresh) the PlatformIO project for ``model`` and the named boards.

    Refuses, naming bytes needed and available, when the model does not fit a board.
    """
    boards = [get_board(n) for n in dict.fromkeys(board_names)]
    dev = fold(model)  # once: the header, the memory check and the README all use it
    memory = memory_lines(dev, boards)
    files = project_files(dev, boards, X_train, seed, memory)
    result = write_generated(Path(project), files, {"model_id": model.model_id, "boards": [b.env for b in boards]},
                             force=force, kind="project")
    result.memory = memory
    return result
