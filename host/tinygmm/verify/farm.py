"""A board farm: several targets (boards on ports, remote boards through RFC 2217, emulators) verified
at once, one report each, for `tinygmm verify --port A --port B ...` and the pytest plugin.

Each target gets its own :class:`~tinygmm.verify.session.VerifySession`; builds and uploads happen
first, one at a time (PlatformIO builds a project in one place), then every target runs in its own
thread: the work is the link's waiting, so threads overlap it fully.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import TinyGMMError

if TYPE_CHECKING:  # the pytest plugin imports this module in every pytest run: the session loads on use
    from ..link.client import Device
    from .report import VerifyReport
    from .session import VerifySession

# After the deadline, how long a target's thread gets to end: its device is closed at once (one still
# building or starting its emulator ends when that does).
LATE_THREAD_SECONDS = 15.0


@dataclass(frozen=True)
class TargetSpec:
    """One target as given: a port (device path or pyserial URL) or an emulator, and its env."""

    id: str  # short and unique among the targets: a test id, a log name, a row of the summary
    port: str | None = None
    emulator: str | None = None
    env: str | None = None

    @property
    def where(self) -> str:
        return f"port {self.port}" if self.port else f"emulator {self.emulator}"


def _name(port: str | None, emulator: str | None) -> str:
    """'ttyACM0', 'rfc2217-10.0.0.5-4001', 'simavr': plain words for -k and file names."""
    if emulator is not None:
        return emulator
    assert port is not None
    text = re.sub(r"^/dev/", "", port)
    text = re.sub(r"\?.*$", "", text)  # pyserial URL options
    return re.sub(r"[^A-Za-z0-9.]+", "-", text.replace("://", "-")).strip("-") or "port"


def target_specs(ports: Sequence[str], emulators: Sequence[str], env: str | None) -> list[TargetSpec]:
    """Targets from repeated --port and --emulator options, ports first. ``env`` is the env of the
    boards on ports (a port can hold any board); an emulator runs its own env, checked against
    ``env`` only when it is the only target. A name given twice is numbered: simavr-1, simavr-2."""
    given = [(p, None) for p in ports] + [(None, e) for e in emulators]
    names = [_name(p, e) for p, e in given]
    seen: dict[str, int] = {}
    out = []
    for (port, emulator), name in zip(given, names):
        if names.count(name) > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}-{seen[name]}"
        out.append(TargetSpec(name, port, emulator, env if port is not None or len(given) == 1 else None))
    return out


def log_path(project: Path, spec: TargetSpec) -> Path:
    """Where a target's byte log goes: its id in the name, so targets of one env keep their own."""
    from .session import LOG_DIR

    return project / LOG_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.id}.log"


@dataclass
class FarmResult:
    spec: TargetSpec
    report: VerifyReport | None = None
    error: str | None = None  # what stopped the run before a report (no board, a dropped link, ...)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


def open_sessions(project: str | Path, specs: Sequence[TargetSpec], *, baud: int = 0, reset: bool = False,
                  offline: bool = False) -> list[VerifySession | TinyGMMError]:
    """A session per target (or the error that says why it cannot have one), checked in this thread."""
    from .session import VerifySession

    out: list[VerifySession | TinyGMMError] = []
    for spec in specs:
        try:
            out.append(VerifySession.open(project, spec.env, port=spec.port, emulator=spec.emulator, baud=baud,
                                          reset=reset, offline=offline))
        except TinyGMMError as e:
            out.append(e)
    return out


def build_first(sessions: Sequence[VerifySession | TinyGMMError]) -> list[VerifySession | TinyGMMError]:
    """Build each emulated env once, here, before the targets run side by side."""
    from .session import VerifySession

    built: dict[str, TinyGMMError | None] = {}
    out: list[VerifySession | TinyGMMError] = []
    for s in sessions:
        if isinstance(s, VerifySession) and s.target.emulator is not None:
            env = s.firmware.env
            if env not in built:
                try:
                    s.build()
                    built[env] = None
                except TinyGMMError as e:
                    built[env] = e
            error = built[env]
            out.append(error if error is not None else s)
        else:
            out.append(s)
    return out


def verify_farm(project: str | Path, specs: Sequence[TargetSpec], *, baud: int = 0, flash: bool = False,
                offline: bool = False, bench: bool = True, reset: bool = False, timeout: float | None = None,
                on_done: Callable[[FarmResult], None] | None = None) -> list[FarmResult]:
    """Verify every target, side by side; a result per target in the order given (``on_done`` hears
    each as it finishes). ``timeout`` bounds the whole run; a target still running then is an error."""
    from .session import VerifySession, deadline

    project = Path(project)
    results = [FarmResult(spec) for spec in specs]
    what = f"verifying {project} on {len(specs)} targets"
    end = time.monotonic() + timeout if timeout else None
    with deadline(timeout, what), contextlib.ExitStack() as stack:
        sessions = open_sessions(project, specs, baud=baud, reset=reset, offline=offline)
        for s in sessions:  # each stops the emulated board its upload started, at the end
            if isinstance(s, VerifySession):
                stack.callback(s.close)
        sessions = build_first(sessions)
        if flash:  # uploads one at a time: each is a `pio run` in the project
            for i, s in enumerate(sessions):
                if isinstance(s, VerifySession):
                    try:
                        s.flash()
                    except TinyGMMError as e:
                        sessions[i] = e
        if end is not None and time.monotonic() >= end:  # spent building or uploading: no target runs
            for result, s in zip(results, sessions):
                result.error = str(s) if isinstance(s, TinyGMMError) else \
                    f"{what} did not finish within {timeout:g} s: the time went on building and uploading"
                if on_done is not None:
                    on_done(result)
            return results
        lock = threading.Lock()  # guards results, devices, stopped and on_done
        devices: dict[int, Device] = {}
        stopped = False  # the deadline passed: the results are final, a late thread only closes

        # Waited on instead of Thread.join: a join the deadline's signal interrupts marks its thread
        # stopped while it still runs (CPython's bpo-45274 handling), so a second join would not wait.
        finished = {i: threading.Event() for i, s in enumerate(sessions) if isinstance(s, VerifySession)}

        def run(i: int, session: VerifySession) -> None:
            try:
                verify_one(i, session)
            finally:
                finished[i].set()

        def verify_one(i: int, session: VerifySession) -> None:
            result = FarmResult(specs[i], log=log_path(project, specs[i]))
            t0 = time.perf_counter()
            def opened(dev: Device) -> None:
                with lock:
                    if stopped:
                        raise TinyGMMError("the deadline passed")
                    devices[i] = dev

            try:
                with session.device(result.log, build=False, on_open=opened) as dev:  # built first
                    result.report = session.run(dev, bench)
            except TinyGMMError as e:
                result.error = str(e)
            except Exception as e:  # a thread must not die silently: the summary names it  # noqa: BLE001
                result.error = f"{type(e).__name__}: {e}"
            finally:
                with lock:
                    devices.pop(i, None)
            result.seconds = time.perf_counter() - t0
            with lock:
                if stopped:
                    return
                results[i] = result
                if on_done is not None:
                    on_done(result)

        threads = []
        for i, s in enumerate(sessions):
            if isinstance(s, VerifySession):
                threads.append(threading.Thread(target=run, args=(i, s), name=f"tinygmm-{specs[i].id}", daemon=True))
            else:
                results[i].error = str(s)
                if on_done is not None:
                    on_done(results[i])
        for t in threads:
            t.start()
        try:
            for event in finished.values():
                event.wait()
        except TinyGMMError as e:  # the overall deadline: what has not finished is named as such
            with lock:
                stopped = True
                for r in results:
                    if r.report is None and r.error is None:
                        r.error = str(e)
                for dev in devices.values():  # its thread's next read fails and it ends
                    dev.close()
            late = time.monotonic() + LATE_THREAD_SECONDS
            for event in finished.values():
                event.wait(max(0.0, late - time.monotonic()))
    return results


def format_summary(results: Sequence[FarmResult]) -> str:
    """One line per target and the count, as `tinygmm verify` ends a farm run."""
    width = max(len(r.spec.id) for r in results)
    lines = [f"summary: {sum(r.passed for r in results)} of {len(results)} targets passed"]
    for r in results:
        if r.report is not None:
            failed = [c for c in r.report.checks if not c.passed]
            state = "PASS" if r.passed else "FAIL"
            detail = (f"{len(r.report.checks) - len(failed)}/{len(r.report.checks)} checks, "
                      f"{r.report.n_vectors} vectors, {r.seconds:.1f} s")
            if failed:
                detail += "; failed: " + ", ".join(c.name for c in failed[:3])
        else:
            state, detail = "ERROR", (r.error or "").splitlines()[0][:200] if r.error else "did not run"
        lines.append(f"  {state:5} {r.spec.id.ljust(width)}  {r.spec.where}: {detail}")
    return "\n".join(lines)


def save_farm_report(path: str | Path, results: Sequence[FarmResult]) -> Path:
    """`--report` of a farm run: the report header, whether all passed, and each target's report or error."""
    from .report import report_header, write_report

    return write_report(path, {**report_header(), "passed": all(r.passed for r in results),
                               "targets": [{"target": r.spec.id, "where": r.spec.where, "passed": r.passed,
                                            **({"report": r.report.to_json()} if r.report is not None
                                               else {"error": r.error})} for r in results]})
