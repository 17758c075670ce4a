"""Open the device of an exported project: a board on a port, the native build, or an emulated Uno.

One function picks the transport, builds the firmware when its build is missing or older than the
project's sources, and returns a synced :class:`Device` whose model id has been checked.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..project.boards import get_board
from ..errors import TinyGMMError
from ..link.client import Device
from ..project.pio import run_pio

EMULATORS = ("native", "simavr", "qemu")
# Which env each emulator runs, and the build artifact it needs.
_EMULATOR_ENV = {"native": "native", "simavr": "uno", "qemu": "uno"}
_ARTIFACT = {"native": Path(".pio/build/native/program"), "uno": Path(".pio/build/uno/firmware.elf")}


@dataclass(frozen=True)
class Target:
    """Where the firmware runs: ``port`` for a board, else ``emulator``."""

    env: str
    port: str | None = None
    emulator: str | None = None
    baud: int = 115200
    reset: bool = False  # pulse DTR after opening (boards that reset on DTR are otherwise left running)

    @property
    def transport_name(self) -> str:
        return f"port {self.port}" if self.port else f"emulator {self.emulator}"

    @property
    def timed(self) -> bool:
        """Whether the device's own clock means something (QEMU's AVR timers are not cycle-accurate)."""
        return self.emulator != "qemu"

    @property
    def link_baud(self) -> int | None:
        """The serial speed that limits the link (None: no UART between host and firmware)."""
        return self.baud if self.port else None


def resolve_env(env: str | None, port: str | None, emulator: str | None) -> str:
    """The env as given, else the one the emulator runs; a board's env must be named."""
    if env:
        return env
    if emulator in _EMULATOR_ENV:
        return _EMULATOR_ENV[emulator]
    raise TinyGMMError("name the board's env with -e (e.g. -e uno): a serial port can hold any board")


def check_target(env: str, port: str | None, emulator: str | None) -> None:
    """TinyGMMError unless exactly one of port/emulator is given and it suits the env."""
    if (port is None) == (emulator is None):
        raise TinyGMMError("say where the firmware runs: --port PORT (a board) or --emulator "
                           + "|".join(EMULATORS))
    if emulator is not None:
        if emulator not in EMULATORS:
            raise TinyGMMError(f"unknown emulator {emulator!r}; one of {', '.join(EMULATORS)}")
        if _EMULATOR_ENV[emulator] != env:
            raise TinyGMMError(f"the {emulator} emulator runs the {_EMULATOR_ENV[emulator]} env, not {env!r}")
    elif env == "native":
        raise TinyGMMError("the native env runs on this computer: use --emulator native, not --port")


def artifact(project: Path, env: str) -> Path:
    if env not in _ARTIFACT:
        raise TinyGMMError(f"no build artifact known for env {env!r} (this machine cannot build it)")
    return project / _ARTIFACT[env]


def ensure_built(project: Path, env: str, core_dir: Path | None = None) -> Path:
    """The env's build artifact, (re)built with `pio run` when missing or older than a source file."""
    out = artifact(project, env)
    sources = [p for d in ("src", "lib", "include") for p in (project / d).rglob("*") if p.is_file()]
    sources.append(project / "platformio.ini")
    newest = max((p.stat().st_mtime for p in sources if p.exists()), default=0.0)
    if not out.is_file() or out.stat().st_mtime < newest:
        run_pio(["run", "-e", env], project, core_dir, echo=sys.stderr)  # stdout keeps the report
    if not out.is_file():
        raise TinyGMMError(f"`pio run -e {env}` made no {out}")
    return out


def open_transport(project: Path, target: Target, core_dir: Path | None = None):
    """The transport to the target (a context manager; closing it reaps any child process)."""
    check_target(target.env, target.port, target.emulator)
    if target.port is not None:
        from ..link.transports import SerialTransport
        from ..project.ports import resolve_port

        return SerialTransport(resolve_port(target.port, target.env), target.baud, reset=target.reset)
    built = ensure_built(project, target.env, core_dir)
    from ..link.emulators import emulator_transport

    return emulator_transport(target.emulator, built)


def flash(project: Path, env: str, port: str, core_dir: Path | None = None) -> str:
    """Upload the env's firmware to the board on ``port`` ('auto' resolves); returns the port used."""
    from ..project.ports import resolve_port

    if not get_board(env).embedded:
        raise TinyGMMError(f"env {env!r} is not a board; nothing to flash")
    port = resolve_port(port, env)
    run_pio(["run", "-e", env, "-t", "upload", "--upload-port", port], project, core_dir)
    return port


def default_core_dir(offline: bool) -> Path | None:
    """tinygmm's offline PlatformIO core when asked for (or when TINYGMM_PIO_CORE names one), else
    None: PlatformIO's own core (PLATFORMIO_CORE_DIR or ~/.platformio)."""
    if not offline and not os.environ.get("TINYGMM_PIO_CORE"):
        return None
    from ..project.pio import provision_offline

    return provision_offline().core_dir


@contextlib.contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Stop the block with a TinyGMMError after ``seconds`` (SIGALRM: main thread only; elsewhere
    the per-request timeouts of the link still apply)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TinyGMMError(f"{what} did not finish within {seconds:g} s; the link log shows how far it got")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


LOG_DIR = Path(".tinygmm") / "logs"


def save_run_log(project: Path, env: str, device: Device, where: Path | None = None) -> Path:
    """Keep the run's timestamped byte log: ``where``, else a new file under the project's .tinygmm/logs."""
    if where is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        where = project / LOG_DIR / f"{stamp}-{env}-{os.getpid()}.log"
        where.parent.mkdir(parents=True, exist_ok=True)
    return device.transcript.save(where)


@contextlib.contextmanager
def open_device(project: Path, target: Target, model_id: str, core_dir: Path | None = None,
                log: Path | None = None, on_log: Callable[[Path], None] | None = None) -> Iterator[Device]:
    """A Device for the target, synced by ping and checked to run ``model_id`` (StaleFirmware
    otherwise). The run's byte log is kept (``log``, else under the project) even when syncing
    fails, and its path handed to ``on_log``; the transport is closed, any child reaped."""
    with open_transport(project, target, core_dir) as transport:
        dev = Device(transport)
        try:
            dev.sync()
            dev.expect_model(model_id)
            yield dev
        finally:
            saved = save_run_log(project, target.env, dev, log)
            if on_log is not None:
                on_log(saved)
