"""Flash and RAM a model plus the inference core take on a board, and a refusal when they do not fit.

Estimated from the parameter arrays and the core's cost on the board (the board table's CoreCost,
measured for the Uno by bench/avr_size.py with avr-gcc).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import TinyGMMError
from ..project.boards import get_board
from .fold import DeviceModel
from .render import model_struct_bytes


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
    measured: bool  # True: from an avr-gcc build (bench/avr_size.py); False: estimated from the board table
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


def memory_report(dev: DeviceModel, target: str, firmware: bool = False) -> MemoryReport:
    """Flash and RAM of the folded model plus the core on the board ``target`` (``firmware``: plus the
    serial-protocol firmware an exported project adds around them)."""
    board = get_board(target)
    cost = board.core
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
