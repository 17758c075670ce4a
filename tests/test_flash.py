"""Flashing proven without a board: avrdude uploads the Uno firmware through Optiboot into the emulated
Uno (simavr), which then runs it for verification and takes the next upload; each failure a user
meets when flashing stops with a message saying what to do."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import require
from tinygmm.cli import main
from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.link.emulators import SimavrBoard
from tinygmm.model import Model, load
from tinygmm.project import pio
from tinygmm.project.boards import BOARDS, get_emulator
from tinygmm.project.build import SIMAVR_HEADER, ensure_built, flash, simavr_runner
from tinygmm.project.export import export_project
from tinygmm.project.firmware import Firmware, read_firmware_project
from tinygmm.verify.session import VerifySession, emulated_board

# Flash data a constructor reads, so that neither the linker's garbage collection nor LTO drops it.
PADDING = """#include <avr/pgmspace.h>
const unsigned char tinygmm_padding[%d] PROGMEM = {1};
__attribute__((constructor)) static void touch_padding(void) {
    volatile unsigned i = sizeof tinygmm_padding - 1;
    (void)pgm_read_byte(&tinygmm_padding[i]);
}
"""
# Bytes avrdude has written when the test cuts the upload off: past its start-up exchange (about
# 100 bytes), well short of the demo firmware's 17 KB.
CUT_AFTER_BYTES = 6000


def uno_firmware(project: Path) -> Firmware:
    return read_firmware_project(project).firmware("uno")


@pytest.fixture
def uno(demo_project: Path, pio_core, monkeypatch) -> Path:
    """The demo project with its uno firmware built, tinygmm's offline core in use, and every tool an
    upload into the emulated Uno needs."""
    board = BOARDS["uno"]
    missing = board.missing_tools() + board.toolchain.missing_uploader()
    require(not missing, "flashing the emulated uno needs apt-get install " + " ".join(missing))
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install " + " ".join(get_emulator("simavr")[0].packages))
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    ensure_built(uno_firmware(demo_project), pio_core.core_dir)
    return demo_project


@pytest.fixture
def other(uno: Path, tmp_path: Path) -> Path:
    """The demo project with another model (two components): a copy, so only the model is rebuilt."""
    X, names = demo_data()
    model = Model.from_gmm(GaussianMixture(2, random_state=1).fit(X), feature_names=names, X_train=X)
    project = tmp_path / "other"
    shutil.copytree(uno, project)
    export_project(model, ["uno", "esp32dev"], project, X_train=X, force=True)
    assert model.model_id != load(uno / "model.json").model_id
    return project


def _line(stream, needle: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if needle in line:
            return line
        assert line, f"the stream ended before {needle!r}"
    raise AssertionError(f"no {needle!r} within {timeout} s")


def test_flash_the_emulated_uno_verify_it_then_flash_another_model_into_the_same_board(uno: Path, other: Path,
                                                                                      tmp_path: Path, capsys) -> None:
    """One emulated Uno, kept on its port by `flash --keep`: the first upload through avrdude and Optiboot
    runs the demo model; verify talks to it on its port; after a reset into the bootloader a second
    model is flashed into the same running board, and verify finds the new id there."""
    first, second = load(uno / "model.json").model_id, load(other / "model.json").model_id
    with open(tmp_path / "keeper.err", "w") as err:
        keeper = subprocess.Popen([sys.executable, "-m", "tinygmm", "flash", str(uno), "-e", "uno", "--emulator",
                                   "simavr", "--offline", "--keep"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=err, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        flashed = _line(keeper.stdout, "flashed into the emulated uno")
        assert f"the firmware answers as model {first}" in flashed
        port = flashed.split(" on ")[1].split(":")[0]
        assert main(["verify", str(uno), "-e", "uno", "--port", port, "--no-bench"]) == 0
        assert f"model {first} on uno" in capsys.readouterr().out

        keeper.stdin.write("\n")  # Enter: the reset button
        keeper.stdin.flush()
        _line(keeper.stdout, "was reset")
        assert main(["flash", str(other), "-e", "uno", "--port", port, "--offline"]) == 0
        assert f"uno flashed on {port}" in capsys.readouterr().out
        assert main(["verify", str(other), "-e", "uno", "--port", port, "--no-bench"]) == 0
        assert f"model {second} on uno" in capsys.readouterr().out
    finally:
        keeper.stdin.close()  # end of input: the board stops
        assert keeper.wait(timeout=30) == 0, (tmp_path / "keeper.err").read_text()


def test_only_an_emulator_with_a_bootloader_takes_an_upload(uno: Path, capsys) -> None:
    assert main(["verify", str(uno), "--emulator", "qemu", "--flash", "--offline"]) == 1
    assert "the qemu emulator loads the firmware itself: it has no bootloader to flash through (--emulator simavr" \
        in capsys.readouterr().err
    assert main(["flash", str(uno), "-e", "uno", "--keep"]) == 1
    assert "--keep keeps an emulated board: use it with --emulator" in capsys.readouterr().err


# -- what goes wrong ------------------------------------------------------------------------------


def test_a_missing_avrdude_says_what_to_install(uno: Path, monkeypatch, capsys) -> None:
    board = BOARDS["uno"]
    absent = dataclasses.replace(board.toolchain, uploader=(("/nonexistent/avrdude", "avrdude"),))
    monkeypatch.setitem(BOARDS, "uno", dataclasses.replace(board, toolchain=absent))
    assert main(["flash", str(uno), "-e", "uno", "--emulator", "simavr", "--offline"]) == 1
    assert "flashing the uno needs its uploader: apt-get install avrdude" in capsys.readouterr().err
    # PlatformIO run by hand reaches the offline platform's own check (its tool-avrdude link dangles)
    assert pio.diagnose("Error: avrdude not found: apt-get install avrdude") == "avrdude not found: apt-get install avrdude"


def test_a_port_that_does_not_exist_is_named(uno: Path, capsys) -> None:
    assert main(["flash", str(uno), "-e", "uno", "--port", "/dev/ttyNOSUCH", "--offline"]) == 1
    assert "no serial port /dev/ttyNOSUCH: is the board plugged in?" in capsys.readouterr().err


def test_a_busy_port_names_the_program_holding_it(uno: Path, pio_core) -> None:
    with emulated_board(BOARDS["uno"], get_emulator("simavr")[0]) as board:
        with open(board.port, "rb") as tty:
            holder = subprocess.Popen(["sleep", "60"], stdin=tty)
        try:
            with pytest.raises(TinyGMMError, match=rf"{board.port} is busy: sleep \(pid {holder.pid}\) has it open; "
                                                   r"close that .* and flash again"):
                flash(uno_firmware(uno), board.port, pio_core.core_dir)
        finally:
            holder.kill()
            holder.wait()


def test_a_board_that_never_answers_its_bootloader_says_what_to_check(uno: Path, pio_core, monkeypatch) -> None:
    # An Uno programmed over ISP: the firmware alone, no bootloader to answer avrdude.
    monkeypatch.setenv("PLATFORMIO_UPLOAD_FLAGS", "-xattempts=1")  # avrdude's ten tries would take a minute
    with SimavrBoard(runner=simavr_runner(), bootloader=None, elf=uno_firmware(uno).artifact,
                     **get_emulator("simavr")[0].options) as board:
        with pytest.raises(TinyGMMError, match=r"the board on \S+ never answered its bootloader \(Optiboot 4.4, arduino "
                                               r"protocol at 115200 baud\): check that it is an Arduino Uno .*\(-e uno\), "
                                               r"that its bootloader is there .* press its reset button"):
            flash(uno_firmware(uno), board.port, pio_core.core_dir)


def _flash_size(elf: Path) -> int:
    sizes = subprocess.run(["avr-size", "-A", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[1]) for line in sizes.splitlines() if line.startswith((".text", ".data")))


def test_a_firmware_too_large_for_the_uno_is_named(uno: Path, tmp_path: Path, capsys) -> None:
    """100 bytes into the bootloader's 512: PlatformIO's size check stops it before any upload."""
    big = tmp_path / "big"
    shutil.copytree(uno, big)
    padding = BOARDS["uno"].flash - _flash_size(uno_firmware(uno).artifact) + 100
    (big / "src" / BOARDS["uno"].glue / "padding.cpp").write_text(PADDING % padding)
    assert main(["flash", str(big), "-e", "uno", "--emulator", "simavr", "--offline"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert re.search(r"the firmware is \d+ bytes, more than the 32256 bytes of flash the board has for programs: "
                     r"fit a smaller model", err), err
    # past the whole flash the linker stops first
    assert pio.diagnose("ld: region `text' overflowed by 1500 bytes").startswith(
        "the firmware is 1500 bytes larger than the board's flash: fit a smaller model")


def _avrdude_on(port: str) -> int | None:
    """The pid of an avrdude uploading to ``port``, if one runs."""
    for entry in os.scandir("/proc"):
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"avrdude") and port.encode() in argv:
            return int(entry.name)
    return None


def _written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def test_an_upload_cut_off_midway_leaves_the_bootloader_and_a_second_flash_works(uno: Path) -> None:
    with VerifySession.open(uno, emulator="simavr", offline=True) as session:
        session.board = board = emulated_board(session.target.board, session.target.emulator)
        cut: list[int] = []

        def cut_off() -> None:  # kill avrdude once it is writing, as a pulled cable or Ctrl-C would
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                pid = _avrdude_on(board.port)
                try:
                    if pid is not None and _written(pid) > CUT_AFTER_BYTES:
                        os.kill(pid, signal.SIGKILL)
                        cut.append(pid)
                        return
                except OSError:
                    pass
                time.sleep(0.01)

        killer = threading.Thread(target=cut_off, daemon=True)
        killer.start()
        with pytest.raises(TinyGMMError, match=r"the upload to \S+ broke off midway: the uno holds part of the new "
                                               r"firmware, but its bootloader \(Optiboot 4.4\) .* flash again"):
            session.flash()
        killer.join()
        assert cut
        session.flash()
        with session.device() as dev:
            assert dev.info is not None and dev.info.model_id == session.model.model_id


# -- the emulated board and the board entry -------------------------------------------------------


def _hex_record(address: int, data: bytes) -> str:
    body = bytes([len(data), address >> 8, address & 0xFF, 0]) + data
    return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()


@pytest.mark.parametrize("records, message", [
    ([(0x7FF0, bytes(32))], "byte at 0x8000 lies outside the boot section 0x7e00-0x7fff: the image does not fit"),
    ([(0x7E00, bytes(16)), (0x7E08, bytes(2))], "byte at 0x7e08 is written twice (overlapping records"),
    ([(0x1000, bytes(2))], "byte at 0x1000 lies outside the boot section"),
], ids=["past-the-flash", "overlapping", "below-the-boot-section"])
def test_the_emulator_burns_only_an_image_the_chip_can_hold(uno: Path, tmp_path: Path, records, message) -> None:
    """Debian 12's optiboot_atmega328.hex is such an image (532 bytes from 0x7e00, and its version word
    over an instruction at 0x7ffe): the Uno's bootloader is built from its source instead (boards.py)."""
    image = tmp_path / "boot.hex"
    image.write_text("\n".join([_hex_record(a, d) for a, d in records] + [":00000001FF"]) + "\n")
    run = subprocess.run([str(simavr_runner()), "-b", str(image), "-B", "0x7e00", "-k"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and message in run.stderr, run.stderr


def test_the_emulated_board_resets_on_request_and_stops_at_end_of_input(uno: Path) -> None:
    with emulated_board(BOARDS["uno"], get_emulator("simavr")[0]) as board:
        board.reset()
        board.reset()
        assert board.alive()
    assert board.exit_code == 0 and board.exit_reason == "closed"


def test_the_uno_entry_agrees_with_the_offline_platform_and_the_chip() -> None:
    """One place for each fact: the offline platform's uno.json stands for PlatformIO's own board
    manifest and must say what the board table says; the bootloader ends the 32 KB flash."""
    import json

    from tinygmm.project.offline import offline_data_dir

    uno = BOARDS["uno"]
    boot = uno.bootloader
    manifest = json.loads((offline_data_dir() / "platforms" / "atmelavr" / "boards" / "uno.json").read_text())
    assert (manifest["upload"]["protocol"], manifest["upload"]["speed"]) == (boot.protocol, boot.speed)
    assert manifest["build"]["mcu"] == boot.part == uno.emulators[0].options["mcu"]
    assert manifest["upload"]["maximum_size"] == uno.flash == boot.address == 32 * 1024 - boot.size


def test_an_upload_failure_names_the_projects_own_env() -> None:
    """A user's project calls its Uno env what it likes: the hint repeats that name, not the board's."""
    from tinygmm.project.build import upload_failure

    uno = BOARDS["uno"]
    never_built = "src/main.cpp:3:1: error: 'x' does not name a type\n"
    assert "`pio run -e lab_uno -t upload`" in upload_failure(uno, "/dev/ttyACM0", never_built, env="lab_uno")
    no_answer = "Uploading .pio/build/lab_uno/firmware.hex\navrdude: stk500_recv(): programmer is not responding\n"
    message = upload_failure(uno, "/dev/ttyACM0", no_answer, env="lab_uno")
    assert "(-e lab_uno)" in message and "never answered" in message
    assert "(-e uno)" in upload_failure(uno, "/dev/ttyACM0", no_answer)
