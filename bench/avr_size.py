"""Measure the core's flash, static RAM and stack on the Uno with avr-gcc (development tooling).

Builds firmware/dev/avr_probe.c around a model header, once empty (the baseline) and once with
the model, and reads avr-size and -fstack-usage. The board table's CoreCost for the Uno comes
from these figures; tests/test_memory.py keeps the estimate honest against them.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinygmm.device.fold import DeviceModel
from tinygmm.device.memory import MemoryReport
from tinygmm.device.render import model_struct_bytes, write_header
from tinygmm.errors import TinyGMMError
from tinygmm.project.boards import get_board
from tinygmm.resources import firmware_dir

UNO = get_board("uno")
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


def measure_avr(dev: DeviceModel) -> MemoryReport:
    """Build the core with ``model`` for the Uno and read flash/RAM from avr-size and -fstack-usage."""
    if not have_avr_gcc():
        raise TinyGMMError("avr-gcc is not installed (Debian: apt-get install gcc-avr avr-libc binutils-avr)")
    uno = UNO
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
