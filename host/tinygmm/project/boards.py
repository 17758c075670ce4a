"""The board table: one entry per board a project can be exported for (adding a board is one entry).

Each entry says how PlatformIO builds for the board, how much flash and RAM a program may use,
how many bytes its serial receive buffer holds (the most the host may have in flight), and which
USB VID:PIDs it usually shows up with. Other modules read limits from here, never their own copy.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyGMMError

DEFAULT_BAUD = 115200

# Debian packages the offline uno build wraps (see pio.provision_offline).
AVR_DEBIAN_PACKAGES = ("gcc-avr", "avr-libc", "binutils-avr", "arduino-core-avr")
ARDUINO_AVR_DIR = Path("/usr/share/arduino/hardware/arduino/avr")

# USB bridges boards usually sit behind, as "VID:PID" (upper-case hex) -> what it is.
USB_ARDUINO_UNO = {"2341:0043": "Arduino Uno R3", "2341:0001": "Arduino Uno (R1/R2)",
                   "2A03:0043": "Arduino Uno R3 (arduino.org)"}
USB_CH340 = {"1A86:7523": "CH340 USB-serial", "1A86:55D4": "CH9102 USB-serial"}
USB_CP210X = {"10C4:EA60": "CP210x USB-serial"}
USB_FTDI = {"0403:6001": "FTDI FT232R USB-serial", "0403:6015": "FTDI FT231X USB-serial"}
USB_ESPRESSIF = {"303A:1001": "ESP32-S3/C3 native USB (JTAG/serial)"}


@dataclass(frozen=True)
class Board:
    env: str  # the [env:NAME] in platformio.ini and the name users type
    title: str
    platform: str  # platformio.ini `platform =` value; embedded boards pin an exact version
    board: str | None  # PlatformIO board id (None: native has none)
    framework: str | None  # "arduino", or None for a plain host program
    flash: int | None  # bytes a program may use (None: no limit worth checking)
    ram: int | None  # bytes of static RAM + stack (None: no limit worth checking)
    rx_buffer: int  # serial receive buffer: the most bytes the host may have in flight
    pointer_bytes: int  # sizeof(void *) on the target (struct layout, memory estimates)
    usb_ids: dict[str, str]  # VID:PID -> description, for `tinygmm ports` / --port auto
    debian_packages: tuple[str, ...] = ()  # what the offline core wraps for this board
    baud: int = DEFAULT_BAUD
    offline: str = ""  # why it cannot be built from Debian/PyPI alone ("" when it can)

    @property
    def embedded(self) -> bool:
        return self.board is not None

    @property
    def platform_name(self) -> str:
        """'atmelavr' from 'atmelavr @ 5.1.0'."""
        return self.platform.split("@", 1)[0].strip().rsplit("/", 1)[-1]

    @property
    def platform_version(self) -> str | None:
        """'5.1.0' from 'atmelavr @ 5.1.0' (None when not pinned)."""
        return self.platform.split("@", 1)[1].strip() if "@" in self.platform else None

    def missing_tools(self) -> list[str]:
        """Debian packages this board's offline build needs that are not installed here."""
        if self.env != "uno":
            return []
        missing = [pkg for pkg, tool in (("gcc-avr", "avr-gcc"), ("binutils-avr", "avr-objcopy"))
                   if shutil.which(tool) is None]
        if not Path("/usr/lib/avr/include/avr/io.h").is_file():
            missing.append("avr-libc")
        if not (ARDUINO_AVR_DIR / "cores" / "arduino" / "Arduino.h").is_file():
            missing.append("arduino-core-avr")
        return missing

    def buildable_here(self) -> bool:
        """True if `pio run -e ENV` can build it with the offline core on this machine."""
        return not self.offline and not self.missing_tools()

    def limits(self) -> str:
        if self.flash is None:
            return "no flash/RAM limit (host program)"
        return f"flash {self.flash} B, RAM {self.ram} B"


# Sources of the numbers:
# uno: 32768 B flash less the 512-byte Optiboot bootloader, 2 KB SRAM (Arduino's boards.txt:
#   uno.upload.maximum_size=32256, maximum_data_size=2048); HardwareSerial.h SERIAL_RX_BUFFER_SIZE 64,
#   of which the ring keeps one slot empty: 63 bytes may be in flight (a 64th is dropped).
# esp32dev: the default partition table's 1.25 MB app slot and 320 KB DRAM (PlatformIO's
#   esp32dev.json maximum_size/maximum_ram_size); arduino-esp32 HardwareSerial's default 256-byte RX buffer.
# native: a host program reading stdin; 4096 is the size of the line buffer the native glue reads into.
# Pins: the PlatformIO platform releases current when this table was written (atmelavr 5.1.0 ships
#   avr-gcc 7.3.0 and framework-arduino-avr 5.2.0; espressif32 6.12.0 ships arduino-esp32 2.0.17).
#   The pin carries no owner ("atmelavr", not "platformio/atmelavr") so that an offline core's own
#   atmelavr 5.1.0+tinygmm.offline satisfies it; with network PlatformIO resolves the name in its
#   registry to platformio/atmelavr 5.1.0.
BOARDS: dict[str, Board] = {
    b.env: b
    for b in (
        Board(
            env="uno", title="Arduino Uno (ATmega328P, 16 MHz)", platform="atmelavr @ 5.1.0", board="uno",
            framework="arduino", flash=32256, ram=2048, rx_buffer=63, pointer_bytes=2,
            usb_ids={**USB_ARDUINO_UNO, **USB_CH340, **USB_FTDI},
            debian_packages=AVR_DEBIAN_PACKAGES,
        ),
        Board(
            env="esp32dev", title="Espressif ESP32 Dev Module", platform="espressif32 @ 6.12.0", board="esp32dev",
            framework="arduino", flash=1310720, ram=327680, rx_buffer=256, pointer_bytes=4,
            usb_ids={**USB_CP210X, **USB_CH340, **USB_FTDI, **USB_ESPRESSIF},
            offline="no Xtensa ESP32 toolchain in Debian or on PyPI: needs PlatformIO's registry",
        ),
        Board(
            env="native", title="this computer (stdin/stdout)", platform="native", board=None,
            framework=None, flash=None, ram=None, rx_buffer=4096, pointer_bytes=8, usb_ids={},
        ),
    )
}


def get_board(name: str) -> Board:
    """The board called ``name``, or a TinyGMMError listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TinyGMMError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None


def boards_for_usb_id(vid: int, pid: int) -> list[tuple[Board, str]]:
    """Boards that usually appear with this USB VID:PID, with the bridge's description."""
    key = f"{vid:04X}:{pid:04X}"
    return [(b, b.usb_ids[key]) for b in BOARDS.values() if key in b.usb_ids]


def format_boards() -> list[str]:
    """The table `tinygmm boards` prints: a header, then one line per board."""
    rows = [("board", "flash B", "RAM B", "RX B", "platform", "builds offline here")]
    for b in BOARDS.values():
        where = "yes" if b.buildable_here() else "no: " + (
            b.offline or "apt-get install " + " ".join(b.missing_tools()))
        rows.append((b.env, "-" if b.flash is None else str(b.flash), "-" if b.ram is None else str(b.ram),
                     str(b.rx_buffer), b.platform, where))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:4], widths[1:4])),
                       r[4].ljust(widths[4]), r[5]]) for r in rows]
