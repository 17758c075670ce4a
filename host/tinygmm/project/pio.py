"""PlatformIO driver: run `pio` with its output passed through, read its size report, lint platformio.ini.

The offline core tinygmm provisions (PlatformIO with no registry) is offline.py's.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Sequence

from ..errors import TinyGMMError

# How long an interrupted pio gets to end on SIGTERM before it is killed.
PIO_STOP_SECONDS = 5.0

# -- running PlatformIO -------------------------------------------------------------------


def pio_command() -> list[str]:
    """How to start PlatformIO: the `pio` next to this Python, on PATH, or `python -m platformio`."""
    for candidate in (Path(sys.executable).parent / "pio", Path(sys.executable).parent / "platformio"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    for name in ("pio", "platformio"):
        found = shutil.which(name)
        if found:
            return [found]
    if importlib.util.find_spec("platformio") is not None:
        return [sys.executable, "-m", "platformio"]
    raise TinyGMMError("PlatformIO not found: pip install platformio (or install tinygmm with its dependencies)")


@dataclass
class PioResult:
    args: list[str]
    returncode: int
    output: str  # stdout and stderr interleaved, as PlatformIO printed them
    seconds: float


_SMALLER = ("fit a smaller model (fewer components or features; diag or spherical covariance) or choose a board "
            "with more flash")
# Recognised failures in PlatformIO's output -> what to do about them.
_DIAGNOSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Error: (\S+ not found: apt-get install .*)$", re.M), r"\1"),
    (re.compile(r"^Error: (the Arduino AVR core is missing: .*)$", re.M), r"\1"),
    (re.compile(r"HTTPClientError|Could not resolve host|ConnectionError|MaxRetryError|InternetConnectionError"
                r"|UnknownPackageError|Could not find the package", re.I),
     "PlatformIO could not download a package (no network or registry?). Build offline with "
     "`--offline` (`--tinygmm-offline` under pytest): tinygmm's own core builds the boards `tinygmm boards` "
     "marks as building here"),
    (re.compile(r"\b(?:sh: \d+: )?(gcc|g\+\+|cc): (?:not found|command not found)"),
     "no host C/C++ compiler for the native build: apt-get install gcc g++"),
    (re.compile(r"Error: (Please specify `upload_port`|.*[Uu]pload port.*not found.*)"),
     "no board found to upload to: plug it in, or pass --port"),
    (re.compile(r"The program size \((\d+) bytes\) is greater than maximum allowed \((\d+) bytes\)"),
     r"the firmware is \1 bytes, more than the \2 bytes of flash the board has for programs: " + _SMALLER),
    (re.compile(r"region .text' overflowed by (\d+) bytes"),  # larger than the chip's whole flash: the linker says so
     r"the firmware is \1 bytes larger than the board's flash: " + _SMALLER),
]


def diagnose(output: str) -> str | None:
    """A one-line hint for a PlatformIO failure this module recognises, else None."""
    for pattern, hint in _DIAGNOSES:
        m = pattern.search(output)
        if m:
            return m.expand(hint)
    return None


def pio_env(core_dir: Path | str | None = None) -> dict[str, str]:
    """The environment for a `pio` run: the current one, with PLATFORMIO_CORE_DIR if ``core_dir``."""
    env = dict(os.environ)
    if core_dir is not None:
        env["PLATFORMIO_CORE_DIR"] = str(Path(core_dir).resolve())
    return env


def run_pio(args: Sequence[str], project_dir: Path | str | None = None, core_dir: Path | str | None = None, *,
            echo: IO[str] | None | bool = True, check: bool = True, extra_env: dict[str, str] | None = None
            ) -> PioResult:
    """Run ``pio ARGS`` in ``project_dir`` and pass its output through whole (to ``echo``: stdout by default).

    With ``check``, a failure raises TinyGMMError saying what to install or do when the cause is
    recognised (a missing toolchain, PlatformIO or network); the output itself was already shown
    on stdout, or else is included in the message.
    """
    stream: IO[str] | None = sys.stdout if echo is True else (None if echo is False else echo)
    env = pio_env(core_dir)
    env.update(extra_env or {})
    if stream is not None and getattr(stream, "isatty", lambda: False)():
        env.setdefault("PLATFORMIO_FORCE_ANSI", "true")
    cmd = [*pio_command(), *args]
    start = time.perf_counter()
    try:
        # its own process group, so that an interrupted run (a deadline, Ctrl-C) stops pio with its
        # compilers instead of leaving them writing into .pio after the project's lock is released
        proc = subprocess.Popen(cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                start_new_session=True)
    except FileNotFoundError:
        raise TinyGMMError("PlatformIO not found: pip install platformio") from None
    chunks: list[str] = []
    assert proc.stdout is not None
    with proc:
        try:
            for line in proc.stdout:
                chunks.append(line)
                if stream is not None:
                    stream.write(line)
                    stream.flush()
        except BaseException:
            _stop_group(proc)
            raise
    result = PioResult(list(args), proc.returncode, "".join(chunks), time.perf_counter() - start)
    if check and result.returncode != 0:
        hint = diagnose(result.output)
        message = f"`pio {' '.join(args)}` failed (exit status {result.returncode})"
        message += f": {hint}" if hint else ""
        if stream is None:  # not shown to the user yet
            message += "\nPlatformIO's output:\n" + result.output.rstrip()
        elif not hint:
            message += "; PlatformIO's output above says why"
        raise TinyGMMError(message)
    return result


def _stop_group(proc: subprocess.Popen) -> None:
    """End pio and everything it started (SIGTERM, then SIGKILL after PIO_STOP_SECONDS)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(PIO_STOP_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class MemoryUse:
    """Flash and RAM of a build as PlatformIO's size check reports them (bytes)."""

    flash: int
    flash_max: int
    ram: int | None
    ram_max: int | None


_USE_LINE = re.compile(r"^(RAM|Flash):\s.*\(used (\d+) bytes from (\d+) bytes\)", re.M)


def parse_memory_use(output: str) -> MemoryUse | None:
    """The last 'RAM: ... (used N bytes from M bytes)' / 'Flash: ...' pair in `pio run` output."""
    found: dict[str, tuple[int, int]] = {}
    for kind, used, total in _USE_LINE.findall(output):
        found[kind] = (int(used), int(total))
    if "Flash" not in found:
        return None
    ram = found.get("RAM")
    return MemoryUse(found["Flash"][0], found["Flash"][1], ram[0] if ram else None, ram[1] if ram else None)


# -- linting platformio.ini ---------------------------------------------------------------


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Work in ``folder``: PlatformIO resolves ${platformio.*_dir} against the current directory."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def lint_ini(path: Path | str, shown_as: str | None = None) -> list[str]:
    """Check a platformio.ini with PlatformIO's own linter and option schema.

    Raises TinyGMMError naming every bad value (``monitor_speed = fast``), parse error and unknown
    option name (PlatformIO itself only warns about those); returns PlatformIO's other warnings.
    ``shown_as`` names the file in messages (default: its path).
    """
    from platformio.project.config import ProjectConfig
    from platformio.project.options import get_config_options_schema

    path = Path(path).resolve()
    if not path.is_file():
        raise TinyGMMError(f"{path}: no such file")
    ProjectConfig._instances.pop(str(path), None)  # its cache is keyed by mtime, too coarse for us
    with inside(path.parent):
        result = ProjectConfig.lint(str(path))
        problems = []
        for err in result["errors"]:
            where = f" (line {err['lineno']})" if err.get("lineno") else ""
            problems.append(f"{err['message']}{where}")
        known = {(opt["scope"], opt["name"]) for opt in get_config_options_schema()}
        if not result["errors"]:
            parser = ProjectConfig(str(path))._parser  # the options as written, without [env] inherited
            for section in parser.sections():
                scope = ProjectConfig.get_section_scope(section)
                if scope not in ("platformio", "env"):
                    continue  # user sections such as [common] may hold anything
                for option in parser.options(section):
                    custom = scope == "env" and option.startswith(ProjectConfig.CUSTOM_OPTION_PREFIXES)
                    if (scope, option) not in known and not custom:
                        problems.append(f"unknown option `{option}` in [{section}]")
    warnings = [w for w in result["warnings"] if not w.startswith("Ignore unknown configuration option")]
    if problems:
        shown = shown_as or str(path)
        raise TinyGMMError(f"{shown} is not valid:\n  " + "\n  ".join(p.replace(str(path), shown) for p in problems))
    return warnings


def lint_ini_text(text: str) -> list[str]:
    """lint_ini for an ini not yet written (checked in a scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="tinygmm-ini-") as tmp:
        ini = Path(tmp) / "platformio.ini"
        ini.write_text(text)
        return lint_ini(ini, shown_as="the generated platformio.ini")
