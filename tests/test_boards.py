"""The board table: consistent limits, exact platform pins, USB ids, CPU classes, and `tinygmm boards`."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest
import semantic_version
from platformio.package.meta import PackageSpec

from tinygmm.project import boards
from tinygmm.project.boards import BOARDS, boards_for_usb_id, format_boards, get_board
from tinygmm.cli import main
from tinygmm.errors import TinyGMMError
from tinygmm.project.offline import offline_data_dir, offline_platform_version

USB_ID = re.compile(r"^[0-9A-F]{4}:[0-9A-F]{4}$")


# The boards issue 14 asks for, with their PlatformIO board ids, and the CPU classes run in QEMU.
ISSUE_BOARDS = {"nano": "nanoatmega328new", "mega2560": "megaatmega2560", "esp32-s3": "esp32-s3-devkitc-1",
                "esp32-c3": "esp32-c3-devkitm-1", "nano33ble": "nano33ble", "pico": "pico", "teensy41": "teensy41",
                "nucleo_f401re": "nucleo_f401re"}
CPU_CLASSES = {"cortex-m4f": "mps2-an386", "cortex-m7": "mps2-an500", "cortex-m0": "microbit", "rv32imc": "riscv32-virt"}


def test_required_boards_and_limits():
    assert {"uno", "esp32dev", "native"} <= set(BOARDS)
    assert {env: BOARDS[env].board for env in ISSUE_BOARDS} == ISSUE_BOARDS
    assert {env: BOARDS[env].board for env in CPU_CLASSES} == CPU_CLASSES
    uno, esp, native = BOARDS["uno"], BOARDS["esp32dev"], BOARDS["native"]
    assert (uno.flash, uno.ram, uno.rx_buffer) == (32256, 2048, 255)  # the ring keeps one slot free
    assert (esp.flash, esp.ram, esp.rx_buffer) == (1310720, 327680, 256)
    assert (native.flash, native.ram, native.board, native.framework) == (None, None, None, None)
    assert all(b.baud == 115200 for b in BOARDS.values())


@pytest.mark.parametrize("name", list(BOARDS))
def test_entry_is_consistent(name):
    b = BOARDS[name]
    assert b.env == name and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name)
    spec = PackageSpec(b.platform)
    assert spec.name == b.platform_name and spec.owner is None
    if b.embedded:
        # Embedded envs pin one exact release, so a project builds the same next year.
        assert b.platform_version is not None
        assert str(semantic_version.Version(b.platform_version)) == b.platform_version
        assert b.framework == (None if b.stand_in else "arduino") and b.flash and b.ram
    assert b.rx_buffer >= 63 and b.pointer_bytes in (2, 4, 8)
    assert all(USB_ID.match(k) for k in b.usb_ids)
    # every board says where its CPU class runs (or why not here), and names a known emulator
    if b.on_a_port:
        assert b.class_emulator in boards.emulators() and b.usb_ids
    if b.stand_in:  # a CPU class: no port, built offline, run in its own exact emulator
        assert not b.usb_ids and b.toolchain is not None and b.class_emulator == b.emulators[0].name
        assert all(e.timed and e.transport == "qemu-system" for e in b.emulators)


def test_avr_receive_rings_keep_8_bit_indices():
    """The AVR core's receive ring indices are uint8_t up to 256 bytes; above, uint16_t, which it
    updates a byte at a time with no guard against its receive interrupt (HardwareSerial.h;
    arduino/Arduino#2405): a byte is dropped now and then, as a 512-byte ring did in CI."""
    avr = [b for b in BOARDS.values() if b.platform_name == "atmelavr"]
    assert {b.env for b in avr} >= {"uno", "nano", "mega2560"}
    for b in avr:
        size = [int(f.split("=")[1]) for f in b.build_flags if f.startswith("-DSERIAL_RX_BUFFER_SIZE=")]
        assert size and size[0] <= 256 and size[0] & (size[0] - 1) == 0, b.env  # a power of two: % is a mask
        assert b.rx_buffer == size[0] - 1, b.env


def test_offline_platforms_satisfy_the_pins():
    for b in BOARDS.values():
        folder = offline_data_dir() / "platforms" / b.platform_name
        if b.offline:
            assert not folder.exists()
            continue
        version = semantic_version.Version(offline_platform_version(b.platform_name))
        assert b.platform_version is None or version in PackageSpec(b.platform).requirements
        assert version.build == ("tinygmm", "offline")  # never mistaken for the registry's release


def test_offline_board_manifest_matches_table():
    uno = json.loads((offline_data_dir() / "platforms" / "atmelavr" / "boards" / "uno.json").read_text())
    assert uno["upload"]["maximum_size"] == BOARDS["uno"].flash
    assert uno["upload"]["maximum_ram_size"] == BOARDS["uno"].ram
    assert uno["upload"]["speed"] == BOARDS["uno"].baud
    for b in BOARDS.values():  # every board the offline core builds has its manifest, with the table's limits
        if b.embedded and b.toolchain is not None:
            manifest = offline_data_dir() / "platforms" / b.platform_name / "boards" / f"{b.board}.json"
            upload = json.loads(manifest.read_text())["upload"]
            assert (upload["maximum_size"], upload["maximum_ram_size"]) == (b.flash, b.ram), b.env


def test_usb_lookup():
    assert [b.env for b, _ in boards_for_usb_id(0x2341, 0x0043)] == ["uno"]
    assert {b.env for b, _ in boards_for_usb_id(0x1A86, 0x7523)} == {"uno", "nano", "mega2560", "esp32dev", "esp32-s3",
                                                                      "esp32-c3"}  # CH340 clones
    assert [b.env for b, _ in boards_for_usb_id(0x303A, 0x1001)] == ["esp32dev", "esp32-s3", "esp32-c3"]
    assert [b.env for b, _ in boards_for_usb_id(0x2341, 0x005A)] == ["nano33ble"]
    assert [b.env for b, _ in boards_for_usb_id(0x2E8A, 0x00C0)] == ["pico"]
    assert [b.env for b, _ in boards_for_usb_id(0x16C0, 0x0483)] == ["teensy41"]
    assert [b.env for b, _ in boards_for_usb_id(0x0483, 0x374B)] == ["nucleo_f401re"]
    assert [b.env for b, _ in boards_for_usb_id(0x2341, 0x0042)] == ["mega2560"]
    assert boards_for_usb_id(0x1234, 0x5678) == []


def test_unknown_board():
    with pytest.raises(TinyGMMError, match="unknown board 'mega'.*uno, nano, mega2560, esp32dev, .*, native"):
        get_board("mega")


def test_missing_debian_packages_are_named(monkeypatch, tmp_path):
    uno = BOARDS["uno"]
    needs = tuple((str(tmp_path / "absent.h") if need.startswith("/") else need, pkg) for need, pkg in uno.toolchain.needs)
    monkeypatch.setitem(BOARDS, "uno", dataclasses.replace(uno, toolchain=dataclasses.replace(uno.toolchain, needs=needs)))
    real_which = boards.shutil.which
    monkeypatch.setattr(boards.shutil, "which", lambda name: None if name.startswith("avr-") else real_which(name))
    assert BOARDS["uno"].missing_tools()[:2] == ["gcc-avr", "binutils-avr"]
    assert "arduino-core-avr" in BOARDS["uno"].missing_tools()
    assert not BOARDS["uno"].buildable_here() and BOARDS["native"].buildable_here()
    assert "no: apt-get install gcc-avr binutils-avr" in "\n".join(format_boards())


def test_cli_boards(capsys):
    assert main(["boards"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(BOARDS)
    uno = next(line for line in lines if line.startswith("uno "))
    assert "32256" in uno and "2048" in uno and "atmelavr @ 5.1.0" in uno
    esp = next(line for line in lines if line.startswith("esp32dev "))
    assert "1310720" in esp and "327680" in esp and "no: no Xtensa" in esp
    # every board's CPU-class emulator, and whether it builds here
    assert "CPU class in" in lines[0]
    for env, emulator in {"esp32dev": "cortex-m4f", "esp32-s3": "cortex-m4f", "nano33ble": "cortex-m4f",
                          "nucleo_f401re": "cortex-m4f", "teensy41": "cortex-m7", "pico": "cortex-m0",
                          "esp32-c3": "rv32imc", "uno": "simavr", "nano": "simavr-nano",
                          "cortex-m0": "cortex-m0"}.items():
        line = next(line for line in lines if line.startswith(env + " "))
        assert f" {emulator} " in line, line


def test_what_a_cpu_class_run_proves():
    scope = boards.run_scope(BOARDS["cortex-m4f"])
    assert "instruction set, float ABI and compiler, bit for bit" in scope
    assert "not a board's peripherals, Arduino core, serial link or clock" in scope
    assert "nano33ble" in scope and "nucleo_f401re" in scope and "esp32-s3" in scope
    assert boards.run_scope(BOARDS["uno"]) == ""
