"""Building what runs a project's firmware: `pio run` when the build is stale, uploads (and what their
failures mean), and for emulation the runner (simavr_bridge) and a board's bootloader, compiled on
first use.

The PlatformIO core is the user's own (PLATFORMIO_CORE_DIR or ~/.platformio) unless offline is
asked for, or $TINYGMM_PIO_CORE names one: then tinygmm's offline core (offline.py).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import TinyGMMError
from ..resources import firmware_dir
from .boards import Board
from .firmware import Firmware
from .offline import CORE_ENV_VAR, cache_dir, provision_offline
from .pio import diagnose, run_pio

# The simavr runner: its source, how it is compiled, and what it needs.
RUNNER_NAME = "simavr_bridge"
RUNNER_CFLAGS = ("-O2", "-Wall", "-Wextra", "-I/usr/include/simavr")
RUNNER_LIBS = ("-lsimavr", "-lutil")
SIMAVR_HEADER = Path("/usr/include/simavr/sim_avr.h")
SIMAVR_PACKAGES = "simavr libsimavr-dev"
# Compiled helpers of other sources are kept this long (seconds): another checkout may be running one.
STALE_BUILD_SECONDS = 86400.0
# Where PlatformIO downloads platforms from, and how long a look costs before a build that needs it.
REGISTRY_HOST = "api.registry.platformio.org"
REGISTRY_TIMEOUT = 3.0


def uses_offline_core(board: Board | None, offline: bool) -> bool:
    """Whether a build goes through tinygmm's offline PlatformIO core: asked for, named by
    $TINYGMM_PIO_CORE, or the board is a CPU class (whose platform only that core has)."""
    return offline or bool(os.environ.get(CORE_ENV_VAR)) or (board is not None and board.stand_in)


def core_dir_for(offline: bool, board: Board | None = None) -> Path | None:
    """tinygmm's offline PlatformIO core when the build uses it (:func:`uses_offline_core`), else
    None: PlatformIO's own core."""
    return provision_offline().core_dir if uses_offline_core(board, offline) else None


def check_buildable(board: Board, offline: bool) -> None:
    """Fail at once, naming the board and the reason, when a build cannot happen here: the offline core
    lacks the board's toolchain, or (online) PlatformIO's core lacks the board's platform and its
    registry is out of reach (PlatformIO itself would spend a minute on retries before failing)."""
    if uses_offline_core(board, offline):
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
    was built before, as it is.

    One build of a project at a time, across processes (pytest-xdist workers running two emulated
    boards of one project would otherwise run two `pio run` in the same .pio folder)."""
    out = fw.artifact
    if out is None:
        raise TinyGMMError(f"{fw.project} is a model library: it builds no firmware. Verify the PlatformIO project "
                           "that builds your sketch, or a board running your sketch's test build (--port)")
    if not build:
        if not out.is_file():
            raise TinyGMMError(f"{out} has not been built")
        return out
    with _project_lock(fw.project):
        if fw.test_flags:
            stale = True
        else:
            files = [p for d in fw.sources if d.is_dir() for p in d.rglob("*") if p.is_file()]
            files += [p for p in fw.sources if p.is_file()]
            newest = max((p.stat().st_mtime for p in files), default=0.0)
            stale = not out.is_file() or out.stat().st_mtime < newest
        if stale:  # stdout keeps the report
            run_pio(["run", "-e", fw.env], fw.project, core_dir, echo=sys.stderr, extra_env=fw.build_env_vars())
    if not out.is_file():
        raise TinyGMMError(f"`pio run -e {fw.env}` made no {out}")
    return out


@contextlib.contextmanager
def _project_lock(project: Path) -> Iterator[None]:
    """An exclusive lock on the project's .tinygmm/build.lock (released when the holder exits, however)."""
    folder = project / ".tinygmm"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "build.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # a read-only project: nothing can be built there anyway, and no one else builds
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def flash(fw: Firmware, port: str, core_dir: Path | None = None, *, build: bool = True) -> str:
    """Upload the firmware (its test build) through the board's bootloader on ``port`` ('auto'
    resolves), built first unless ``build`` is false (then what was built before); returns the port
    used. Failures a user meets are named with what to do (see :func:`upload_failure`)."""
    from ..link.transports import holders
    from .ports import resolve_port

    board = fw.board
    if not board.on_a_port:
        where = f"it runs in QEMU: tinygmm verify DIR --emulator {board.emulators[0].name}" if board.stand_in else \
            "it runs on this computer"
        raise TinyGMMError(f"env {fw.env!r} is not a board; nothing to flash ({where})")
    if fw.artifact is None:
        raise TinyGMMError(f"{fw.project} is a model library: flash your sketch's test build with its own tools")
    port = resolve_port(port, board.env)
    if core_dir is not None and board.toolchain is not None and board.toolchain.missing_uploader():
        raise TinyGMMError(f"flashing the {board.env} needs its uploader: apt-get install "
                           + " ".join(board.toolchain.missing_uploader()))
    others = holders(port)
    if others:
        raise TinyGMMError(f"{port} is busy: " + ", ".join(f"{name} (pid {pid})" for pid, name in others)
                           + " has it open; close that (a serial monitor, a running tinygmm verify, another upload) "
                           "and flash again")
    targets = ["-t", "upload"] if build else ["-t", "nobuild", "-t", "upload"]
    with _project_lock(fw.project) if build else contextlib.nullcontext():  # the build part, as in ensure_built
        result = run_pio(["run", "-e", fw.env, *targets, "--upload-port", port], fw.project, core_dir, check=False,
                         extra_env=fw.build_env_vars())
    if result.returncode != 0:
        raise TinyGMMError(upload_failure(board, port, result.output, env=fw.env))
    return port


# What avrdude says when it gets no answer, when it has started writing, and when it could not open the port.
_NO_ANSWER = re.compile(r"not in sync|programmer is not responding|cannot communicate with device|"
                        r"protocol expects|out of sync", re.I)
_WRITING = re.compile(r"^avrdude.*: writing .*flash", re.I | re.M)
_PORT_BUSY = re.compile(r"(?:cannot|can't|unable to) open (?:port|device).*(?:busy|in use)", re.I)


def upload_failure(board: Board, port: str, output: str, *, env: str | None = None) -> str:
    """What a failed `pio run -e ENV -t upload` means for a user, with what to do (``env``: the
    project's env name, a user's own project's rather than the board's)."""
    env = env or board.env
    boot = board.bootloader
    if "Uploading " not in output:  # the build failed (too large, a missing tool): nothing was sent
        return diagnose(output) or f"`pio run -e {env} -t upload` failed before uploading; its output above says why"
    if _PORT_BUSY.search(output):
        return f"{port} is busy (another program has it open exclusively): close that and flash again"
    if _WRITING.search(output) and "bytes of flash verified" not in output:
        return (f"the upload to {port} broke off midway: the {board.env} holds part of the new firmware, but its "
                f"bootloader{' (' + boot.name + ')' if boot else ''} cannot overwrite itself and takes the next "
                "upload after a reset: flash again")
    if _NO_ANSWER.search(output):
        what = f"{boot.name}, {boot.protocol} protocol at {boot.speed} baud" if boot else "its bootloader"
        return (f"the board on {port} never answered its bootloader ({what}): check that it is an "
                f"{board.title} (-e {env}), that its bootloader is there (a board programmed over ISP may have "
                "none), and, if it does not reset itself when the port opens (auto-reset cut or absent), press its "
                "reset button just before flashing")
    return diagnose(output) or f"`pio run -e {env} -t upload` failed; PlatformIO's output above says why"


def runner_source() -> Path:
    return firmware_dir() / "emulator" / f"{RUNNER_NAME}.c"


def simavr_runner(*, rebuild: bool = False, bin_dir: Path | None = None) -> Path:
    """The simavr_bridge executable, compiled on first use (and whenever its source or flags change)."""
    source = runner_source()
    try:
        text = source.read_bytes()
    except OSError as e:
        raise TinyGMMError(f"the simavr runner's source {source} is missing: {e.strerror}") from None

    def compile_runner(out: Path) -> None:
        gcc = shutil.which("gcc")
        if gcc is None:
            raise TinyGMMError(f"building the simavr runner needs a C compiler: apt-get install gcc {SIMAVR_PACKAGES}")
        if not SIMAVR_HEADER.is_file():
            raise TinyGMMError(f"simavr is not installed (no {SIMAVR_HEADER}): apt-get install {SIMAVR_PACKAGES}")
        _run_compiler([gcc, *RUNNER_CFLAGS, str(source), "-o", str(out), *RUNNER_LIBS], "the simavr runner",
                      SIMAVR_PACKAGES, r"simavr/|-lsimavr|-lutil|No such file")

    return _cached(RUNNER_NAME, "", text + " ".join(RUNNER_CFLAGS + RUNNER_LIBS).encode(), bin_dir, compile_runner,
                   rebuild=rebuild, usable=lambda exe: os.access(exe, os.X_OK))


def bootloader_image(board: Board, *, bin_dir: Path | None = None) -> Path:
    """The board's bootloader as Intel hex, compiled from its source with avr-gcc on first use (and
    whenever the source or the board entry's flags change); the emulator checks that it fits."""
    boot = board.bootloader
    if boot is None:
        raise TinyGMMError(f"the {board.env} has no bootloader in the board table")
    try:
        text = boot.source.read_bytes()
    except OSError:
        raise TinyGMMError(f"the {board.env}'s bootloader source {boot.source} is missing: "
                           f"apt-get install {boot.package}") from None
    recipe = " ".join((*boot.cflags, *boot.ldflags, *boot.objcopy))

    def compile_bootloader(out: Path) -> None:
        tools = [shutil.which(t) for t in ("avr-gcc", "avr-objcopy")]
        if None in tools:
            raise TinyGMMError(f"building the {board.env}'s bootloader needs avr-gcc: apt-get install gcc-avr "
                               "binutils-avr avr-libc")
        elf = out.with_suffix(".elf")
        try:
            _run_compiler([tools[0], *boot.cflags, f"-I{boot.source.parent}", *boot.ldflags, "-o", str(elf),
                           str(boot.source)], f"the {board.env}'s bootloader", "gcc-avr avr-libc", r"No such file")
            _run_compiler([tools[1], *boot.objcopy, "-O", "ihex", str(elf), str(out)], f"the {board.env}'s bootloader",
                          "binutils-avr", r"No such file")
        finally:
            elf.unlink(missing_ok=True)

    return _cached(f"bootloader-{board.env}", ".hex", text + recipe.encode(), bin_dir, compile_bootloader)


def _run_compiler(cmd: list[str], what: str, packages: str, missing: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        out = proc.stderr.strip()
        hint = f"; apt-get install {packages}" if re.search(missing, out) else ""
        raise TinyGMMError(f"cannot build {what} ({' '.join(cmd)}){hint}:\n{out}")


def _cached(name: str, suffix: str, inputs: bytes, bin_dir: Path | None, make: Callable[[Path], None], *,
            rebuild: bool = False, usable: Callable[[Path], bool] = Path.is_file) -> Path:
    """``bin_dir``/NAME-DIGEST.SUFFIX (default bin_dir: ~/.cache/tinygmm/bin), made by ``make`` when
    missing (written to a temporary name, then renamed: concurrent runs never see half a file).
    Files of other inputs are removed once a day old: a checkout of other sources may be using one."""
    folder = Path(bin_dir) if bin_dir is not None else cache_dir() / "bin"
    out = folder / f"{name}-{hashlib.sha256(inputs).hexdigest()[:16]}{suffix}"
    if usable(out) and not rebuild:
        return out
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{out.stem}.{os.getpid()}.tmp{suffix}"
    try:
        make(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    for old in folder.glob(f"{name}-*{suffix}"):
        with contextlib.suppress(OSError):
            if old != out and time.time() - old.stat().st_mtime > STALE_BUILD_SECONDS:
                old.unlink()
    return out
