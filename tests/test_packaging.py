"""The wheel carries the firmware, the templates, the packages, the suite and the entry points, and not the
development programs of firmware/dev."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return zipfile.ZipFile(next(out.glob("tinygmm-*.whl")))


def test_wheel_ships_every_source_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    tracked = subprocess.run(["git", "ls-files", "firmware", "templates", "host/tinygmm"], cwd=REPO,
                             capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    for path in tracked:
        if path.startswith("firmware/dev/"):
            assert "tinygmm/firmware/" + path[len("firmware/"):] not in names, f"{path} (development only) is in the wheel"
            continue
        if path.startswith("firmware/"):
            want = "tinygmm/firmware/" + path[len("firmware/"):]
        elif path.startswith("templates/"):
            want = "tinygmm/templates/" + path[len("templates/"):]
        else:
            want = path[len("host/"):]
        assert want in names, f"{path} is not in the wheel"


def test_wheel_declares_the_cli_and_the_pytest_plugin(wheel: zipfile.ZipFile) -> None:
    entry = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(entry).decode()
    assert "tinygmm = tinygmm.cli:main" in text
    assert "[pytest11]" in text and "tinygmm = tinygmm.pytest_plugin" in text
