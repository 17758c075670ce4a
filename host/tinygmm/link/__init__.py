"""The serial link to a device: protocol codec (protocol), Device client (client), byte transports
(transports: the interface and serial ports; child: programs run here; emulators: simavr, qemu).

A leaf of the package: it imports nothing from fitting, the device model, export or build."""
from .child import PipeTransport, PtyTransport
from .client import Device, LinkStats, Transcript
from .protocol import (
    PROTOCOL_VERSION, BatchResult, BenchResult, CRCMismatch, DeviceError, Hello, LinkClosed, LinkTimeout,
    ProtocolError,
)
from .transports import SerialTransport, Transport

__all__ = [
    "PROTOCOL_VERSION", "Device", "LinkStats", "Transcript", "Hello", "BatchResult", "BenchResult",
    "ProtocolError", "CRCMismatch", "LinkTimeout", "LinkClosed", "DeviceError",
    "Transport", "PipeTransport", "PtyTransport", "SerialTransport",
]
