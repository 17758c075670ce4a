"""The repository's own platformio.ini builds firmware/ with a checked-in demo model.

Both generated files must match what tinygmm renders now; regenerate them with
``python tests/test_repo_firmware.py --regenerate`` after changing a template.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INI = REPO / "platformio.ini"
MODEL = REPO / "firmware" / "include" / "demo_model.json"
HEADER = REPO / "firmware" / "include" / "tinygmm_model.h"
DIRS = (("src_dir", "firmware/src"), ("lib_dir", "firmware/lib"), ("include_dir", "firmware/include"))


def rendered() -> dict[Path, str]:
    from tinygmm.project.boards import BOARDS
    from tinygmm.model import load
    from tinygmm.project.export import render_ini
    from tinygmm.device.fold import fold
    from tinygmm.device.render import render_header

    model = load(MODEL)
    return {INI: render_ini(model.model_id, list(BOARDS.values()), DIRS), HEADER: render_header(fold(model))}


def test_generated_files_are_current() -> None:
    for path, text in rendered().items():
        assert path.read_text() == text, f"{path.name} is stale: python tests/test_repo_firmware.py --regenerate"


def test_repo_builds_native_and_uno(pio_core, avr_toolchain) -> None:
    from tinygmm.project.pio import run_pio

    out = io.StringIO()
    run_pio(["run", "-e", "native", "-e", "uno"], REPO, pio_core.core_dir, echo=out)
    assert (REPO / ".pio" / "build" / "native" / "program").is_file()
    assert (REPO / ".pio" / "build" / "uno" / "firmware.elf").is_file()


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
