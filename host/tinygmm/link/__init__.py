"""The serial link to a device: protocol codec (protocol), Device client (client), byte transports (transports)."""
from .client import Device, Transcript
from .protocol import (
    PROTOCOL_VERSION, BatchResult, BenchResult, CRCMismatch, DeviceError, Hello, LinkClosed, LinkTimeout,
    ProtocolError,
)
from .transports import PipeTransport, SerialTransport, Transport, native_transport

__all__ = [
    "PROTOCOL_VERSION", "Device", "Transcript", "Hello", "BatchResult", "BenchResult",
    "ProtocolError", "CRCMismatch", "LinkTimeout", "LinkClosed", "DeviceError",
    "Transport", "PipeTransport", "SerialTransport", "native_transport",
]
