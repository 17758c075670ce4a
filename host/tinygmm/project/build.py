"""Building what runs a project's firmware: `pio run` when the build is stale, uploads, and the
emulator runner (simavr_bridge) compiled on first use.

The PlatformIO core is the user's own (PLATFORMIO_CORE_DIR or ~/.platformio) unless offline is
asked for, or $TINYGMM_PIO_CORE names one: then tinygmm's offline core (offline.py).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from ..errors import TinyGMMError
from ..resources import firmware_dir
from .boards import Board
from .firmware import Firmware
from .offline import CORE_ENV_VAR, cache_dir, provision_offline
from .pio import run_pio

# The simavr runner: its source, how it is compiled, and what it needs.
RUNNER_NAME = "simavr_bridge"
RUNNER_CFLAGS = ("-O2", "-Wall", "-Wextra", "-I/usr/include/simavr")
RUNNER_LIBS = ("-lsimavr", "-lutil")
SIMAVR_HEADER = Path("/usr/include/simavr/sim_avr.h")
SIMAVR_PACKAGES = "simavr libsimavr-dev"
# Where PlatformIO downloads platforms from, and how long a look costs before a build that needs it.
REGISTRY_HOST = "api.registry.platformio.org"
REGISTRY_TIMEOUT = 3.0


def core_dir_for(offline: bool) -> Path | None:
    """tinygmm's offline PlatformIO core when asked for (or when $TINYGMM_PIO_CORE names one), else
    None: PlatformIO's own core."""
    if not offline and not os.environ.get(CORE_ENV_VAR):
        return None
    return provision_offline().core_dir


def check_buildable(board: Board, offline: bool) -> None:
    """Fail at once, naming the board and the reason, when a build cannot happen here: the offline core
    lacks the board's toolchain, or (online) PlatformIO's core lacks the board's platform and its
    registry is out of reach (PlatformIO itself would spend a minute on retries before failing)."""
    if offline or os.environ.get(CORE_ENV_VAR):
        why = board.why_not_buildable()
        if why:
            raise TinyGMMError(f"{board.env} cannot be built offline here: {why}"
                               + ("" if board.toolchain is None else "; or build without --offline where "
                                  "PlatformIO's registry is reachable"))
        return
    if (user_core_dir() / "platforms" / board.platform_name).is_dir() or registry_reachable():
        return
    hint = ("build with tinygmm's offline core: --offline (--tinygmm-offline under pytest)"
            if not board.why_not_buildable() else f"and it cannot be built offline here either: {board.why_not_buildable()}")
    raise TinyGMMError(f"PlatformIO's core ({user_core_dir()}) has no {board.platform_name} platform for {board.env} "
                       f"and its registry ({REGISTRY_HOST}) cannot be reached: {hint}")


def user_core_dir() -> Path:
    """PlatformIO's own core: $PLATFORMIO_CORE_DIR, else ~/.platformio."""
    return Path(os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio").expanduser()


def registry_reachable(timeout: float = REGISTRY_TIMEOUT) -> bool:
    """Whether a TCP connection to PlatformIO's registry opens (its name resolves, its port answers)."""
    try:
        with socket.create_connection((REGISTRY_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_built(fw: Firmware, core_dir: Path | None = None, *, build: bool = True) -> Path:
    """The firmware's build artifact: an export's (re)built with `pio run` when missing or older than
    a source file; a user's project's test build made every time (its normal build shares the build
    folder, so only PlatformIO can tell which objects the test flags change). ``build`` false: what
    was built before, as it is."""
    out = fw.artifact
    if out is None:
        raise TinyGMMError(f"{fw.project} is a model library: it builds no firmware. Verify the PlatformIO project "
                           "that builds your sketch, or a board running your sketch's test build (--port)")
    if not build:
        stale = False
    elif fw.test_flags:
        stale = True
    else:
        files = [p for d in fw.sources if d.is_dir() for p in d.rglob("*") if p.is_file()]
        files += [p for p in fw.sources if p.is_file()]
        newest = max((p.stat().st_mtime for p in files), default=0.0)
        stale = not out.is_file() or out.stat().st_mtime < newest
    if stale:  # stdout keeps the report
        run_pio(["run", "-e", fw.env], fw.project, core_dir, echo=sys.stderr, extra_env=fw.build_env_vars())
    if not out.is_file():
        raise TinyGMMError(f"`pio run -e {fw.env}` made no {out}" if build else f"{out} has not been built")
    return out


def flash(fw: Firmware, port: str, core_dir: Path | None = None, *, build: bool = True) -> str:
    """Upload the firmware (its test build) to the board on ``port`` ('auto' resolves), built first
    unless ``build`` is false (then what was built before); returns the port used."""
    from .ports import resolve_port

    if not fw.board.embedded:
        raise TinyGMMError(f"env {fw.env!r} is not a board; nothing to flash")
    if fw.artifact is None:
        raise TinyGMMError(f"{fw.project} is a model library: flash your sketch's test build with its own tools")
    port = resolve_port(port, fw.board.env)
    targets = ["-t", "upload"] if build else ["-t", "nobuild", "-t", "upload"]
    run_pio(["run", "-e", fw.env, *targets, "--upload-port", port], fw.project, core_dir, extra_env=fw.build_env_vars())
    return port


def runner_source() -> Path:
    return firmware_dir() / "emulator" / f"{RUNNER_NAME}.c"


def simavr_runner(*, rebuild: bool = False, bin_dir: Path | None = None) -> Path:
    """The simavr_bridge executable, compiled on first use (and whenever its source or flags change)."""
    source = runner_source()
    try:
        text = source.read_bytes()
    except OSError as e:
        raise TinyGMMError(f"the simavr runner's source {source} is missing: {e.strerror}") from None
    digest = hashlib.sha256(text + " ".join(RUNNER_CFLAGS + RUNNER_LIBS).encode()).hexdigest()[:16]
    folder = Path(bin_dir) if bin_dir is not None else cache_dir() / "bin"
    exe = folder / f"{RUNNER_NAME}-{digest}"
    if exe.is_file() and os.access(exe, os.X_OK) and not rebuild:
        return exe
    gcc = shutil.which("gcc")
    if gcc is None:
        raise TinyGMMError(f"building the simavr runner needs a C compiler: apt-get install gcc {SIMAVR_PACKAGES}")
    if not SIMAVR_HEADER.is_file():
        raise TinyGMMError(f"simavr is not installed (no {SIMAVR_HEADER}): apt-get install {SIMAVR_PACKAGES}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{exe.name}.{os.getpid()}.tmp"
    cmd = [gcc, *RUNNER_CFLAGS, str(source), "-o", str(tmp), *RUNNER_LIBS]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        out = proc.stderr.strip()
        hint = (f"; apt-get install {SIMAVR_PACKAGES}"
                if re.search(r"simavr/|-lsimavr|-lutil|No such file", out) else "")
        raise TinyGMMError(f"cannot build the simavr runner ({' '.join(cmd)}){hint}:\n{out}")
    os.replace(tmp, exe)
    for old in folder.glob(f"{RUNNER_NAME}-*"):  # builds of older sources
        if old != exe:
            old.unlink(missing_ok=True)
    return exe
