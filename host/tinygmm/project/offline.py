"""tinygmm's offline PlatformIO core: the boards whose toolchains Debian has, built with no registry.

The offline core is an isolated PLATFORMIO_CORE_DIR (never ~/.platformio) holding:

* packages/tool-scons: the `SCons` package from the PyPI wheel scons==4.11.1 and a launcher;
* for each offline toolchain of the board table (boards.py), the packages it links to Debian's
  files (for the Uno: toolchain-atmelavr -> gcc-avr/binutils-avr, framework-arduino-avr ->
  arduino-core-avr, tool-avrdude -> avrdude; for the CPU classes: toolchain-gccarmnoneeabi,
  toolchain-riscv), and its platform, installed once by PlatformIO itself from firmware/pio-offline/.

An offline platform's version is the board table's pin plus "+tinygmm.offline", so an exported
project's `platform = atmelavr @ 5.1.0` resolves to it with no network, and the same ini fetches
the real platform where PlatformIO's registry is reachable.
"""
from __future__ import annotations

import contextlib
import hashlib
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

from .. import __version__
from ..errors import TinyGMMError
from ..resources import firmware_dir
from .boards import LinkedPackage, offline_toolchains
from .pio import run_pio

# PlatformIO Core 6.x runs <core>/packages/tool-scons/scons.py and requires tool-scons ~4.41101.0,
# PlatformIO's encoding of SCons 4.11.1 (major 4, then 4.11.01 as 41101).
SCONS_VERSION = "4.11.1"
SCONS_PIO_VERSION = "4.41101.0"
OFFLINE_SUFFIX = "+tinygmm.offline"
STAMP_FILE = "tinygmm-offline.json"
CORE_ENV_VAR = "TINYGMM_PIO_CORE"
# PlatformIO settings for the provisioning runs: no telemetry, no upgrade checks (no network).
QUIET_PIO_ENV = {"PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no", "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650"}


def cache_dir() -> Path:
    """~/.cache/tinygmm (or $XDG_CACHE_HOME/tinygmm): downloads and built helpers kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinygmm"


def offline_core_path() -> Path:
    """Where the offline core lives: $TINYGMM_PIO_CORE, else ~/.cache/tinygmm/pio-core."""
    env = os.environ.get(CORE_ENV_VAR)
    return Path(env).expanduser() if env else cache_dir() / "pio-core"


def offline_data_dir() -> Path:
    """The shipped platform files (firmware/pio-offline)."""
    return firmware_dir() / "pio-offline"


@dataclass
class Provisioned:
    core_dir: Path
    created: bool  # False: an up-to-date core was already there (nothing done)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def export_line(self) -> str:
        return f"export PLATFORMIO_CORE_DIR={self.core_dir}"


def _fingerprint() -> dict:
    """What the core is made from: a different fingerprint means the core is rebuilt."""
    digest = hashlib.sha256()
    data = offline_data_dir()
    for f in sorted(p for p in data.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(f.relative_to(data)).encode() + b"\0" + f.read_bytes() + b"\0")
    return {"tinygmm": __version__, "scons": SCONS_VERSION, "data": digest.hexdigest()[:16],
            "missing": _missing_packages(), "pio": _pio_version()}


def _missing_packages() -> list[str]:
    return [pkg for tc in offline_toolchains() for pkg in tc.missing()]


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


def _linked_version(pkg: LinkedPackage) -> str:
    """The PlatformIO version of a linked package, read from what Debian installed."""
    kind, _, program = pkg.version_from.partition(":")
    if kind in ("gcc", "avrdude"):
        found = (_tool_version([str(pkg.source / program), "-dumpversion"]) if kind == "gcc"
                 else _avrdude_version(pkg.source / program))
        # PlatformIO writes tool version X.Y.Z as 1.X0Y0Z.0 (gcc 7.3.0 -> 1.70300.0, avrdude 6.3 -> 1.60300.0).
        parts = [int(x) for x in (found or "0.0.0").split(".")] + [0, 0]
        return f"1.{parts[0]}{parts[1]:02d}{parts[2]:02d}.0"
    if pkg.version_from == "platform.txt":
        with contextlib.suppress(OSError):
            m = re.search(r"^version=(\d+\.\d+\.\d+)", (pkg.source / "platform.txt").read_text(), re.M)
            if m:
                return m.group(1)
    return "0.0.0"


def _avrdude_version(program: Path) -> str | None:
    """'7.1' from `avrdude -?`'s "avrdude version 7.1, URL: ..." (it has no plain version option)."""
    try:
        out = subprocess.run([str(program), "-?"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr, re.I)
    return m.group(1) if m else None


def _make_linked(packages: Path, pkg: LinkedPackage) -> None:
    """A package folder of symlinks into ``pkg.source`` (names linked even when missing, so that
    installing the Debian package later needs no re-provisioning; patterns link what is there)."""
    folder = packages / pkg.name
    target = folder / pkg.into if pkg.into else folder
    target.mkdir(parents=True, exist_ok=True)
    names = set()
    for entry in pkg.entries:
        names |= {p.name for p in pkg.source.glob(entry)} if any(c in entry for c in "*?[") else {entry}
    for name in sorted(names):  # an absolute entry is linked under its own file name
        (target / Path(name).name).symlink_to(pkg.source / name)
    version = _linked_version(pkg)
    _write_package(folder, pkg.name, version, f"links to Debian's files in {pkg.source} (version {version})", None)


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
    core = Path(core_dir).expanduser() if core_dir is not None else offline_core_path()
    core = core.absolute()
    _check_core_dir(core)
    fingerprint = _fingerprint()
    notes = []
    for tc in offline_toolchains():
        if tc.missing():
            notes.append(f"the {tc.platform} build needs Debian packages not installed here: apt-get install "
                         + " ".join(tc.missing()))
    stamp = _read_stamp(core)
    if stamp is not None and stamp.get("fingerprint") == fingerprint and not force:
        return Provisioned(core, False, notes, time.perf_counter() - start)

    core.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{core.name}.tmp-", dir=core.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the core from other users of a shared CI cache
        packages = tmp / "packages"
        _make_scons(packages, cache)
        for tc in offline_toolchains():
            for pkg in tc.linked:
                _make_linked(packages, pkg)
        for platform in dict.fromkeys(tc.platform for tc in offline_toolchains() if tc.platform):  # each once
            _install_platform(tmp, offline_data_dir() / "platforms" / platform)
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
