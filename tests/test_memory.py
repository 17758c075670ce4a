"""Memory report and refusal; the core built for the Uno with avr-gcc keeps the model in flash."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tinygmm.project.boards import BOARDS

from tinygmm.errors import TinyGMMError
from conftest import require
from tinygmm.device.fold import fold, packed_size
from tinygmm.device.memory import check_fits, memory_report
from tinygmm.device.render import model_struct_bytes, write_header
from tinygmm.resources import firmware_dir

from _gmm_cases import COVARIANCE_TYPES, random_model
from avr_size import AVR_CFLAGS, avr_sections, build_avr_probe, have_avr_gcc, measure_avr  # bench/

# Per-component parameter floats: means folded into offsets (D), the packed factor, the bias.
PER_COMPONENT = {"full": lambda D: D + packed_size(D) + 1, "diag": lambda D: 2 * D + 1, "spherical": lambda D: D + 2}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_data_is_the_packed_minimum(covariance_type):
    K, D = 16, 8
    dev = fold(random_model(np.random.default_rng(0), covariance_type, K, D))
    if covariance_type == "tied":
        expected = K * (D + 2) + packed_size(D) + D  # offsets, bias and the linear score's tied_bias per component
    else:
        expected = K * PER_COMPONENT[covariance_type](D) + D  # + the centre
    assert dev.n_floats == expected
    report = memory_report(dev, "uno")
    assert report.model_flash == 4 * expected + model_struct_bytes(2)
    assert report.static_ram == 0 and report.caller_ram == 4 * K


def test_refusal_names_bytes_needed_and_available():
    m = random_model(np.random.default_rng(1), "full", 120, 16, threshold=False)
    report = memory_report(fold(m), "uno")
    assert not report.fits()
    with pytest.raises(TinyGMMError) as err:
        check_fits(report)
    msg = str(err.value)
    assert f"{report.flash} bytes of flash" in msg and "uno has 32256" in msg
    assert check_fits(memory_report(fold(m), "esp32dev")).fits()
    assert memory_report(fold(m), "native").fits()


def test_unknown_target():
    with pytest.raises(TinyGMMError, match="unknown board 'pdp11'"):
        memory_report(random_model(np.random.default_rng(1), "diag", 2, 2), "pdp11")


def test_every_board_has_a_core_cost():
    assert all(b.core.flash > 0 and b.core.stack > 0 for b in BOARDS.values())
    report = memory_report(fold(random_model(np.random.default_rng(1), "diag", 2, 2)), "uno")
    assert (report.flash_available, report.ram_available) == (BOARDS["uno"].flash, BOARDS["uno"].ram)


def _require_avr_gcc() -> None:
    require(have_avr_gcc(), "avr-gcc not installed (apt-get install gcc-avr avr-libc binutils-avr)")


AVR_WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Wconversion", "-Wshadow", "-Werror"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_uno_build_keeps_model_in_flash(tmp_path, covariance_type):
    _require_avr_gcc()
    rng = np.random.default_rng(7)
    small = fold(random_model(rng, covariance_type, 2, 2, scaler=True))
    big = fold(random_model(rng, covariance_type, 16, 8, scaler=True))
    base = avr_sections(build_avr_probe(tmp_path, None))
    sizes = {}
    for name, dev in (("small", small), ("big", big)):
        d = tmp_path / name
        d.mkdir()
        header = write_header(dev, d / "model.h", "gmm_model")
        for lang in ("c99", "c++11"):
            elf = build_avr_probe(d, header, AVR_WARNINGS, lang)
            sections = avr_sections(elf)
            symbols = subprocess.run(["avr-objdump", "-t", str(elf)], capture_output=True, text=True, check=True).stdout
            for array in dev.arrays():
                line = next(ln for ln in symbols.splitlines() if f"gmm_model_{array}" in ln)
                assert " .text" in line, f"{array} not in flash: {line}"
            # Static RAM is the probe's own volatiles only (4 bytes per input feature + 6).
            assert sections.get(".data", 0) == base.get(".data", 0)
            assert sections[".bss"] - base[".bss"] == 4 * (dev.n_features - 1)
            sizes[name] = sections[".text"]
    grown = sizes["big"] - sizes["small"]
    data_grown = big.parameter_bytes - small.parameter_bytes
    # The flash grows by the parameters plus a little code for the larger unrolled loops.
    assert data_grown <= grown <= data_grown + 600
    report = measure_avr(big)
    print(f"\n{covariance_type} K=16 D=8 on the Uno: " + "; ".join(report.lines()))
    assert report.static_ram == 0
    estimate = memory_report(big, "uno")
    assert abs(report.flash - estimate.flash) <= 0.1 * report.flash
    assert report.ram <= estimate.ram


def test_firmware_flags_include_no_contraction():
    assert "-ffp-contract=off" in AVR_CFLAGS
    assert "-ffp-contract=off" in (firmware_dir() / "lib" / "tinygmm" / "tinygmm.h").read_text()
