"""Build and run a bare-metal program for a CPU class the way its PlatformIO env does (development tooling).

The flags come from the class's board manifest in firmware/pio-offline/platforms/tinygmm-qemu, the
build flags of its builder (-Os, sections, --gc-sections) and every project's -ffp-contract=off; the
program runs in the class's emulator (the board table's QEMU entry) and prints lines on the UART.
Used by bench/device_cost.py and tests/test_cpu_classes.py.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Sequence

from tinygmm.errors import TinyGMMError
from tinygmm.link.emulators import QemuTransport
from tinygmm.project.boards import Board, get_board
from tinygmm.project.offline import offline_data_dir
from tinygmm.resources import firmware_dir

# What the tinygmm-qemu builder and the generated platformio.ini add to the manifest's flags.
BUILD_FLAGS = ("-Os", "-ffp-contract=off", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra",
               "-Wdouble-promotion")
LINK_FLAGS = ("-Wl,--gc-sections",)
BARE = firmware_dir() / "src" / "bare"


def manifest(board: Board) -> dict:
    """The ``build`` section of the CPU class's board manifest."""
    path = offline_data_dir() / "platforms" / board.platform_name / "boards" / f"{board.board}.json"
    return json.loads(path.read_text())["build"]


def build_bare(env: str, sources: Sequence[Path], out: Path, defines: Sequence[str] = (),
               includes: Sequence[Path] = (), warnings_fatal: bool = True) -> Path:
    """Compile ``sources`` with the machine files and start-up of src/bare (not its main.c) into ``out``."""
    m = manifest(get_board(env))
    glue = [p for p in sorted(BARE.glob("*.c")) if p.name != "main.c"]
    cmd = [f"{m['toolchain']}-gcc", *m["cpu_flags"], *m["specs"], *m["link_flags"], *BUILD_FLAGS,
           *(["-Werror"] if warnings_fatal else []), m["extra_flags"], *(f"-D{d}" for d in defines),
           f"-I{BARE}", *(f"-I{i}" for i in includes), f"-L{BARE}", "-T", m["ldscript"], *LINK_FLAGS,
           *map(str, glue), *map(str, sources), "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinyGMMError(f"{m['toolchain']}-gcc failed for {env}:\n{proc.stderr.strip()}")
    return out


def run_bare(env: str, elf: Path, timeout: float = 120.0) -> list[str]:
    """The lines ``elf`` prints in the class's emulator, up to its "end" line."""
    emulator = get_board(env).emulators[0]
    data = b""
    deadline = time.monotonic() + timeout
    with QemuTransport(elf, **emulator.options) as transport:
        while not data.endswith(b"end\n") and time.monotonic() < deadline:
            data += transport.read(4096, 0.5)
    lines = data.decode().splitlines()
    if not lines or lines[-1] != "end":
        raise TinyGMMError(f"{elf.name} in {emulator.name} printed no end line within {timeout:g} s: {lines[-3:]}")
    return lines[:-1]
