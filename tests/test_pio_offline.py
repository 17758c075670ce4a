"""The offline PlatformIO core: provisioned from PyPI + Debian only, real `pio run` for native and uno,
idempotent and atomic provisioning, PlatformIO's output and errors, and platformio.ini linting."""
from __future__ import annotations

import dataclasses

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygmm.project import boards, offline, pio
from tinygmm.project.boards import BOARDS
from tinygmm.cli import main
from tinygmm.errors import TinyGMMError
from tinygmm.project.offline import provision_offline
from tinygmm.project.pio import lint_ini, lint_ini_text, parse_memory_use, run_pio
from conftest import require

# Any network access PlatformIO attempts goes to a closed local port and fails at once:
# the builds below prove they need none.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no"}

# Values where a fused multiply-add would change the float32 result of a*b + c.
FMA_CASES = [(1.0000001, 1.0000001, -1.0000002), (0.1, 0.2, 0.3), (3.0e7, 1.1, -3.3e7), (-2.5, 4.0e-8, 1.0e-7)]

INI = """\
; test project for tinygmm's offline PlatformIO core
[platformio]
default_envs = native

[env]
build_flags = -ffp-contract=off
monitor_speed = 115200
test_speed = 115200

[env:native]
platform = {native}
build_src_filter = +<native/>

[env:uno]
platform = {uno}
board = uno
framework = arduino
build_src_filter = +<arduino/>
"""

NATIVE_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include <stdint.h>
static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
int main(void) {
    static const volatile float v[][3] = { %s };
    for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
        float r = v[i][0] * v[i][1] + v[i][2];
        printf("%%08x %%.9g\n", (unsigned)bits(r), (double)r);
    }
    return 0;
}
"""

ARDUINO_MAIN = r"""
#include <Arduino.h>
#include <math.h>
static volatile float x = 1.25f;
void setup() { Serial.begin(115200); }
void loop() {
    float y = expf(x) * logf(x + 2.0f) + sqrtf(x);
    Serial.print(F("y=")); Serial.println(y, 6);
    x += 0.5f;
    delay(500);
}
"""


def _c_float(v: float) -> str:
    return float(np.float32(v)).hex() + "f"  # C99 hex float: exact


@pytest.fixture(scope="session")
def offline_core(tmp_path_factory):
    # The scons wheel is cached in ~/.cache/tinygmm/wheels, so only the first run downloads it.
    core = tmp_path_factory.mktemp("pio") / "core"
    result = provision_offline(core)
    assert result.created and (core / offline.STAMP_FILE).is_file()
    return result


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    (root / "platformio.ini").write_text(INI.format(native=BOARDS["native"].platform, uno=BOARDS["uno"].platform))
    (root / "src" / "native").mkdir(parents=True)
    (root / "src" / "arduino").mkdir()
    rows = ", ".join("{%s}" % ", ".join(map(_c_float, case)) for case in FMA_CASES)
    (root / "src" / "native" / "main.c").write_text(NATIVE_MAIN % rows)
    (root / "src" / "arduino" / "main.cpp").write_text(ARDUINO_MAIN)
    return root


@pytest.fixture
def avr():
    """Skip (or, under CI=true, fail) when the Debian AVR packages are missing."""
    missing = BOARDS["uno"].missing_tools()
    require(not missing, "the uno build needs apt-get install " + " ".join(missing))


def _build(project: Path, core, env: str, *extra: str) -> pio.PioResult:
    out = io.StringIO()
    result = run_pio(["run", "-e", env, *extra], project, core.core_dir, echo=out, extra_env=NO_NETWORK)
    assert result.output == out.getvalue()  # passed through whole
    return result


def test_core_layout(offline_core):
    core = offline_core.core_dir
    scons = core / "packages" / "tool-scons"
    assert (scons / "SCons" / "Script" / "__init__.py").is_file() and (scons / "scons.py").is_file()
    assert json.loads((scons / ".piopm").read_text())["spec"]["owner"] == "platformio"
    assert json.loads((scons / "package.json").read_text())["version"] == offline.SCONS_PIO_VERSION
    gcc = core / "packages" / "toolchain-atmelavr" / "bin" / "avr-gcc"
    assert gcc.is_symlink() and os.readlink(gcc) == "/usr/bin/avr-gcc"
    assert (core / "packages" / "framework-arduino-avr" / "cores").is_symlink()
    for name in ("native", "atmelavr"):
        meta = json.loads((core / "platforms" / name / ".piopm").read_text())
        assert meta["type"] == "platform" and meta["version"] == offline.offline_platform_version(name)
    # Nothing outside the core was used as PlatformIO's home.
    assert not any(p.name.startswith(".core.tmp-") for p in core.parent.iterdir())


def test_native_build_and_run(offline_core, project):
    result = _build(project, offline_core, "native")
    assert "[SUCCESS]" in result.output
    program = project / ".pio" / "build" / "native" / "program"
    assert program.is_file()
    lines = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(FMA_CASES)
    for line, (a, b, c) in zip(lines, FMA_CASES):
        expect = np.float32(a) * np.float32(b) + np.float32(c)  # float32, rounded after each operation
        bits = struct.unpack("<I", struct.pack("<f", expect))[0]
        assert line.split()[0] == f"{bits:08x}", (line, expect)


def test_uno_build_fits_board_limits(offline_core, project, avr):
    start = time.perf_counter()
    result = _build(project, offline_core, "uno")
    seconds = time.perf_counter() - start
    build = project / ".pio" / "build" / "uno"
    assert (build / "firmware.elf").is_file()
    hexfile = (build / "firmware.hex").read_text()
    assert hexfile.startswith(":") and hexfile.rstrip().endswith(":00000001FF")
    use = parse_memory_use(result.output)
    board = BOARDS["uno"]
    assert use is not None and (use.flash_max, use.ram_max) == (board.flash, board.ram)
    assert 0 < use.flash <= board.flash and 0 < use.ram <= board.ram
    # The same numbers from avr-size itself: flash = .text + .data, RAM = .data + .bss.
    from avr_size import avr_sections  # bench/

    sec = avr_sections(build / "firmware.elf")
    assert use.flash == sec[".text"] + sec.get(".data", 0)
    assert use.ram == sec.get(".data", 0) + sec.get(".bss", 0)
    print(f"uno: flash {use.flash}/{use.flash_max} B, RAM {use.ram}/{use.ram_max} B, build {seconds:.1f} s")


def test_uno_size_target(offline_core, project, avr):
    result = _build(project, offline_core, "uno", "-t", "size")
    assert ".text" in result.output and ".bss" in result.output


def test_uno_upload_without_building_sends_what_was_built(offline_core, project, avr):
    """`-t nobuild -t upload` (what `pio test --without-building` and tinygmm's flash(build=False)
    run) uploads the hex built before and compiles nothing, as PlatformIO's own atmelavr does."""
    _build(project, offline_core, "uno")
    result = run_pio(["run", "-e", "uno", "-t", "nobuild", "-t", "upload", "--upload-port", "/dev/null"], project,
                     offline_core.core_dir, echo=False, check=False)
    assert "Uploading .pio/build/uno/firmware.hex" in result.output, result.output
    assert "Compiling" not in result.output and "Linking" not in result.output


def test_uno_flags(offline_core, project, tmp_path, avr):
    fresh = tmp_path / "fresh"  # nothing built yet, so every command line shows
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns(".pio"))
    result = _build(fresh, offline_core, "uno", "-v")
    compile_line = next(line for line in result.output.splitlines() if "avr-g++" in line and "main.cpp.o -c" in line)
    for flag in ("-mmcu=atmega328p", "-Os", "-flto", "-ffp-contract=off", "-DF_CPU=16000000L", "-DARDUINO_AVR_UNO",
                 "-DDECIMAL_DIG=9"):
        assert flag in compile_line.split()
    link_line = next(line for line in result.output.splitlines() if "-o .pio/build/uno/firmware.elf" in line)
    assert "-lm" in link_line and "-flto" in link_line


def test_second_provision_is_a_no_op(offline_core):
    stamp = offline_core.core_dir / offline.STAMP_FILE
    before = stamp.stat().st_mtime_ns
    again = provision_offline(offline_core.core_dir)
    assert not again.created and again.seconds < 1.0
    assert stamp.stat().st_mtime_ns == before


def test_outdated_core_is_replaced_atomically(tmp_path):
    core = tmp_path / "core"
    provision_offline(core)
    stamp = json.loads((core / offline.STAMP_FILE).read_text())
    stamp["fingerprint"]["tinygmm"] = "0.0.0"  # as if made by an older tinygmm
    (core / offline.STAMP_FILE).write_text(json.dumps(stamp))
    (core / "leftover").write_text("from the old core")
    result = provision_offline(core)
    assert result.created and not (core / "leftover").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["core"]  # no temp or old folders left


def test_refuses_foreign_folders(tmp_path, monkeypatch):
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(TinyGMMError, match="not made by `tinygmm pio-offline`"):
        provision_offline(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "a user's file"
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(TinyGMMError, match="PlatformIO's own core dir"):
        provision_offline(tmp_path / ".platformio")


def test_failed_provision_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise TinyGMMError("simulated failure")

    monkeypatch.setattr(offline, "_install_platform", boom)
    with pytest.raises(TinyGMMError, match="simulated"):
        provision_offline(tmp_path / "core")
    assert list(tmp_path.iterdir()) == []


def test_cli_pio_offline(offline_core, capsys):
    assert main(["pio-offline", "--core-dir", str(offline_core.core_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"export PLATFORMIO_CORE_DIR={offline_core.core_dir}\n"
    assert "up to date" in captured.err


def test_default_core_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(tmp_path / "c"))
    assert offline.offline_core_path() == tmp_path / "c"
    monkeypatch.delenv("TINYGMM_PIO_CORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert offline.offline_core_path() == tmp_path / "tinygmm" / "pio-core"


def test_failure_reaches_the_user_whole(offline_core, project):
    with pytest.raises(TinyGMMError) as err:
        run_pio(["run", "-e", "nosuchenv"], project, offline_core.core_dir, echo=False, extra_env=NO_NETWORK)
    text = str(err.value)
    assert "exit status" in text and "nosuchenv" in text and "PlatformIO's output:" in text


def _link_uno_package_to(monkeypatch, package: str, source: Path) -> None:
    """The uno's offline toolchain (and every board sharing it) with one linked package made from ``source``
    instead of Debian's folder."""
    uno = boards.BOARDS["uno"]
    linked = tuple(dataclasses.replace(p, source=source) if p.name == package else p for p in uno.toolchain.linked)
    toolchain = dataclasses.replace(uno.toolchain, linked=linked)
    for b in list(boards.BOARDS.values()):
        if b.toolchain == uno.toolchain:
            monkeypatch.setitem(boards.BOARDS, b.env, dataclasses.replace(b, toolchain=toolchain))


def test_missing_avr_gcc_says_what_to_install(tmp_path, monkeypatch, project):
    # A core made where gcc-avr is absent: the toolchain links dangle and PATH has no avr-gcc.
    _link_uno_package_to(monkeypatch, "toolchain-atmelavr", tmp_path / "no-avr")
    core = provision_offline(tmp_path / "core").core_dir
    fresh = tmp_path / "p"
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns(".pio"))
    with pytest.raises(TinyGMMError, match=r"failed \(exit status 1\): avr-gcc not found: "
                                           r"apt-get install gcc-avr avr-libc binutils-avr"):
        run_pio(["run", "-e", "uno"], fresh, core, echo=False, extra_env={**NO_NETWORK, "PATH": str(tmp_path)})


def test_missing_arduino_core_says_what_to_install(tmp_path, monkeypatch, project, avr):
    _link_uno_package_to(monkeypatch, "framework-arduino-avr", tmp_path / "no-arduino")
    core = provision_offline(tmp_path / "core").core_dir
    fresh = tmp_path / "p"
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns(".pio"))
    with pytest.raises(TinyGMMError, match="the Arduino AVR core is missing: apt-get install arduino-core-avr"):
        run_pio(["run", "-e", "uno"], fresh, core, echo=False, extra_env=NO_NETWORK)


def test_diagnoses():
    assert pio.diagnose("...\nError: avr-gcc not found: apt-get install gcc-avr avr-libc binutils-avr\n") == \
        "avr-gcc not found: apt-get install gcc-avr avr-libc binutils-avr"
    assert "arduino-core-avr" in pio.diagnose("Error: the Arduino AVR core is missing: apt-get install arduino-core-avr")
    assert "--offline" in pio.diagnose("HTTPClientError: \nUnknownPackageError: Could not find the package")
    assert pio.diagnose("sh: 1: gcc: not found") == "no host C/C++ compiler for the native build: apt-get install gcc g++"
    assert pio.diagnose("all good") is None


def test_missing_platformio(monkeypatch):
    monkeypatch.setattr(pio, "pio_command", lambda: ["/nonexistent/pio"])
    with pytest.raises(TinyGMMError, match="PlatformIO not found: pip install platformio"):
        run_pio(["--version"], echo=False)


FAKE_PIO = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])  # a compiler pio started
print(child.pid, flush=True)
while True:  # writes on, as pio does, and blocks once its reader stops reading
    print("x" * 200, flush=True)
    time.sleep(0.001)
"""


def test_an_interrupted_run_stops_pio_and_what_it_started(monkeypatch, tmp_path):
    """A deadline or Ctrl-C while pio runs (raised in the loop reading its output) must not leave pio
    blocked on a full pipe, nor its compilers writing into .pio, behind a released project lock."""
    monkeypatch.setattr(pio, "pio_command", lambda: [sys.executable, "-c", FAKE_PIO])
    pids: list[int] = []

    class Interrupting(io.StringIO):
        def write(self, text: str) -> int:
            if not pids:
                pids.append(int(text))
                return len(text)
            raise TinyGMMError("the deadline")

    t0 = time.monotonic()
    with pytest.raises(TinyGMMError, match="the deadline"):
        run_pio(["run"], tmp_path, echo=Interrupting())
    assert time.monotonic() - t0 < pio.PIO_STOP_SECONDS + 5
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pids[0]):
        time.sleep(0.05)
    assert not _alive(pids[0]), "the compiler pio started is still running"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


# -- linting -------------------------------------------------------------------------------

GOOD_INI = INI.format(native="native", uno="atmelavr @ 5.1.0")


def test_lint_accepts_good_ini(tmp_path):
    (tmp_path / "platformio.ini").write_text(GOOD_INI + "\n[common]\nanything = goes\n[env:native2]\n"
                                             "extends = env:native\ncustom_model = m.json\n")
    assert lint_ini(tmp_path / "platformio.ini") == []


def test_lint_rejects_bad_value():
    with pytest.raises(TinyGMMError, match=r"'fast' is not a valid integer.*monitor_speed"):
        lint_ini_text(GOOD_INI.replace("monitor_speed = 115200", "monitor_speed = fast"))


def test_lint_rejects_unknown_option():
    with pytest.raises(TinyGMMError, match=r"unknown option `monitor_sped` in \[env:uno\]") as err:
        lint_ini_text(GOOD_INI.replace("board = uno", "board = uno\nmonitor_sped = 9600"))
    assert str(err.value).count("monitor_sped") == 1  # named where written, not in every env inheriting it
    with pytest.raises(TinyGMMError, match=r"unknown option `default_env` in \[platformio\]"):
        lint_ini_text(GOOD_INI.replace("default_envs", "default_env"))


def test_lint_rejects_unknown_default_env():
    with pytest.raises(TinyGMMError, match="Unknown environment names 'esp32'"):
        lint_ini_text(GOOD_INI.replace("default_envs = native", "default_envs = esp32"))


def test_lint_works_from_any_directory(tmp_path, monkeypatch):
    # ${platformio.build_dir} resolves against the current directory: lint_ini enters the project.
    (tmp_path / "p").mkdir()
    ini = tmp_path / "p" / "platformio.ini"
    ini.write_text(GOOD_INI.replace("[env]\n", "[env]\nextra_scripts = ${platformio.build_dir}/x.py\n"))
    monkeypatch.chdir("/")
    assert lint_ini(ini) == []
    assert Path.cwd() == Path("/")
