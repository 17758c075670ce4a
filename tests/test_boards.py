"""The board table: consistent limits, exact platform pins, USB ids, and `tinygmm boards`."""
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


def test_required_boards_and_limits():
    assert {"uno", "esp32dev", "native"} <= set(BOARDS)
    uno, esp, native = BOARDS["uno"], BOARDS["esp32dev"], BOARDS["native"]
    assert (uno.flash, uno.ram, uno.rx_buffer) == (32256, 2048, 511)  # the ring keeps one slot free
    assert (esp.flash, esp.ram, esp.rx_buffer) == (1310720, 327680, 256)
    assert (native.flash, native.ram, native.board, native.framework) == (None, None, None, None)
    assert all(b.baud == 115200 for b in BOARDS.values())


@pytest.mark.parametrize("name", list(BOARDS))
def test_entry_is_consistent(name):
    b = BOARDS[name]
    assert b.env == name and re.fullmatch(r"[a-z0-9_]+", name)
    spec = PackageSpec(b.platform)
    assert spec.name == b.platform_name and spec.owner is None
    if b.embedded:
        # Embedded envs pin one exact release, so a project builds the same next year.
        assert b.platform_version is not None
        assert str(semantic_version.Version(b.platform_version)) == b.platform_version
        assert b.framework == "arduino" and b.flash and b.ram
    assert b.rx_buffer >= 63 and b.pointer_bytes in (2, 4, 8)
    assert all(USB_ID.match(k) for k in b.usb_ids)


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


def test_usb_lookup():
    assert [b.env for b, _ in boards_for_usb_id(0x2341, 0x0043)] == ["uno"]
    assert {b.env for b, _ in boards_for_usb_id(0x1A86, 0x7523)} == {"uno", "esp32dev"}  # CH340 clones
    assert [b.env for b, _ in boards_for_usb_id(0x303A, 0x1001)] == ["esp32dev"]
    assert boards_for_usb_id(0x1234, 0x5678) == []


def test_unknown_board():
    with pytest.raises(TinyGMMError, match="unknown board 'mega'.*uno, esp32dev, native"):
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
