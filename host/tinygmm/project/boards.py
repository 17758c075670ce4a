"""The board table: everything tinygmm knows about a board is its one entry here (longer than 500
lines because the table is data: one entry per board, beside them the sources of their numbers).

An entry says how PlatformIO builds for the board (platform, board id, framework, glue sources and
flags, the build artifact), what a program may use (flash, RAM) and what the core costs there, its
serial link (receive buffer, baud, USB ids), its bootloader (how an uploader talks to it, and how
an emulator gets it), the emulators that run its firmware, the offline toolchain that builds and
uploads it from Debian packages, its pointer size and the clock its bench reads.
No other module names a board or an emulator: adding a board is adding an entry (a test does so
in-process and sees export, the memory check, build and connect take it up).

Besides the boards people flash, the table holds CPU classes (``stand_in``): the same protocol
firmware on a small bare-metal glue for a QEMU machine with the instruction set and float ABI of a
family of boards (Cortex-M4F, Cortex-M7, Cortex-M0, RV32IMC), built by the offline core and run
with exact instruction counts. A board whose own firmware cannot run here names its class
(``cpu_class``): a run there proves the instruction set, float ABI and compiler, bit for bit, not
the board's peripherals, Arduino core or clock.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import TinyGMMError

# The firmware's serial speed (TINYGMM_BAUD in the generated platformio.ini, monitor and test speed).
DEFAULT_BAUD = 115200

# USB bridges boards usually sit behind, as "VID:PID" (upper-case hex) -> what it is.
USB_ARDUINO_UNO = {"2341:0043": "Arduino Uno R3", "2341:0001": "Arduino Uno (R1/R2)",
                   "2A03:0043": "Arduino Uno R3 (arduino.org)"}
USB_CH340 = {"1A86:7523": "CH340 USB-serial", "1A86:55D4": "CH9102 USB-serial"}
USB_CP210X = {"10C4:EA60": "CP210x USB-serial"}
USB_FTDI = {"0403:6001": "FTDI FT232R USB-serial", "0403:6015": "FTDI FT231X USB-serial"}
USB_ESPRESSIF = {"303A:1001": "ESP32-S3/C3 native USB (JTAG/serial)"}
USB_ARDUINO_MEGA = {"2341:0042": "Arduino Mega 2560 R3", "2341:0010": "Arduino Mega 2560",
                    "2A03:0042": "Arduino Mega 2560 R3 (arduino.org)"}
USB_NANO33BLE = {"2341:005A": "Arduino Nano 33 BLE", "2341:805A": "Arduino Nano 33 BLE"}
USB_PICO = {"2E8A:00C0": "Raspberry Pi Pico (Arduino mbed core)", "2E8A:000A": "Raspberry Pi Pico (Arduino-Pico core)"}
USB_TEENSY = {"16C0:0483": "Teensy USB serial"}
USB_STLINK = {"0483:374B": "ST-LINK/V2-1 virtual COM port (Nucleo-64)", "0483:374E": "STLINK-V3 virtual COM port"}


@dataclass(frozen=True)
class CoreCost:
    """What the inference core and the protocol firmware around it cost on a board."""

    flash: int  # the core with all five entry points, float library and expf/logf included
    stack: int  # deepest call chain of the core, without the 4*D input and 8*K first-row buffers
    measured: bool  # False: an estimate (no toolchain to measure with)
    firmware_flash: int = 0  # the serial-protocol firmware around the core (protocol, framework, strtod)
    firmware_ram: int = 0  # its static RAM (line buffer, serial rings, framework) and its own stack


@dataclass(frozen=True)
class Emulator:
    """A way to run a board's firmware on this machine, named as users type it after --emulator."""

    name: str
    transport: str  # the link transport that runs it (link.emulators.TRANSPORTS)
    packages: tuple[str, ...]  # Debian packages it needs
    timed: bool  # the device's own clock is exact there, so on-device timings mean something
    options: Mapping[str, object] = field(default_factory=dict)  # passed to the transport (CPU, clock)
    flashable: bool = False  # runs the board's bootloader, so firmware is uploaded into it (simavr only)


@dataclass(frozen=True)
class LinkedPackage:
    """A PlatformIO package the offline core makes of links to files a Debian package installed."""

    name: str  # PlatformIO package name (toolchain-atmelavr)
    source: Path  # the Debian folder linked from
    entries: tuple[str, ...]  # names in ``source`` to link (glob patterns; an absolute path: that file)
    into: str = ""  # sub-folder of the package the links go in ("bin")
    # "gcc:PROGRAM" (gcc -dumpversion), "avrdude:PROGRAM" (its "Version X.Y") or "platform.txt"
    # (the Arduino core's version)
    version_from: str = ""


@dataclass(frozen=True)
class Toolchain:
    """How the offline PlatformIO core builds a board from Debian packages alone."""

    packages: tuple[str, ...]  # Debian packages
    needs: tuple[tuple[str, str], ...] = ()  # (program on PATH or absolute file, Debian package providing it)
    platform: str = ""  # the offline platform in firmware/pio-offline/platforms ("" : none needed)
    linked: tuple[LinkedPackage, ...] = ()
    uploader: tuple[tuple[str, str], ...] = ()  # as ``needs``, for uploads only (a build does without)

    def missing(self) -> list[str]:
        """Debian packages this toolchain needs to build that are not installed here (each named once)."""
        return _missing(self.needs)

    def missing_uploader(self) -> list[str]:
        """Debian packages an upload needs that are not installed here."""
        return _missing(self.uploader)


def _missing(needs: tuple[tuple[str, str], ...]) -> list[str]:
    out: list[str] = []
    for need, package in needs:
        present = Path(need).is_file() if need.startswith("/") else shutil.which(need) is not None
        if not present and package not in out:
            out.append(package)
    return out


@dataclass(frozen=True)
class Bootloader:
    """The serial bootloader a board comes with: how its uploader talks to it (PlatformIO's
    upload_protocol and upload_speed, avrdude's part), where it sits, and how an emulator gets it.

    An emulated board is given the image built from ``source`` (project/build.py bootloader_image),
    checked to fit the boot section as a chip would."""

    name: str
    protocol: str  # avrdude -c
    part: str  # avrdude -p
    speed: int  # avrdude -b: the bootloader's baud, which is not the firmware's
    address: int  # start of the boot section in bytes: the reset vector (BOOTRST fuse)
    size: int  # bytes of the boot section; the program gets the flash below ``address``
    source: Path  # its C source, from a Debian package
    package: str  # the Debian package holding ``source``
    cflags: tuple[str, ...]  # compiler flags for this board (avr-gcc)
    ldflags: tuple[str, ...]  # linker flags (section addresses)
    objcopy: tuple[str, ...]  # avr-objcopy flags that make its Intel hex


@dataclass(frozen=True)
class Board:
    env: str  # the [env:NAME] in platformio.ini and the name users type
    title: str
    platform: str  # platformio.ini `platform =` value; embedded boards pin an exact version
    board: str | None  # PlatformIO board id (None: native has none)
    framework: str | None  # "arduino", or None for a plain host program
    glue: str  # the firmware/src/ folder holding this board's main program
    flash: int | None  # bytes a program may use (None: no limit worth checking)
    ram: int | None  # bytes of static RAM + stack (None: no limit worth checking)
    core: CoreCost
    rx_buffer: int  # serial receive buffer: the most bytes the host may have in flight
    pointer_bytes: int  # sizeof(void *) on the target (struct layout, memory estimates)
    artifact: str  # what `pio run -e ENV` makes, relative to the project
    usb_ids: Mapping[str, str] = field(default_factory=dict)  # VID:PID -> description, for `tinygmm ports`
    build_flags: tuple[str, ...] = ()
    baud: int = DEFAULT_BAUD
    emulators: tuple[Emulator, ...] = ()
    toolchain: Toolchain | None = None  # None: cannot be built offline here (``offline`` says why)
    bootloader: Bootloader | None = None  # None: uploads go another way (or it is no board)
    offline: str = ""  # why it cannot be built from Debian/PyPI alone ("" when it can)
    clock_hz: int | None = None  # CPU clock the device's cycle counts are in (None: it reports time)
    cpu_class: str = ""  # the emulator of the CPU class that runs this board's instruction set and float ABI
    stand_in: bool = False  # a CPU class, not a board: no port; built by the offline core, run in its emulators

    @property
    def embedded(self) -> bool:
        return self.board is not None

    @property
    def class_emulator(self) -> str:
        """The emulator that runs this board's CPU class: its own firmware's exact emulator where it has
        one (the AVR boards in simavr, a CPU class in QEMU), else ``cpu_class`` ("": none here)."""
        own = [e.name for e in self.emulators if e.timed]
        return own[0] if own and self.embedded else self.cpu_class

    @property
    def on_a_port(self) -> bool:
        """Whether its firmware runs on a board found on a serial port (not native, not a CPU class)."""
        return self.embedded and not self.stand_in

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
        return self.toolchain.missing() if self.toolchain is not None else []

    def buildable_here(self) -> bool:
        """True if `pio run -e ENV` can build it with the offline core on this machine."""
        return self.toolchain is not None and not self.missing_tools()

    def why_not_buildable(self) -> str:
        """'' when it builds here, else the reason and what to install."""
        if self.toolchain is None:
            return self.offline or "no offline toolchain"
        missing = self.missing_tools()
        return f"apt-get install {' '.join(missing)}" if missing else ""

    def limits(self) -> str:
        if self.flash is None:
            return "no flash/RAM limit (host program)"
        return f"flash {self.flash} B, RAM {self.ram} B"


# -- the entries ------------------------------------------------------------------------------

ARDUINO_AVR_DIR = Path("/usr/share/arduino/hardware/arduino/avr")
OPTIBOOT_DIR = ARDUINO_AVR_DIR / "bootloaders" / "optiboot"
AVR_TOOLCHAIN = Toolchain(
    packages=("gcc-avr", "avr-libc", "binutils-avr", "arduino-core-avr"),
    needs=(("avr-gcc", "gcc-avr"), ("avr-objcopy", "binutils-avr"), ("/usr/lib/avr/include/avr/io.h", "avr-libc"),
           (str(ARDUINO_AVR_DIR / "cores" / "arduino" / "Arduino.h"), "arduino-core-avr")),
    platform="atmelavr",
    linked=(
        # Linked even when missing, so that installing gcc-avr later needs no re-provisioning.
        LinkedPackage("toolchain-atmelavr", Path("/usr/bin"),
                      ("avr-gcc", "avr-g++", "avr-c++", "avr-cpp", "avr-gcc-ar", "avr-gcc-nm", "avr-gcc-ranlib",
                       "avr-ar", "avr-as", "avr-ld", "avr-nm", "avr-objcopy", "avr-objdump", "avr-ranlib",
                       "avr-readelf", "avr-size", "avr-strip", "avr-addr2line", "avr-c++filt", "avr-*"),
                      into="bin", version_from="gcc:avr-gcc"),
        LinkedPackage("framework-arduino-avr", ARDUINO_AVR_DIR,
                      ("cores", "variants", "libraries", "platform.txt", "boards.txt"), version_from="platform.txt"),
        # PlatformIO's tool-avrdude holds the program and its configuration side by side.
        LinkedPackage("tool-avrdude", Path("/usr/bin"), ("avrdude", "/etc/avrdude.conf"), version_from="avrdude:avrdude"),
    ),
    uploader=(("avrdude", "avrdude"),),
)
# The Uno's Optiboot 4.4, as the Makefile in its folder builds it ("atmega328": LED_START_FLASHES=3,
# BAUD_RATE=115200, .text at 0x7e00, .version at 0x7ffe) with two flags more. Debian 12's gcc-avr
# 5.4 makes it 532 bytes, and Debian's optiboot_atmega328.hex is that build: code runs past the end
# of the 32 KB flash (0x8000-0x8013: appStart, which disarms the watchdog and starts the program)
# and the version word at 0x7ffe overwrites an instruction. A chip cannot hold it (avrdude refuses
# addresses past the flash; the emulator refuses the image). -fno-tree-scev-cprop
# -fno-move-loop-invariants bring the same source to 500 bytes, the size of Arduino's own build.
UNO_OPTIBOOT = Bootloader(
    name="Optiboot 4.4", protocol="arduino", part="atmega328p", speed=115200, address=0x7E00, size=512,
    source=OPTIBOOT_DIR / "optiboot.c", package="arduino-core-avr",
    cflags=("-Os", "-fno-inline-small-functions", "-fno-split-wide-types", "-mrelax", "-fno-tree-scev-cprop",
            "-fno-move-loop-invariants", "-mmcu=atmega328p", "-DF_CPU=16000000L", "-DLED_START_FLASHES=3",
            "-DBAUD_RATE=115200"),
    ldflags=("-Wl,--section-start=.text=0x7e00", "-Wl,--section-start=.version=0x7ffe", "-Wl,--relax",
             "-Wl,--gc-sections", "-nostartfiles", "-nostdlib"),
    objcopy=("-j", ".text", "-j", ".data", "-j", ".version", "--set-section-flags", ".version=alloc,load"),
)
HOST_TOOLCHAIN = Toolchain(packages=("gcc", "g++"), needs=(("gcc", "gcc"), ("g++", "g++")), platform="native")
# The Uno's ATmega328P: simavr counts its cycles exactly; QEMU's AVR has no cycle-accurate timers.
UNO_EMULATORS = (
    Emulator("simavr", "simavr", ("simavr", "libsimavr-dev"), timed=True,
             options=MappingProxyType({"mcu": "atmega328p", "frequency": 16_000_000}), flashable=True),
    Emulator("qemu", "qemu", ("qemu-system-misc",), timed=False, options=MappingProxyType({"machine": "uno"})),
)

# Debian's cross toolchains for the CPU classes run in QEMU (one offline platform, tinygmm-qemu,
# whose board manifests pick the toolchain, CPU flags, C library and linker script).
QEMU_PLATFORM = "tinygmm-qemu @ 1.0.0"  # tinygmm's own platform (firmware/pio-offline), in no registry


def _cross_toolchain(triplet: str, libc: str, specs: str, package: str) -> Toolchain:
    """Debian's gcc-TRIPLET and binutils-TRIPLET with a C library (its package and the specs file
    the board manifest names), linked into the offline core as PlatformIO's ``package``."""
    gcc, binutils = f"gcc-{triplet}", f"binutils-{triplet}"
    return Toolchain(
        packages=(gcc, binutils, libc),
        needs=((f"{triplet}-gcc", gcc), (f"{triplet}-size", binutils), (specs, libc)),
        platform="tinygmm-qemu",
        linked=(LinkedPackage(package, Path("/usr/bin"), (f"{triplet}-*",), into="bin",
                              version_from=f"gcc:{triplet}-gcc"),),
    )


ARM_TOOLCHAIN = _cross_toolchain("arm-none-eabi", "libnewlib-arm-none-eabi",
                                 "/usr/lib/arm-none-eabi/newlib/nosys.specs", "toolchain-gccarmnoneeabi")
RISCV_TOOLCHAIN = _cross_toolchain("riscv64-unknown-elf", "picolibc-riscv64-unknown-elf",
                                   "/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs", "toolchain-riscv")


def _qemu(name: str, qemu: str, machine: str, shift: int, *extra: str) -> Emulator:
    """A CPU class's QEMU machine: -icount shift=SHIFT makes each instruction last 2**SHIFT ns of
    virtual time, which the glue's counter (firmware/src/bare) turns back into instructions."""
    package = "qemu-system-arm" if qemu == "qemu-system-arm" else "qemu-system-misc"
    return Emulator(name, "qemu-system", (package,), timed=True, options=MappingProxyType(
        {"qemu": qemu, "machine": machine, "icount_shift": shift, "extra_args": extra}))


# The AVR boards' own firmware in simavr, like the Uno's (simavr has the ATmega2560 too).
def _simavr(name: str, mcu: str) -> Emulator:
    return Emulator(name, "simavr", ("simavr", "libsimavr-dev"), timed=True,
                    options=MappingProxyType({"mcu": mcu, "frequency": 16_000_000}))


# The AVR boards' serial receive ring, filled by the UART interrupt however long the sketch computes
# or blocks writing a reply: the AVR core's HardwareSerial.h takes SERIAL_RX_BUFFER_SIZE from the
# build (default 64). A power of two, because the core wraps its indices with %, a ~200-cycle
# division per byte otherwise. No more than 256: above, its indices are uint16_t, which the 8-bit
# CPU stores a byte at a time, and the core has no atomicity guards for them (HardwareSerial.h says
# so; arduino/Arduino#2405): an interrupt between the two stores of read()'s new tail can take the
# ring for full and drop a byte. A 512-byte ring did so in CI. The host cuts batch lines to fit the
# ring (link.client.vectors_per_line): 61% of the raw payload limit for the demo's batch predict
# (bench/link_throughput.py). It replaces the glue's polled 352-byte queue, which a vector slower
# than 5.5 ms (63 bytes at 115200 baud) overran.
UNO_RX_RING = 256
# stm32duino's ring (its default is 64): a 32-bit CPU loads and stores 16-bit indices whole.
STM32_RX_RING = 512

# Sources of the numbers:
# uno: 32768 B flash less the 512-byte Optiboot bootloader (UNO_OPTIBOOT), 2 KB SRAM (Arduino's boards.txt:
#   uno.upload.maximum_size=32256, maximum_data_size=2048); the ring keeps one slot empty to tell
#   full from empty: UNO_RX_RING - 1 bytes may be in flight (one more is dropped).
#   Core cost: avr-gcc 5.4 -Os, device.memory.measure_avr's core (avr_probe.c around the model):
#   7045 B (D=1) to 7609 B (D=16; a constant D unrolls more; the full-covariance loops have their
#   own out-of-line copies for speed, and tied predict its linear score, ~350 B), so 7650 covers
#   them; stack from -fstack-usage along score -> argmax -> rows, 3 return addresses and
#   expf/logf: 198-200 B beyond the 4*D + 8*K buffers. Firmware around the core: the exported uno
#   project of the demo model built with the offline core (avr-gcc 5.4, LTO) takes 19070 B flash
#   and 967 B static RAM (protocol line buffer 512, receive ring 256, transmit ring), against
#   model + core = 7751 B and no static RAM: 11319 B more flash (11400 kept as margin; 1334 B of
#   it human mode, ~770 B of that the exact decimal writer), and 967 B of RAM plus ~100 B of
#   protocol stack (~175 B writing a decimal for a person, after the core's stack is released).
# esp32dev: the default partition table's 1.25 MB app slot and 320 KB DRAM (PlatformIO's
#   esp32dev.json maximum_size/maximum_ram_size); arduino-esp32 HardwareSerial's default 256-byte
#   RX buffer. No Xtensa toolchain here: Xtensa code is about as dense as AVR's on this code and
#   needs no soft-float library, so the Uno's core figures are a generous guess until measured; the
#   firmware figures are those of an arduino-esp32 2.0 sketch using Serial (about 270 KB flash,
#   21 KB RAM), rounded up.
# native: a host program reading stdin; 4096 is the size of the line buffer the native glue reads into.
# nano: the Arduino Nano with Optiboot (PlatformIO's nanoatmega328new, Arduino's boards.txt
#   nano.menu.cpu.atmega328: maximum_size=30720 (a 2 KB bootloader section is reserved even for
#   Optiboot), maximum_data_size=2048, upload 115200); the Uno's MCU, core, ring and costs.
#   USB: FTDI FT232RL on the original, CH340 on clones.
# mega2560: boards.txt mega.menu.cpu.atmega2560 / PlatformIO's megaatmega2560.json: 253952 B
#   flash (256 KB less the 8 KB stk500v2 bootloader), 8 KB SRAM; the same AVR core and ring as
#   the Uno. USB ids from boards.txt (mega.vid/pid: 2341:0010, 2341:0042, 2A03:0042).
# esp32-s3: esp32-s3-devkitc-1.json (PlatformIO; 8 MB flash, board_build.partitions
#   default_8MB.csv): app0 0x330000 = 3342336 B, maximum_ram_size 327680. esp32-c3:
#   esp32-c3-devkitm-1.json: 4 MB flash, default.csv app0 0x140000 = 1310720 B, 327680 B RAM.
#   Both: arduino-esp32's HardwareSerial with the glue's 256-byte setRxBufferSize, as esp32dev;
#   USB ids: the devkits' CP210x bridge, the chips' native USB-serial (303A:1001), CH340 clones.
# nano33ble: nano33ble.json (nordicnrf52; Arduino mbed core): 983040 B flash, 262144 B RAM,
#   hwids 2341:005A and 2341:805A. pico: pico.json (raspberrypi; Arduino mbed core): 2097152 B
#   flash, 270336 B RAM, hwid 2E8A:00C0 (2E8A:000A is the Arduino-Pico core's). Both cores' Serial
#   is USB CDC through ArduinoCore-mbed's PluggableUSBSerial with a RingBufferN<256>, refilled from
#   the USB endpoint, which holds the host back (NAK) when it is full: 256 bytes.
# teensy41: teensy41.json (teensy): 8126464 B flash, 524288 B RAM; Serial is USB CDC (16C0:0483),
#   flow-controlled by the endpoint like mbed's; the glue reports 256 as for mbed.
# nucleo_f401re: nucleo_f401re.json (ststm32; stm32duino core): 524288 B flash, 98304 B RAM;
#   Serial is USART2 behind the ST-LINK/V2-1 virtual COM port (0483:374B; STLINK-V3: 0483:374E),
#   its ring SERIAL_RX_BUFFER_SIZE (stm32duino's HardwareSerial.h, default 64) set to STM32_RX_RING,
#   one slot kept empty.
# Core costs of boards with no toolchain here are estimates: the CPU class's measured figures
#   (same instruction set and float ABI, Debian's gcc 12) with the Arduino core's Serial and
#   start-up on top (arduino-esp32 2.0: ~270 KB; mbed cores: ~80-90 KB; Teensyduino: ~25 KB;
#   stm32duino: ~20 KB, from those cores' empty Serial sketches), rounded up.
# CPU classes (stand_in): flash/RAM are the QEMU machine's as the glue's linker scripts give them
#   (mps2: 4 MB SSRAM1 at 0 as flash, 4 MB SSRAM2/3 as RAM; microbit: nRF51822's 256 KB flash,
#   16 KB RAM; virt: 4 + 4 MB of its RAM at 0x80000000); the receive buffer is the glue's: QEMU's
#   UARTs take a byte only when the last was read, so nothing in flight is lost (4096 as native).
#   Core and firmware costs: measured by building the demo project's env (tests/test_cpu_classes.py
#   keeps the estimate above the measurement). Their boards: cortex-m4f runs the nRF52840 (Nano 33
#   BLE), STM32F4 (Nucleo) and, by float ABI only (hardware single-precision float, soft double;
#   no Xtensa toolchain or QEMU machine here), the ESP32 and ESP32-S3; cortex-m7 the Teensy 4.1's
#   flags (-mfpu=fpv5-d16); cortex-m0 the RP2040's ARMv6-M soft float (-mcpu=cortex-m0plus: QEMU's
#   cortex-m0 executes ARMv6-M); rv32imc the ESP32-C3's -march=rv32imc -mabi=ilp32.
# Pins: the PlatformIO platform releases current when this table was written (atmelavr 5.1.0 ships
#   avr-gcc 7.3.0 and framework-arduino-avr 5.2.0; espressif32 6.12.0 ships arduino-esp32 2.0.17).
#   Read from each platform's platform.json at its newest tag (github.com/platformio/platform-*,
#   December 2026): espressif32 6.13.0 (2026-02-26; still arduino-esp32 2.0.17), nordicnrf52
#   10.11.0, raspberrypi 1.19.0 (framework-arduino-mbed ~4.5.0), teensy 5.2.0 (2026-06-22;
#   framework-arduinoteensy ~1.162.0), ststm32 19.6.0 (2026-04-28; framework-arduinoststm32
#   ~4.21200.0). atmelavr 5.2.0 (2026-04-28) is newer than the Uno's pin: nano and mega2560 share
#   the Uno's 5.1.0 because one offline platform serves all three (move them together).
#   The pin carries no owner ("atmelavr", not "platformio/atmelavr") so that an offline core's own
#   atmelavr 5.1.0+tinygmm.offline satisfies it; with network PlatformIO resolves the name in its
#   registry to platformio/atmelavr 5.1.0.
KB, MB = 1024, 1024 * 1024
ESPRESSIF32 = "espressif32 @ 6.13.0"
NO_XTENSA = "no Xtensa ESP32 toolchain in Debian or on PyPI: needs PlatformIO's registry"
NO_ARDUINO_CORE = "its Arduino core and toolchain come only from PlatformIO's registry"
# Flash of the core (firmware/dev/avr_probe.c with every entry point, cross-compiled with the
# class's flags, less the empty probe and the model; the largest over D=1..16) and of the protocol
# firmware around it (the demo project's build less model and core), rounded up. Gcc 12.2 -Os:
# M4F 4204 + 28412 B; M7 4120 + 26408; M0 7560 + 34876 (soft float); RV32IMC 10388 + 12084
# (soft float; picolibc's strtof is far smaller than newlib's, which brings malloc along). With
# hardware float the core also carries the direct evaluation of small models (TINYGMM_DIRECT_FEATURES,
# 716 B on the M4F, 720 B on the M7 of the sums above).
M4F_CORE_FLASH, M4F_FIRMWARE_FLASH = 4300, 29_000
M7_CORE_FLASH, M7_FIRMWARE_FLASH = 4200, 27_000
M0_CORE_FLASH, M0_FIRMWARE_FLASH = 7700, 35_500
RV32_CORE_FLASH, RV32_FIRMWARE_FLASH = 10_500, 12_500
# The Mega's demo build: 19382 B flash (the Uno's 19070), 971 B static RAM: 3-byte return addresses.
MEGA_CORE_FLASH, MEGA_FIRMWARE_FLASH = 7800, 11_600
# The AVR firmware's static RAM around the core (the Uno's 967 B, the Mega's 971 B), with margin.
AVR_FIRMWARE_RAM = 1050
ATMEGA328P_COST = CoreCost(7650, 200, True, firmware_flash=11_400, firmware_ram=AVR_FIRMWARE_RAM)  # Uno, Nano


def _avr(env: str, title: str, board: str, flash: int, ram: int, core: CoreCost, usb_ids: Mapping[str, str],
         emulators: tuple[Emulator, ...], bootloader: Bootloader | None = None) -> Board:
    """An 8-bit AVR Arduino at 16 MHz with the Uno's receive ring: built by the offline core, run in simavr."""
    return Board(env=env, title=title, platform="atmelavr @ 5.1.0", board=board, framework="arduino", glue="arduino",
                 flash=flash, ram=ram, core=core, rx_buffer=UNO_RX_RING - 1,
                 build_flags=(f"-DSERIAL_RX_BUFFER_SIZE={UNO_RX_RING}",), pointer_bytes=2,
                 artifact=f".pio/build/{env}/firmware.elf", usb_ids=usb_ids, emulators=emulators,
                 toolchain=AVR_TOOLCHAIN, bootloader=bootloader, clock_hz=16_000_000)


def _arduino32(env: str, title: str, platform: str, board: str, flash: int, ram: int, core: CoreCost,
               rx_buffer: int, usb_ids: Mapping[str, str], clock_hz: int, cpu_class: str,
               offline: str = NO_ARDUINO_CORE, build_flags: tuple[str, ...] = ()) -> Board:
    """A 32-bit Arduino board built only where PlatformIO reaches its registry; its CPU class runs here."""
    return Board(env=env, title=title, platform=platform, board=board, framework="arduino", glue="arduino",
                 flash=flash, ram=ram, core=core, rx_buffer=rx_buffer, build_flags=build_flags, pointer_bytes=4,
                 artifact=f".pio/build/{env}/firmware.elf", usb_ids=usb_ids, offline=offline, clock_hz=clock_hz,
                 cpu_class=cpu_class)


def _cpu_class(env: str, title: str, board: str, flash: int, ram: int, core_flash: int, firmware_flash: int,
               toolchain: Toolchain, emulator: Emulator) -> Board:
    """A CPU class: the bare-metal glue on a QEMU machine, built by the offline core, run in its emulator."""
    return Board(env=env, title=title, platform=QEMU_PLATFORM, board=board, framework=None, glue="bare",
                 flash=flash, ram=ram, core=CoreCost(core_flash, 256, True, firmware_flash=firmware_flash,
                                                      firmware_ram=4096),
                 rx_buffer=4096, pointer_bytes=4, artifact=f".pio/build/{env}/firmware.elf", emulators=(emulator,),
                 toolchain=toolchain, stand_in=True)


BOARDS: dict[str, Board] = {
    b.env: b
    for b in (
        _avr("uno", "Arduino Uno (ATmega328P, 16 MHz)", "uno", 32256, 2048,
             ATMEGA328P_COST,
             {**USB_ARDUINO_UNO, **USB_CH340, **USB_FTDI}, UNO_EMULATORS, UNO_OPTIBOOT),
        _avr("nano", "Arduino Nano (ATmega328P, 16 MHz, Optiboot)", "nanoatmega328new", 30720, 2048,
             ATMEGA328P_COST, {**USB_FTDI, **USB_CH340},
             (_simavr("simavr-nano", "atmega328p"),)),
        _avr("mega2560", "Arduino Mega 2560 (ATmega2560, 16 MHz)", "megaatmega2560", 253952, 8192,
             CoreCost(MEGA_CORE_FLASH, 210, True, firmware_flash=MEGA_FIRMWARE_FLASH, firmware_ram=AVR_FIRMWARE_RAM),
             {**USB_ARDUINO_MEGA, **USB_CH340}, (_simavr("simavr-mega2560", "atmega2560"),)),
        Board(
            env="esp32dev", title="Espressif ESP32 Dev Module", platform=ESPRESSIF32, board="esp32dev",
            framework="arduino", glue="arduino", flash=1310720, ram=327680,
            core=CoreCost(7650, 256, False, firmware_flash=280_000, firmware_ram=24_000),
            rx_buffer=256, pointer_bytes=4, artifact=".pio/build/esp32dev/firmware.elf",
            usb_ids={**USB_CP210X, **USB_CH340, **USB_FTDI, **USB_ESPRESSIF},
            offline=NO_XTENSA, clock_hz=240_000_000, cpu_class="cortex-m4f",
        ),
        _arduino32("esp32-s3", "Espressif ESP32-S3-DevKitC-1 (Xtensa LX7, 240 MHz)", ESPRESSIF32, "esp32-s3-devkitc-1",
                   3342336, 327680, CoreCost(M4F_CORE_FLASH, 256, False, firmware_flash=280_000, firmware_ram=24_000),
                   256, {**USB_CP210X, **USB_ESPRESSIF, **USB_CH340}, 240_000_000, "cortex-m4f", NO_XTENSA),
        _arduino32("esp32-c3", "Espressif ESP32-C3-DevKitM-1 (RV32IMC, 160 MHz)", ESPRESSIF32, "esp32-c3-devkitm-1",
                   1310720, 327680, CoreCost(RV32_CORE_FLASH, 256, False, firmware_flash=280_000, firmware_ram=24_000),
                   256, {**USB_CP210X, **USB_ESPRESSIF, **USB_CH340}, 160_000_000, "rv32imc",
                   "no ESP32-C3 toolchain or arduino-esp32 in Debian or on PyPI: needs PlatformIO's registry"),
        _arduino32("nano33ble", "Arduino Nano 33 BLE (nRF52840, Cortex-M4F, 64 MHz)", "nordicnrf52 @ 10.11.0",
                   "nano33ble", 983040, 262144,
                   CoreCost(M4F_CORE_FLASH, 256, False, firmware_flash=90_000, firmware_ram=48_000),
                   256, USB_NANO33BLE, 64_000_000, "cortex-m4f"),
        _arduino32("pico", "Raspberry Pi Pico (RP2040, Cortex-M0+, 133 MHz)", "raspberrypi @ 1.19.0", "pico",
                   2097152, 270336, CoreCost(M0_CORE_FLASH, 256, False, firmware_flash=90_000, firmware_ram=48_000),
                   256, USB_PICO, 133_000_000, "cortex-m0"),
        _arduino32("teensy41", "Teensy 4.1 (i.MX RT1062, Cortex-M7, 600 MHz)", "teensy @ 5.2.0", "teensy41",
                   8126464, 524288, CoreCost(M7_CORE_FLASH, 256, False, firmware_flash=30_000, firmware_ram=16_000),
                   256, USB_TEENSY, 600_000_000, "cortex-m7"),
        _arduino32("nucleo_f401re", "ST Nucleo-F401RE (STM32F401, Cortex-M4F, 84 MHz)", "ststm32 @ 19.6.0",
                   "nucleo_f401re", 524288, 98304,
                   CoreCost(M4F_CORE_FLASH, 256, False, firmware_flash=25_000, firmware_ram=4_000),
                   STM32_RX_RING - 1, USB_STLINK, 84_000_000, "cortex-m4f",
                   build_flags=(f"-DSERIAL_RX_BUFFER_SIZE={STM32_RX_RING}",)),
        _cpu_class("cortex-m4f", "Cortex-M4F class: hardware single float (QEMU mps2-an386)", "mps2-an386",
                   4 * MB, 4 * MB, M4F_CORE_FLASH, M4F_FIRMWARE_FLASH, ARM_TOOLCHAIN,
                   _qemu("cortex-m4f", "qemu-system-arm", "mps2-an386", 10)),
        _cpu_class("cortex-m7", "Cortex-M7 class: hardware float, Teensy 4.x flags (QEMU mps2-an500)", "mps2-an500",
                   4 * MB, 4 * MB, M7_CORE_FLASH, M7_FIRMWARE_FLASH, ARM_TOOLCHAIN,
                   _qemu("cortex-m7", "qemu-system-arm", "mps2-an500", 10)),
        _cpu_class("cortex-m0", "Cortex-M0 class: soft float, RP2040 flags (QEMU microbit, nRF51)", "microbit",
                   256 * KB, 16 * KB, M0_CORE_FLASH, M0_FIRMWARE_FLASH, ARM_TOOLCHAIN,
                   _qemu("cortex-m0", "qemu-system-arm", "microbit", 10)),
        _cpu_class("rv32imc", "RV32IMC class: soft float, ESP32-C3 flags (QEMU riscv32 virt)", "riscv32-virt",
                   4 * MB, 4 * MB, RV32_CORE_FLASH, RV32_FIRMWARE_FLASH, RISCV_TOOLCHAIN,
                   _qemu("rv32imc", "qemu-system-riscv32", "virt", 0, "-cpu", "rv32,a=false,f=false,d=false",
                         "-bios", "none")),
        Board(
            env="native", title="this computer (stdin/stdout)", platform="native", board=None,
            framework=None, glue="native", build_flags=("-O2", "-lm"), flash=None, ram=None,
            core=CoreCost(8192, 512, False), rx_buffer=4096, pointer_bytes=8, artifact=".pio/build/native/program",
            emulators=(Emulator("native", "pty", ("gcc", "g++"), timed=True),), toolchain=HOST_TOOLCHAIN,
        ),
    )
}


def get_board(name: str) -> Board:
    """The board called ``name``, or a TinyGMMError listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise TinyGMMError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None


def emulators() -> dict[str, tuple[Emulator, Board]]:
    """Every emulator by name, with the board whose firmware it runs."""
    return {e.name: (e, b) for b in BOARDS.values() for e in b.emulators}


def get_emulator(name: str) -> tuple[Emulator, Board]:
    """The emulator called ``name`` and its board, or a TinyGMMError listing the known ones."""
    known = emulators()
    try:
        return known[name]
    except KeyError:
        raise TinyGMMError(f"unknown emulator {name!r}; one of {', '.join(known)}") from None


def boards_for_usb_id(vid: int, pid: int) -> list[tuple[Board, str]]:
    """Boards that usually appear with this USB VID:PID, with the bridge's description."""
    key = f"{vid:04X}:{pid:04X}"
    return [(b, b.usb_ids[key]) for b in BOARDS.values() if key in b.usb_ids]


def offline_toolchains() -> list[Toolchain]:
    """The toolchains the offline core wraps, each once, in table order."""
    out: list[Toolchain] = []
    for b in BOARDS.values():
        if b.toolchain is not None and b.toolchain not in out:
            out.append(b.toolchain)
    return out


def boards_of_class(emulator: str) -> list[Board]:
    """The boards (not CPU classes) whose CPU class the emulator ``emulator`` runs."""
    return [b for b in BOARDS.values() if not b.stand_in and b.class_emulator == emulator]


def run_scope(board: Board) -> str:
    """What a verify run of a CPU class proves and what it does not ("" for a board's own firmware)."""
    if not board.stand_in:
        return ""
    names = ", ".join(b.env for b in boards_of_class(board.class_emulator)) or "none in the table"
    return (f"{board.title}: the instruction set, float ABI and compiler, bit for bit against the float32 twin; "
            f"not a board's peripherals, Arduino core, serial link or clock. Boards of this class ({names}) "
            "prove the rest on a port")


def format_boards() -> list[str]:
    """The table `tinygmm boards` prints: a header, then one line per board (its own emulators, the
    emulator that runs its CPU class, and whether it builds offline here)."""
    rows = [("board", "flash B", "RAM B", "RX B", "platform", "emulators", "CPU class in", "builds offline here")]
    for b in BOARDS.values():
        why = b.why_not_buildable()
        rows.append((b.env, "-" if b.flash is None else str(b.flash), "-" if b.ram is None else str(b.ram),
                     str(b.rx_buffer), b.platform, ", ".join(e.name for e in b.emulators) or "-",
                     b.class_emulator or "-", "yes" if not why else "no: " + why))
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    return ["  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:4], widths[1:4])),
                       *(c.ljust(w) for c, w in zip(r[4:7], widths[4:7])), r[7]]) for r in rows]
