"""Serial ports and the boards they probably are (by USB VID:PID), and `--port auto`."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .boards import Board, boards_for_usb_id
from ..errors import TinyGMMError


@dataclass(frozen=True)
class Port:
    device: str  # /dev/ttyACM0, COM3, ...
    description: str
    usb_id: str | None  # "2341:0043", or None for a port that is not USB
    candidates: tuple[tuple[str, str], ...]  # (board env, what the USB id says), most specific first

    def guess(self) -> str:
        if not self.candidates:
            return "unknown board" if self.usb_id else "not a USB serial port"
        envs = ", ".join(dict.fromkeys(env for env, _ in self.candidates))
        return f"{self.candidates[0][1]}: {envs}"


def list_ports() -> list[Port]:
    """Serial ports on this machine, USB ones first."""
    try:
        from serial.tools import list_ports as lp
    except ImportError:  # pragma: no cover - pyserial is a dependency
        raise TinyGMMError("pyserial is missing: pip install pyserial") from None
    found = []
    for p in lp.comports():
        usb = f"{p.vid:04X}:{p.pid:04X}" if p.vid is not None and p.pid is not None else None
        matches: list[tuple[Board, str]] = boards_for_usb_id(p.vid, p.pid) if usb else []
        found.append(Port(p.device, p.description or "", usb, tuple((b.env, what) for b, what in matches)))
    return sorted(found, key=lambda q: (q.usb_id is None, q.device))


def resolve_port(port: str | None, env: str | None = None, ports: list[Port] | None = None) -> str:
    """A port name as given, or for 'auto' the only port whose USB id matches ``env``'s board.

    Several matches or none stop with a TinyGMMError naming the candidates.
    """
    if port is None:
        raise TinyGMMError("no port given: pass --port PORT (see `tinygmm ports`) or --port auto")
    if port != "auto":
        if port.startswith("/dev/") and not os.path.exists(port):
            raise TinyGMMError(f"no serial port {port}: is the board plugged in? `tinygmm ports` lists the ports")
        return port
    ports = list_ports() if ports is None else ports
    matching = [p for p in ports if p.candidates and (env is None or any(e == env for e, _ in p.candidates))]
    if len(matching) == 1:
        return matching[0].device
    what = f"a {env} board" if env else "a known board"
    if not matching:
        seen = ", ".join(f"{p.device} ({p.guess()})" for p in ports) or "no serial ports at all"
        raise TinyGMMError(f"--port auto found no port that looks like {what} ({seen}); "
                           "plug the board in, or name the port with --port")
    raise TinyGMMError(f"--port auto found several ports that look like {what}: "
                       + ", ".join(f"{p.device} ({p.guess()})" for p in matching) + "; name one with --port")


def format_ports(ports: list[Port]) -> list[str]:
    if not ports:
        return ["no serial ports found (is the board plugged in, and may this user open it?)"]
    width = max(len(p.device) for p in ports)
    return [f"{p.device.ljust(width)}  {p.usb_id or '-':9}  {p.guess()}  [{p.description}]" for p in ports]
