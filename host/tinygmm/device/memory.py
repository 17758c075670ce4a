"""Flash and RAM a model plus the inference core take on a target, and a refusal when they do not fit.

Estimated from the parameter arrays and core sizes measured once per target; measured from
an avr-gcc build of firmware/dev/avr_probe.c when avr-gcc is installed (``measure=True``).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..project.boards import get_board
from ..errors import TinyGMMError
from .fold import DeviceModel, fold
from ..model import Model
from .render import model_struct_bytes, write_header
from ..resources import firmware_dir


@dataclass(frozen=True)
class CoreCost:
    """What the inference core itself costs on a target (the board's limits live in boards.py)."""

    flash: int  # the core with all five entry points, float library and expf/logf included
    stack: int  # deepest call chain of the core, without the 4*D input and 8*K first-row buffers
    measured: bool  # False: an estimate (no toolchain to measure with)
    firmware_flash: int = 0  # the serial-protocol firmware around the core (protocol, framework, strtod)
    firmware_ram: int = 0  # its static RAM (line buffer, serial rings, framework) and its own stack


# Uno: avr-gcc 5.4 -Os, measure_avr's core (avr_probe.c around the model): 7045 B (D=1) to 7609 B
# (D=16; a constant D unrolls more; the full-covariance loops have their own out-of-line copies
# for speed, and tied predict its linear score, ~350 B), so 7650 covers them; stack from -fstack-usage along
# score -> argmax -> rows, 3 return addresses and expf/logf: 198-200 B beyond the 4*D + 8*K buffers.
# ESP32: no Xtensa toolchain here; Xtensa code is about as dense as AVR's on this code and
# needs no soft-float library, so the Uno's figures are a generous guess until measured.
# Firmware around the core: the exported uno project of the demo model built with the offline core
# (avr-gcc 5.4, LTO) takes 17428 B flash and 1135 B static RAM (protocol line buffer 512, receive
# queue 352, serial rings), against model + core = 7751 B and no static RAM: 9677 B more flash,
# and 1135 B of RAM plus ~100 B of protocol stack. The ESP32
# figures are those of an arduino-esp32 2.0 sketch using Serial (about 270 KB flash, 21 KB RAM),
# rounded up: an estimate until an Xtensa toolchain measures them.
CORE_COSTS: dict[str, CoreCost] = {
    "uno": CoreCost(7650, 200, True, firmware_flash=9_700, firmware_ram=1240),
    "esp32dev": CoreCost(7650, 256, False, firmware_flash=280_000, firmware_ram=24_000),
    "native": CoreCost(8192, 512, False),
}


@dataclass(frozen=True)
class MemoryReport:
    target: str
    model_flash: int  # parameter arrays + the tinygmm_model struct
    core_flash: int
    static_ram: int  # the model costs no static RAM: everything is in flash
    stack_ram: int  # peak stack of one call: core frames + the 4*D input and 8*K first-row buffers
    caller_ram: int  # K floats the caller provides for log_joint / predict_proba
    flash_available: int | None
    ram_available: int | None
    measured: bool  # True: from an avr-gcc build; False: estimated
    firmware_flash: int = 0  # the protocol firmware around the core, when asked for
    firmware_ram: int = 0

    @property
    def flash(self) -> int:
        return self.model_flash + self.core_flash + self.firmware_flash

    @property
    def ram(self) -> int:
        return self.static_ram + self.stack_ram + self.caller_ram + self.firmware_ram

    def fits(self) -> bool:
        return (self.flash_available is None or self.flash <= self.flash_available) and (
            self.ram_available is None or self.ram <= self.ram_available
        )

    def lines(self) -> list[str]:
        how = "measured with avr-gcc" if self.measured else "estimated"
        avail_f = "unlimited" if self.flash_available is None else f"{self.flash_available}"
        avail_r = "unlimited" if self.ram_available is None else f"{self.ram_available}"
        fw_f = f" + protocol firmware {self.firmware_flash}" if self.firmware_flash else ""
        fw_r = f" + protocol firmware {self.firmware_ram}" if self.firmware_ram else ""
        return [
            f"target {self.target} ({how})",
            f"flash {self.flash} B of {avail_f}: model {self.model_flash} + core {self.core_flash}{fw_f}",
            f"RAM {self.ram} B of {avail_r}: static {self.static_ram} + stack {self.stack_ram}"
            f" + caller buffers {self.caller_ram}{fw_r}",
        ]


def memory_report(model: Model | DeviceModel, target: str = "uno", measure: bool = False,
                  firmware: bool = False) -> MemoryReport:
    """Flash and RAM of ``model`` plus the core on ``target`` (``firmware``: plus the serial-protocol
    firmware an exported project adds around them).

    ``measure=True`` builds the core with avr-gcc for the Uno (TinyGMMError if avr-gcc is missing).
    """
    board = get_board(target)
    cost = CORE_COSTS[board.env]
    dev = model if isinstance(model, DeviceModel) else fold(model)
    if measure:
        if target != "uno":
            raise TinyGMMError(f"sizes can be measured only for the uno here (no toolchain for {target})")
        return measure_avr(dev)
    return MemoryReport(
        target=board.env,
        model_flash=dev.parameter_bytes + model_struct_bytes(board.pointer_bytes),
        core_flash=cost.flash,
        static_ram=0,
        stack_ram=cost.stack + 4 * dev.n_features + 8 * dev.n_components,
        caller_ram=4 * dev.n_components,
        flash_available=board.flash,
        ram_available=board.ram,
        measured=False,
        firmware_flash=cost.firmware_flash if firmware else 0,
        firmware_ram=cost.firmware_ram if firmware else 0,
    )


def check_fits(report: MemoryReport) -> MemoryReport:
    """``report`` if the model fits its target; TinyGMMError naming bytes needed and available otherwise."""
    problems = []
    if report.flash_available is not None and report.flash > report.flash_available:
        problems.append(
            f"{report.flash} bytes of flash (model {report.model_flash} + core {report.core_flash}"
            + (f" + protocol firmware {report.firmware_flash}" if report.firmware_flash else "") + ") "
            f"but {report.target} has {report.flash_available}"
        )
    if report.ram_available is not None and report.ram > report.ram_available:
        problems.append(f"{report.ram} bytes of RAM but {report.target} has {report.ram_available}")
    if problems:
        raise TinyGMMError(
            "the model does not fit: it needs " + "; and ".join(problems)
            + ". Use fewer components, a simpler covariance type (diag, spherical) or a larger board."
        )
    return report


# -- measurement with avr-gcc -------------------------------------------------------------

AVR_MCU = "atmega328p"
# The firmware build flags every target shares (see tinygmm.h: no fused multiply-add).
AVR_CFLAGS = [f"-mmcu={AVR_MCU}", "-Os", "-ffp-contract=off"]
AVR_LANGUAGES = {"c99": ["avr-gcc", "-std=c99"], "c++11": ["avr-g++", "-x", "c++", "-std=c++11"]}
_SIZE_LINE = re.compile(r"^(\.\S+)\s+(\d+)\s+\d+\s*$")


def have_avr_gcc() -> bool:
    return shutil.which("avr-gcc") is not None and shutil.which("avr-size") is not None


def avr_sections(elf: Path) -> dict[str, int]:
    """Section sizes of an AVR ELF file (avr-size -A)."""
    out = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    return {m.group(1): int(m.group(2)) for m in map(_SIZE_LINE.match, out.splitlines()) if m}


def build_avr_probe(
    out_dir: Path, header: Path | None, extra_flags: list[str] | None = None, language: str = "c99"
) -> Path:
    """Build firmware/dev/avr_probe.c (with ``header``, or the empty baseline) and return the ELF."""
    tools, core = firmware_dir() / "dev", firmware_dir() / "lib" / "tinygmm"
    elf = out_dir / (f"probe-{language.replace('+', 'p')}.elf" if header is not None else "baseline.elf")
    cmd = [*AVR_LANGUAGES[language], *AVR_CFLAGS, *(extra_flags or []), f"-I{core}"]
    if header is not None:
        cmd += [f'-DPROBE_MODEL_HEADER="{header}"', "-DPROBE_MODEL=gmm_model",
                "-DPROBE_MODEL_N_COMPONENTS=GMM_MODEL_N_COMPONENTS", "-fstack-usage"]
    cmd += [str(tools / "avr_probe.c"), "-o", str(elf), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir)
    if proc.returncode != 0:
        raise TinyGMMError(f"avr-gcc failed to build the core:\n{proc.stderr.strip()}")
    return elf


def _stack_frames(su_files: list[Path]) -> dict[str, int]:
    frames: dict[str, int] = {}
    for su in su_files:
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                name = parts[0].rsplit(":", 1)[-1].split(".")[0]
                frames[name] = max(frames.get(name, 0), int(parts[1]))
    return frames


# Call chains through the core; a function missing from the .su files was inlined into its caller.
_CHAINS = [
    ["tinygmm_anomaly", "tinygmm_anomaly_at", "tinygmm_score", "tinygmm__argmax", "tinygmm__rows"],
    ["tinygmm_predict", "tinygmm__argmax", "tinygmm__rows"],
    ["tinygmm_predict_proba", "tinygmm_log_joint", "tinygmm__rows"],
]
# Return address (2 bytes on the ATmega328P) per call level, and expf/logf's own frames
# (avr-libc's are leaf routines of a few pushes; 16 bytes is their measured upper end).
AVR_RETURN_BYTES = 2
AVR_LIBM_STACK = 16


def measure_avr(model: Model | DeviceModel) -> MemoryReport:
    """Build the core with ``model`` for the Uno and read flash/RAM from avr-size and -fstack-usage."""
    if not have_avr_gcc():
        raise TinyGMMError("avr-gcc is not installed (Debian: apt-get install gcc-avr avr-libc binutils-avr)")
    dev = model if isinstance(model, DeviceModel) else fold(model)
    uno = get_board("uno")
    with tempfile.TemporaryDirectory(prefix="tinygmm-avr-") as tmp:
        out = Path(tmp)
        header = write_header(dev, out / "model.h", "gmm_model")
        base = avr_sections(build_avr_probe(out, None))
        probe = avr_sections(build_avr_probe(out, header))
        frames = _stack_frames(sorted(out.glob("*.su")))
    static = (probe.get(".data", 0) + probe.get(".bss", 0)) - (base.get(".data", 0) + base.get(".bss", 0))
    static -= 4 * (dev.n_features - 1)  # the probe's own volatile input array grows with D
    stack = max(
        sum(frames.get(f, 0) for f in chain) + AVR_RETURN_BYTES * sum(f in frames for f in chain) for chain in _CHAINS
    ) + AVR_LIBM_STACK
    model_flash = dev.parameter_bytes + model_struct_bytes(uno.pointer_bytes)
    total = probe[".text"] + probe.get(".data", 0) - base[".text"] - base.get(".data", 0)
    return MemoryReport(
        target="uno",
        model_flash=model_flash,
        core_flash=total - model_flash,
        static_ram=static,
        stack_ram=stack,
        caller_ram=4 * dev.n_components,
        flash_available=uno.flash,
        ram_available=uno.ram,
        measured=True,
    )
