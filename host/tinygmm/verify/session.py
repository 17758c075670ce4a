"""One verify session, shared by `tinygmm verify`, the pytest plugin and `pio test` (pio_test.py): resolve
the target, build the firmware when stale, open and sync the device, send every test vector, compare,
report. The project is an export or a user's own project using a model library (project/firmware.py).

:class:`VerifySession` reads the project and checks the target once; :meth:`VerifySession.flash`
uploads the firmware (to a board on a port, or into the emulated board it starts and keeps for the
session); :meth:`VerifySession.device` opens a synced :class:`Device` whose model id has been
checked (the run's byte log is kept even when that fails); :meth:`VerifySession.run` sends the
vectors and returns the VerifyReport; :meth:`VerifySession.close` stops an emulated board.
The model is folded once per session and the reference computed once per run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..device.fold import DeviceModel, fold
from ..errors import TinyGMMError
from ..link.client import Device
from ..model import Model, load
from ..project.boards import BOARDS, Board, Emulator, get_board, get_emulator, run_scope
from ..project.build import bootloader_image, check_buildable, core_dir_for, ensure_built, flash, simavr_runner
from ..project.firmware import MODEL_FILE, VECTORS_FILE, Firmware, read_firmware_project
from ..status import OPS
from .compare import Reference, compare, compare_by_kind
from .report import Check, VerifyReport
from .vectors import Vectors, load_vectors

# Inferences per on-device timing (bench), and how many vectors are timed (median reported).
BENCH_CALLS = 20
BENCH_VECTORS = 5
LOG_DIR = Path(".tinygmm") / "logs"
# The check that the link itself lost nothing: any resend means bytes were lost or corrupted, so
# the throughput and bytes per vector measured are not the link's (a finding, not a silent PASS).
LINK_CHECK = "link: every request answered the first time (no byte lost or corrupted)"
# A UART moves 10 bits per byte (8N1).
UART_BITS_PER_BYTE = 10


@dataclass(frozen=True)
class Target:
    """Where the firmware runs: a board on ``port``, else under ``emulator``."""

    board: Board
    port: str | None = None
    emulator: Emulator | None = None
    baud: int = 0  # the serial speed for a port (0: the board's)
    reset: bool = False  # pulse DTR after opening (boards that reset on DTR are otherwise left running)
    build_env: str = ""  # the PlatformIO env that builds the firmware ("": the board's name, as in an export)

    @property
    def env(self) -> str:
        """The board's name: what the firmware's hello reports as its target."""
        return self.board.env

    @property
    def pio_env(self) -> str:
        return self.build_env or self.board.env

    @property
    def transport_name(self) -> str:
        return f"port {self.port}" if self.port else f"emulator {self.emulator.name}"  # type: ignore[union-attr]

    @property
    def timed(self) -> bool:
        """Whether the device's own clock means something (a board's does; an emulator's if exact)."""
        return self.emulator is None or self.emulator.timed

    @property
    def link_kind(self) -> str:
        """What carries the bytes: a board's serial line, an emulator's UART, or a pseudo-terminal."""
        if self.emulator is None:
            return "serial"
        return "pseudo-terminal" if self.emulator.transport == "pty" else "emulated serial"

    @property
    def link_baud(self) -> int | None:
        """The serial speed that limits the link (None: no UART between host and firmware)."""
        return (self.baud or self.board.baud) if self.port else None


def resolve_target(env: str | None, port: str | None, emulator: str | None, *, baud: int = 0,
                   reset: bool = False, envs: Mapping[str, Board] | None = None) -> Target:
    """The target, checked once: exactly one of port/emulator, an emulator that runs the env's board,
    an env the project has (``envs``: env -> board; None: any board's name); the env defaults to the
    project's one env for the board the emulator runs."""
    if port is not None and emulator is not None:
        raise TinyGMMError("give --port (a board) or --emulator, not both")

    def board_of(name: str) -> Board:
        if envs is None:
            return get_board(name)
        if name not in envs:
            raise TinyGMMError(f"the project has no env {name!r}; it has {', '.join(envs)} "
                               "(add a board with `tinygmm export --board`)")
        return envs[name]

    if port is None and emulator is None:
        if env is None:
            from ..project.boards import emulators

            raise TinyGMMError("say where the firmware runs: -e ENV for a board on the only port that looks like it, "
                               "--port PORT, or --emulator " + "|".join(emulators()))
        board = board_of(env)  # a board is found on its port, as `tinygmm flash` finds it; native runs here
        port, emulator = ("auto", None) if board.on_a_port else (None, board.emulators[0].name)
    emu = None
    if emulator is not None:
        emu, runs = get_emulator(emulator)
        if env is None:
            matching = [e for e, b in envs.items() if b.env == runs.env] if envs is not None else [runs.env]
            if len(matching) != 1:
                raise TinyGMMError(f"the {emulator} emulator runs {runs.env} firmware: name the env with -e "
                                   f"(the project's {runs.env} envs: {', '.join(matching) or 'none'})")
            env = matching[0]
        elif (envs[env].env if envs is not None and env in envs else env) != runs.env:
            claimed = envs[env] if envs is not None and env in envs else BOARDS.get(env)
            hint = ""
            if claimed is not None and claimed.class_emulator == emulator:  # a board of the class it runs
                hint = (f"; it runs {env}'s CPU class: export the project with --board {runs.env} and "
                        f"verify that env (the instruction set, float ABI and compiler, not the board)")
            raise TinyGMMError(f"the {emulator} emulator runs the {runs.env} env, not {env!r}{hint}")
    if env is None:
        raise TinyGMMError("name the board's env with -e (e.g. -e uno): a serial port can hold any board")
    board = board_of(env)
    if port is not None and not board.on_a_port:
        native = ", ".join(e.name for e in board.emulators)
        where = "in QEMU (a CPU class, no board)" if board.stand_in else "on this computer"
        raise TinyGMMError(f"the {env} env runs {where}: use --emulator {native}, not --port")
    return Target(board, port, emu, baud, reset, build_env=env)


def open_transport(fw: Firmware, target: Target, core_dir: Path | None = None, build: bool = True,
                   board: Any = None) -> Any:
    """The transport to the target (a context manager; closing it reaps any child process); an
    emulator runs the firmware built when stale, or (``build`` false) as built before. With ``board``,
    a link to the emulated board the firmware was flashed into (closing it leaves the board)."""
    if board is not None:
        return board.connect()
    if target.port is not None:
        from ..link.transports import SerialTransport
        from ..project.ports import resolve_port

        return SerialTransport(resolve_port(target.port, target.env), target.link_baud or target.board.baud,
                               reset=target.reset)
    assert target.emulator is not None
    return emulator_transport(target.emulator, ensure_built(fw, core_dir, build=build))


def emulated_board(board: Board, emulator: Emulator, **options: Any) -> Any:
    """``board`` emulated with its bootloader and an empty application flash, as it comes from the
    factory; kept across clients until closed (:class:`~tinygmm.link.emulators.SimavrBoard`)."""
    from ..link.emulators import SimavrBoard

    if not emulator.flashable or board.bootloader is None:
        able = [e.name for e in board.emulators if e.flashable and board.bootloader is not None]
        raise TinyGMMError(f"the {emulator.name} emulator loads the firmware itself: it has no bootloader to flash "
                           "through" + (f" (--emulator {able[0]} has)" if able else ""))
    merged = {**emulator.options, **options}
    return SimavrBoard(runner=simavr_runner(), bootloader=bootloader_image(board), boot_address=board.bootloader.address,
                       install_hint=f"apt-get install {' '.join(emulator.packages)}", title=board.env, **merged)


def emulator_transport(emulator: Emulator, program: Path, **options: Any) -> Any:
    """The emulator's transport running ``program`` (the build artifact of its board), with the
    emulator entry's options and ``options`` (limits, throttling) on top."""
    from ..link.emulators import TRANSPORTS

    merged = {**emulator.options, **options}
    if emulator.transport == "simavr":
        merged.setdefault("runner", simavr_runner())
    if emulator.transport != "pty":
        merged.setdefault("install_hint", f"apt-get install {' '.join(emulator.packages)}")
    return TRANSPORTS[emulator.transport](program, **merged)


@contextlib.contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Stop the block with a TinyGMMError after ``seconds`` (SIGALRM: main thread only; elsewhere
    the per-request timeouts of the link still apply)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TinyGMMError(f"{what} did not finish within {seconds:g} s (building, uploading or on the link: "
                           "PlatformIO's output and the link log show how far it got)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def save_run_log(project: Path, env: str, device: Device, where: Path | None = None) -> Path:
    """Keep the run's timestamped byte log: ``where``, else a new file under the project's .tinygmm/logs."""
    if where is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        where = project / LOG_DIR / f"{stamp}-{env}-{os.getpid()}.log"
    return device.transcript.save(where)


@contextlib.contextmanager
def open_device(fw: Firmware, target: Target, model_id: str, core_dir: Path | None = None,
                log: Path | None = None, on_log: Callable[[Path], None] | None = None,
                build: bool = True, board: Any = None, on_open: Callable[[Device], None] | None = None
                ) -> Iterator[Device]:
    """A Device for the target (or the emulated ``board`` it was flashed into), synced by ping and
    checked to run ``model_id`` (StaleFirmware otherwise). The run's byte log is kept (``log``, else
    under the project) even when syncing fails, and its path handed to ``on_log``; the transport is
    closed, any child reaped. ``on_open`` gets the device before it is synced (so that another
    thread can close it: a deadline)."""
    with open_transport(fw, target, core_dir, build, board) as transport:
        dev = Device(transport)
        try:
            if on_open is not None:
                on_open(dev)
            dev.sync()
            dev.expect_model(model_id)
            yield dev
        finally:
            try:
                saved = save_run_log(fw.project, target.pio_env, dev, log)
            except TinyGMMError as e:  # the run's result (or its own error) matters more than its log
                warnings.warn(f"{e}; the run goes on without a byte log (choose one with --log FILE)",
                              stacklevel=2)
            else:
                if on_log is not None:
                    on_log(saved)


def run_suite(dev: Device, folded: DeviceModel, vectors: Vectors, *, target: str = "", transport: str = "",
              bench: bool = True, baud: int | None = None, untimed: str = "no cycle-accurate clock",
              clock_hz: float | None = None, link_kind: str = "serial") -> VerifyReport:
    """Send every test vector through the batch form of each output, compare with the folded model's
    twin and float64 reference, time the device."""
    start = time.perf_counter()
    # a device opened by open_device has said hello already; anyone else's is asked now
    info = dev.info
    if info is None or info.model_id != folded.model_id:
        info = dev.expect_model(folded.model_id)
    before = dataclasses.replace(dev.stats)
    outputs: dict[str, Any] = {}
    rate, per_vector = {}, {}
    for op in OPS:
        sent = dev.transcript.bytes_sent()
        t0 = time.perf_counter()
        res = dev.batch(op, vectors.X)
        elapsed = time.perf_counter() - t0
        outputs[op] = (res.status, res.values)
        rate[op] = len(vectors.X) / elapsed if elapsed > 0 else float("inf")
        per_vector[op] = (dev.transcript.bytes_sent() - sent) / max(len(vectors.X), 1)
    reference = Reference.of(folded, vectors.X)
    checks, figures = compare(folded, vectors, outputs, reference)
    by_kind = compare_by_kind(folded, vectors, outputs, reference)
    lost = dev.stats.since(before)
    checks.append(Check(LINK_CHECK, lost.lines_sent, lost.total(),
                        f"corrupted replies {lost.corrupted_lines}, retried requests {lost.retried_requests}, "
                        f"resent batch lines {lost.resent_lines}: bytes were lost or corrupted on the way"))
    cycles = {}
    if bench and info.clock_unit == "none":  # a user's firmware may give the protocol no clock
        untimed = "no clock in the firmware"
    elif bench:
        sample = vectors.of_kind("sample")[:BENCH_VECTORS]
        for op in ("predict", "score"):
            cycles[op] = float(np.median([dev.bench(op, x, BENCH_CALLS).per_call for x in sample]))
    kinds = {k: vectors.kinds.count(k) for k in dict.fromkeys(vectors.kinds)}
    # a raw payload is 4 bytes per float
    limit = baud / UART_BITS_PER_BYTE / (4 * folded.n_features) if baud else None
    return VerifyReport(model_id=folded.model_id, target=target or info.target, transport=transport,
                        n_vectors=len(vectors.X), kinds=kinds, checks=checks, cycles=cycles,
                        clock_unit=info.clock_unit, vectors_per_second=rate, bytes_per_vector=per_vector,
                        link_limit=limit, device=dict(info.fields), seconds=time.perf_counter() - start,
                        by_kind=by_kind, link=dataclasses.asdict(lost), model=folded.source, clock_hz=clock_hz,
                        untimed="" if cycles else untimed, link_kind=link_kind, **figures)


@dataclass
class VerifySession:
    """A project's firmware and a target, read and checked once; :meth:`flash`, :meth:`device` and
    :meth:`run` do the rest. The emulated board the first :meth:`flash` starts serves every later flash
    and device of the session; :meth:`close` (or the end of a ``with`` block) stops it."""

    firmware: Firmware
    model: Model
    vectors: Vectors
    target: Target
    core_dir: Path | None
    board: Any = None  # the emulated board flash() started (link.emulators.SimavrBoard)
    folded: DeviceModel = field(init=False)

    def __post_init__(self) -> None:
        self.folded = fold(self.model)

    @property
    def project(self) -> Path:
        return self.firmware.project

    @classmethod
    def open(cls, project: str | os.PathLike, env: str | None = None, *, port: str | None = None,
             emulator: str | None = None, baud: int = 0, reset: bool = False, offline: bool = False) -> VerifySession:
        """``project``: an exported project, or a user's own PlatformIO project using a model library
        (project/firmware.py)."""
        found = read_firmware_project(project)
        target = resolve_target(env, port, emulator, baud=baud, reset=reset, envs=found.envs)
        fw = found.firmware(target.pio_env)
        if target.emulator is not None and fw.artifact is None:
            raise TinyGMMError(f"{fw.project} is a model library: it builds no firmware to emulate. Verify the "
                               "PlatformIO project that uses it, or a board running your sketch's test build (--port)")
        if target.emulator is not None:  # a build may be needed (flash checks for itself)
            check_buildable(target.board, offline)
        model = load(fw.model_dir / MODEL_FILE)
        vectors = load_vectors(fw.model_dir / VECTORS_FILE)
        if vectors.model_id != model.model_id or vectors.X.shape[1] != model.n_features:
            raise TinyGMMError(f"{fw.model_dir / VECTORS_FILE} holds vectors of model {vectors.model_id} "
                               f"({vectors.X.shape[1]} features), but the model beside it is {model.model_id} "
                               f"({model.n_features} features): export it again (`tinygmm export`)")
        return cls(fw, model, vectors, target, core_dir_for(offline, target.board))

    def build(self) -> Path:
        """The firmware's build (its test build in a user's project), made when needed."""
        check_buildable(self.target.board, self.core_dir is not None)
        return ensure_built(self.firmware, self.core_dir)

    def flash(self, build: bool = True) -> str:
        """Upload the firmware (its test build in a user's project) through the board's bootloader, built
        first unless ``build`` is false: to the board on the target's port, or into the emulated board
        (started in its bootloader with an empty application flash on the first flash, reset into its
        bootloader before each, as DTR resets a USB Uno). Returns the port."""
        check_buildable(self.target.board, self.core_dir is not None)
        if self.target.port is not None:
            port = flash(self.firmware, self.target.port, self.core_dir, build=build)
            self.target = dataclasses.replace(self.target, port=port)
            return port
        assert self.target.emulator is not None
        if self.board is None:
            # built before the board waits in its bootloader
            ensure_built(self.firmware, self.core_dir, build=build)
            self.board = emulated_board(self.target.board, self.target.emulator)
        self.board.reset()
        return flash(self.firmware, self.board.port, self.core_dir, build=build)

    def device(self, log: Path | None = None, on_log: Callable[[Path], None] | None = None, build: bool = True,
               on_open: Callable[[Device], None] | None = None) -> contextlib.AbstractContextManager[Device]:
        """A synced device checked to run the model: the emulated board the firmware was flashed into,
        or one that runs the firmware built when stale, or (``build`` false) as built before.
        ``on_open``: see :func:`open_device`."""
        return open_device(self.firmware, self.target, self.model.model_id, self.core_dir, log, on_log, build,
                           self.board, on_open)

    def run(self, dev: Device, bench: bool = True) -> VerifyReport:
        target = self.target
        untimed = ("--no-bench" if not bench else
                   f"{target.emulator.name} has no cycle-accurate clock" if target.emulator else "")
        report = run_suite(dev, self.folded, self.vectors, target=target.env, transport=target.transport_name,
                           bench=bench and target.timed, baud=target.link_baud, untimed=untimed,
                           clock_hz=target.board.clock_hz, link_kind=target.link_kind)
        report.scope = run_scope(target.board)
        return report

    def close(self) -> None:
        """Stop the emulated board this session started, if any."""
        if self.board is not None:
            self.board.close()

    def __enter__(self) -> VerifySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify_project(project: str | os.PathLike, env: str | None = None, *, port: str | None = None,
                   emulator: str | None = None, baud: int = 0, flash: bool = False, offline: bool = False,
                   bench: bool = True, log: Path | None = None, reset: bool = False, timeout: float | None = None,
                   on_log: Callable[[Path], None] | None = None) -> VerifyReport:
    """The whole session: build or flash as needed, open, run every vector, return the VerifyReport."""
    with deadline(timeout, f"verifying {project} ({env or emulator})"):
        with VerifySession.open(project, env, port=port, emulator=emulator, baud=baud, reset=reset,
                                offline=offline) as session:
            if flash:
                session.flash()
            with session.device(log, on_log) as dev:
                return session.run(dev, bench)
