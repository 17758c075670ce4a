"""PlatformIO driver: run `pio` with its output passed through, lint platformio.ini, and provision
an offline PlatformIO core (native + atmelavr/uno) from PyPI and Debian packages only.

The offline core is an isolated PLATFORMIO_CORE_DIR (never ~/.platformio) holding:

* packages/tool-scons: the `SCons` package from the PyPI wheel scons==4.11.1 and a launcher;
* packages/toolchain-atmelavr: bin/avr-* symlinks to Debian's gcc-avr/binutils-avr;
* packages/framework-arduino-avr: symlinks to Debian's arduino-core-avr;
* platforms native and atmelavr, installed by PlatformIO itself from firmware/pio-offline/.

The atmelavr platform's version is the board table's pin plus "+tinygmm.offline", so an
exported project's `platform = atmelavr @ 5.1.0` resolves to it with no network, and the same
ini fetches the real platform where PlatformIO's registry is reachable.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

from .. import __version__
from .boards import ARDUINO_AVR_DIR, AVR_DEBIAN_PACKAGES, BOARDS
from ..errors import TinyGMMError
from ..resources import firmware_dir

# PlatformIO Core 6.x runs <core>/packages/tool-scons/scons.py and requires tool-scons ~4.41101.0,
# PlatformIO's encoding of SCons 4.11.1 (major 4, then 4.11.01 as 41101).
SCONS_VERSION = "4.11.1"
SCONS_PIO_VERSION = "4.41101.0"
OFFLINE_SUFFIX = "+tinygmm.offline"
STAMP_FILE = "tinygmm-offline.json"
CORE_ENV_VAR = "TINYGMM_PIO_CORE"
AVR_BIN = Path("/usr/bin")
# Linked even when missing, so that installing gcc-avr later needs no re-provisioning.
AVR_TOOLS = ("avr-gcc", "avr-g++", "avr-c++", "avr-cpp", "avr-gcc-ar", "avr-gcc-nm", "avr-gcc-ranlib", "avr-ar",
             "avr-as", "avr-ld", "avr-nm", "avr-objcopy", "avr-objdump", "avr-ranlib", "avr-readelf", "avr-size",
             "avr-strip", "avr-addr2line", "avr-c++filt")
ARDUINO_LINKS = ("cores", "variants", "libraries", "platform.txt", "boards.txt")
AVR_INSTALL_HINT = "apt-get install " + " ".join(AVR_DEBIAN_PACKAGES)
# PlatformIO settings for the provisioning runs: no telemetry, no upgrade checks (no network).
QUIET_PIO_ENV = {"PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no", "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650"}


# -- paths --------------------------------------------------------------------------------


def cache_dir() -> Path:
    """~/.cache/tinygmm (or $XDG_CACHE_HOME/tinygmm): downloads kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinygmm"


def default_core_dir() -> Path:
    """$TINYGMM_PIO_CORE, else ~/.cache/tinygmm/pio-core."""
    env = os.environ.get(CORE_ENV_VAR)
    return Path(env).expanduser() if env else cache_dir() / "pio-core"


def offline_data_dir() -> Path:
    """The shipped platform files (firmware/pio-offline)."""
    return firmware_dir() / "pio-offline"


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


# Recognised failures in PlatformIO's output -> what to do about them.
_DIAGNOSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Error: (\S+ not found: apt-get install .*)$", re.M), r"\1"),
    (re.compile(r"^Error: (the Arduino AVR core is missing: .*)$", re.M), r"\1"),
    (re.compile(r"HTTPClientError|Could not resolve host|ConnectionError|MaxRetryError|InternetConnectionError"
                r"|UnknownPackageError|Could not find the package", re.I),
     "PlatformIO could not download a package (no network or registry?). For offline builds run "
     "`tinygmm pio-offline` and export the PLATFORMIO_CORE_DIR it prints"),
    (re.compile(r"\b(?:sh: \d+: )?(gcc|g\+\+|cc): (?:not found|command not found)"),
     "no host C/C++ compiler for the native build: apt-get install gcc g++"),
    (re.compile(r"Error: (Please specify `upload_port`|.*[Uu]pload port.*not found.*)"),
     "no board found to upload to: plug it in, or pass --port"),
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
        proc = subprocess.Popen(cmd, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
    except FileNotFoundError:
        raise TinyGMMError("PlatformIO not found: pip install platformio") from None
    chunks: list[str] = []
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            chunks.append(line)
            if stream is not None:
                stream.write(line)
                stream.flush()
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
def _inside(folder: Path) -> Iterator[None]:
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
    with _inside(path.parent):
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


# -- offline core -------------------------------------------------------------------------


@dataclass
class Provisioned:
    core_dir: Path
    created: bool  # False: an up-to-date core was already there (nothing done)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def export_line(self) -> str:
        return f"export PLATFORMIO_CORE_DIR={self.core_dir}"


def _missing_avr() -> list[str]:
    return BOARDS["uno"].missing_tools()


def _fingerprint() -> dict:
    """What the core is made from: a different fingerprint means the core is rebuilt."""
    digest = hashlib.sha256()
    data = offline_data_dir()
    for f in sorted(p for p in data.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(f.relative_to(data)).encode() + b"\0" + f.read_bytes() + b"\0")
    return {"tinygmm": __version__, "scons": SCONS_VERSION, "data": digest.hexdigest()[:16],
            "avr_missing": _missing_avr(), "pio": _pio_version()}


def _pio_version() -> str:
    try:
        from platformio import __version__ as v
        return str(v)
    except ImportError:
        return "?"


def _read_stamp(core: Path) -> dict | None:
    try:
        return json.loads((core / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def scons_wheel(cache: Path | None = None) -> Path:
    """The scons==4.11.1 wheel, downloaded once with pip into ~/.cache/tinygmm/wheels."""
    folder = (cache or cache_dir()) / "wheels"
    pattern = f"scons-{SCONS_VERSION}-*.whl"
    found = sorted(folder.glob(pattern))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"scons=={SCONS_VERSION}", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(pattern))
    if proc.returncode != 0 or not found:
        raise TinyGMMError(f"could not download scons=={SCONS_VERSION} from PyPI with pip (PlatformIO needs it):\n"
                           + (proc.stderr or proc.stdout).strip()
                           + f"\nDownload the wheel elsewhere and put it in {folder}")
    return found[0]


def _write_package(folder: Path, name: str, version: str, description: str, owner: str | None) -> None:
    """package.json + .piopm: what PlatformIO reads to know an installed package."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(
        {"name": name, "version": version, "description": description, "tinygmm": "made by tinygmm pio-offline"},
        indent=2) + "\n")
    (folder / ".piopm").write_text(json.dumps(
        {"type": "tool", "name": name, "version": version,
         "spec": {"owner": owner, "id": None, "name": name, "requirements": None, "uri": None}}) + "\n")


def _make_scons(packages: Path, cache: Path | None) -> None:
    folder = packages / "tool-scons"
    with zipfile.ZipFile(scons_wheel(cache)) as whl:
        members = [m for m in whl.namelist() if m.startswith("SCons/")]
        if not members:
            raise TinyGMMError("the scons wheel holds no SCons package")
        whl.extractall(folder, members)
    shutil.copy2(offline_data_dir() / "tool-scons" / "scons.py", folder / "scons.py")
    # PlatformIO Core looks the package up as platformio/tool-scons: the owner must say so.
    _write_package(folder, "tool-scons", SCONS_PIO_VERSION, f"SCons {SCONS_VERSION} from the PyPI wheel", "platformio")


def _tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out if re.fullmatch(r"\d+\.\d+(\.\d+)?", out) else None


def _make_avr_toolchain(packages: Path) -> None:
    folder = packages / "toolchain-atmelavr"
    (folder / "bin").mkdir(parents=True)
    names = set(AVR_TOOLS) | {p.name for p in AVR_BIN.glob("avr-*")}
    for name in sorted(names):
        (folder / "bin" / name).symlink_to(AVR_BIN / name)
    gcc = _tool_version([str(AVR_BIN / "avr-gcc"), "-dumpversion"])
    # PlatformIO writes gcc X.Y.Z as 1.X0Y0Z.0 (7.3.0 -> 1.70300.0).
    parts = [int(x) for x in (gcc or "0.0.0").split(".")] + [0]
    version = f"1.{parts[0]}{parts[1]:02d}{parts[2]:02d}.0"
    _write_package(folder, "toolchain-atmelavr", version,
                   f"links to Debian's avr-gcc {gcc or '(not installed)'} in {AVR_BIN}", None)


def _make_arduino_avr(packages: Path) -> None:
    folder = packages / "framework-arduino-avr"
    folder.mkdir(parents=True)
    for name in ARDUINO_LINKS:
        (folder / name).symlink_to(ARDUINO_AVR_DIR / name)
    version = "0.0.0"
    with contextlib.suppress(OSError):
        m = re.search(r"^version=(\d+\.\d+\.\d+)", (ARDUINO_AVR_DIR / "platform.txt").read_text(), re.M)
        version = m.group(1) if m else version
    _write_package(folder, "framework-arduino-avr", version,
                   f"links to Debian's arduino-core-avr {version} in {ARDUINO_AVR_DIR}", None)


def _install_platform(core: Path, source: Path) -> None:
    """`pio pkg install -g -p file://SOURCE` into ``core``."""
    run_pio(["pkg", "install", "--global", "--skip-dependencies", "--platform", f"file://{source}"],
            project_dir=core, core_dir=core, echo=False, extra_env=QUIET_PIO_ENV)


def offline_platform_version(name: str) -> str:
    """The version the shipped offline platform declares."""
    return json.loads((offline_data_dir() / "platforms" / name / "platform.json").read_text())["version"]


def _check_core_dir(core: Path) -> None:
    real_home = Path.home() / ".platformio"
    if core.resolve() == real_home.resolve():
        raise TinyGMMError(f"{core} is PlatformIO's own core dir; the offline core must be a separate folder")
    if core.exists() and not core.is_dir():
        raise TinyGMMError(f"{core} exists and is not a folder")
    if core.is_dir() and any(core.iterdir()) and _read_stamp(core) is None:
        raise TinyGMMError(f"{core} exists and was not made by `tinygmm pio-offline`; "
                           "choose another --core-dir or remove it")


def provision_offline(core_dir: Path | str | None = None, *, cache: Path | None = None,
                      force: bool = False) -> Provisioned:
    """Build (or find up to date) an offline PlatformIO core in ``core_dir``.

    Idempotent: a second call finds the stamp and does nothing. The core is assembled in a
    temporary sibling folder and renamed into place, so an interrupted run leaves no half core.
    """
    start = time.perf_counter()
    core = Path(core_dir).expanduser() if core_dir is not None else default_core_dir()
    core = core.absolute()
    _check_core_dir(core)
    fingerprint = _fingerprint()
    notes = []
    if fingerprint["avr_missing"]:
        notes.append("the uno build needs Debian packages not installed here: apt-get install "
                     + " ".join(fingerprint["avr_missing"]) + " (the native build works without them)")
    stamp = _read_stamp(core)
    if stamp is not None and stamp.get("fingerprint") == fingerprint and not force:
        return Provisioned(core, False, notes, time.perf_counter() - start)

    core.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{core.name}.tmp-", dir=core.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the core from other users of a shared CI cache
        packages = tmp / "packages"
        _make_scons(packages, cache)
        _make_avr_toolchain(packages)
        _make_arduino_avr(packages)
        for name in ("native", "atmelavr"):
            _install_platform(tmp, offline_data_dir() / "platforms" / name)
        (tmp / STAMP_FILE).write_text(json.dumps(
            {"made_by": f"tinygmm {__version__} pio-offline", "fingerprint": fingerprint}, indent=2) + "\n")
        _swap_into_place(tmp, core)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Provisioned(core, True, notes, time.perf_counter() - start)


def _swap_into_place(tmp: Path, core: Path) -> None:
    """Replace ``core`` (an older offline core, or nothing) with ``tmp`` by renames."""
    old = None
    if core.exists():
        old = core.with_name(f".{core.name}.old-{os.getpid()}")
        os.rename(core, old)
    try:
        os.rename(tmp, core)
    except OSError:
        if old is not None and not core.exists():
            os.rename(old, core)
            old = None
        if _read_stamp(core) is None:  # not a concurrent provisioner's finished core either
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
