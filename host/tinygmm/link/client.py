"""Device: the host side of the serial protocol over any transport (sync, requests, batches, transcript)."""
from __future__ import annotations

import functools
import logging
import math
import secrets
import time
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import StaleFirmware, TinyGMMError
from ..files import write_atomic
from .protocol import (
    PROTOCOL_VERSION, SEQ_MAX, UNSOLICITED_SEQ, BatchResult, BenchResult, CRCMismatch, DeviceError, Hello,
    Line, LinkTimeout, ProtocolError, batch_request, check_nonce, decode_batch, frame, hex_floats, parse_line,
    vector_text,
)
from .transports import Transport

log = logging.getLogger("tinygmm.link")

# Seconds to wait for one reply. A single inference takes < 0.1 s even on an Uno with a large
# model; the rest is link latency (USB-serial, emulators running slower than real time).
DEFAULT_TIMEOUT = 2.0
# Seconds per batch line: up to `batch` inferences (45 on an Uno; a K=16, D=16 full model costs
# ~60 ms each there) plus the line's transfer time.
BATCH_LINE_TIMEOUT = 10.0
BENCH_TIMEOUT = 60.0
# Resends of a request after a bad CRC (either way) or a timeout; every command is idempotent.
DEFAULT_RETRIES = 2
# sync(): overall deadline and the wait for each ping's echo before pinging again.
SYNC_TIMEOUT = 10.0
SYNC_ATTEMPT = 0.5
READ_CHUNK = 4096
# A received "line" longer than this without a line end is noise, not a reply: dropped.
RX_LINE_LIMIT = 1 << 20
# Lines per pipelined group: keeps every seq in flight unique (seqs wrap at 65535).
PIPELINE_GROUP = 1000
# Error replies that mean the request line arrived damaged (bytes lost or changed on the way), not
# that it was wrong: the request is sent again, and the loss counted (docs/protocol.md, Errors).
DAMAGED_REQUEST = ("bad_crc", "bad_frame", "line_too_long")
# Batch lines are cut to fit the receive buffer down to this share of the device's batch, no further:
# below it the line overhead (~30 bytes a line) costs more than the pipelining gains.
MIN_LINE_SHARE = 1 / 3


@functools.cache  # a device's figures do not change: worked out once, not per batch
def vectors_per_line(op: str, n_features: int, batch_max: int, rx_buffer: int) -> int:
    """Vectors per batch line: the device's batch, or fewer so that a whole line fits its receive
    buffer and waits there while the line before is computed (an Uno's demo batch predict: 61% of
    the raw limit, 54% with lines twice the buffer; bench/link_throughput.py), unless that leaves
    fewer than MIN_LINE_SHARE of the batch."""
    for n in range(batch_max, math.ceil(MIN_LINE_SHARE * batch_max) - 1, -1):
        # the longest seq, whatever the values
        if len(frame(SEQ_MAX, batch_request(op, np.zeros((n, n_features), dtype=np.float32)))) <= rx_buffer:
            return n
    return batch_max


@dataclass(frozen=True)
class TranscriptEntry:
    time: float  # seconds since the transcript started
    direction: str  # ">" sent, "<" received, "#" a note (skipped line, retry)
    data: bytes


class Transcript:
    """Every byte sent and received, with timestamps, for logs of failing runs."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.entries: list[TranscriptEntry] = []

    def record(self, direction: str, data: bytes) -> None:
        self.entries.append(TranscriptEntry(time.monotonic() - self.start, direction, bytes(data)))

    def note(self, text: str) -> None:
        self.record("#", text.encode("utf-8", "replace"))

    def text(self) -> str:
        return "\n".join(f"{e.time:10.6f} {e.direction} {e.data!r}" for e in self.entries)

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, self.text() + "\n", "the link log")

    def bytes_sent(self) -> int:
        return sum(len(e.data) for e in self.entries if e.direction == ">")


@dataclass
class LinkStats:
    """What the link lost on the way: on a sound link with flow control obeyed, all zero."""

    lines_sent: int = 0  # request lines framed and sent (first tries and resends)
    corrupted_lines: int = 0  # received lines whose CRC did not match their text
    retried_requests: int = 0  # requests sent again after a corrupted, refused or missing reply
    resent_lines: int = 0  # batch lines sent again after their reply was lost or corrupted

    def total(self) -> int:
        return self.corrupted_lines + self.retried_requests + self.resent_lines

    def since(self, before: LinkStats) -> LinkStats:
        return LinkStats(*(a - b for a, b in zip(astuple(self), astuple(before))))


class Device:
    """A tinygmm firmware on the other end of a transport.

    Call :meth:`sync` after opening (or after a reset), then :meth:`hello`. Single-vector
    methods raise :class:`DeviceError` for an error reply (``.status`` is the core's status);
    batch methods return per-vector statuses instead.
    """

    def __init__(self, transport: Transport, *, timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.transcript = Transcript()
        self.stats = LinkStats()
        self.info: Hello | None = None
        self._rx = bytearray()
        self._seq = 0

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- bytes and lines --------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = self._seq % SEQ_MAX + 1
        return self._seq

    def _send(self, data: bytes) -> None:
        self.transcript.record(">", data)
        self.transport.write(data)

    def _note(self, text: str) -> None:
        log.info("%s", text)
        self.transcript.note(text)

    def _read_line(self, deadline: float) -> bytes:
        while True:
            end = self._rx.find(b"\n")
            if end >= 0:
                line = bytes(self._rx[:end])
                del self._rx[: end + 1]
                return line
            if len(self._rx) > RX_LINE_LIMIT:
                self._note(f"dropped {len(self._rx)} bytes without a line end")
                self._rx.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkTimeout("no reply from the device in time")
            data = self.transport.read(READ_CHUNK, remaining)
            if data:
                self.transcript.record("<", data)
                self._rx += data

    def _next_line(self, deadline: float) -> Line | CRCMismatch | None:
        """The next received line: parsed, a corrupted one (CRCMismatch), or None for noise."""
        raw = self._read_line(deadline)
        if not raw.strip():
            return None
        try:
            return parse_line(raw)
        except CRCMismatch as e:
            self.stats.corrupted_lines += 1
            self._note(f"corrupted line: {e}")
            return e
        except ProtocolError as e:
            self._note(f"skipped: {e}")
            return None

    def _await(self, seq: int, deadline: float) -> Line:
        """The reply to `seq`; other lines (banner, stale replies, noise) are logged and skipped."""
        while True:
            item = self._next_line(deadline)
            if isinstance(item, CRCMismatch):
                if item.seq_hint == seq:
                    raise item
            elif item is not None:
                if item.seq == seq:
                    return item
                self._note(f"skipped line with seq {item.seq} (waiting for {seq}): {item.raw!r}")

    def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given (fault injection, human-mode lines); kept in the transcript."""
        self._send(data)

    def read_line(self, *, timeout: float | None = None) -> Line:
        """The next well-formed line, whatever its seq (noise skipped, a corrupted line raises CRCMismatch)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            item = self._next_line(deadline)
            if isinstance(item, CRCMismatch):
                raise item
            if item is not None:
                return item

    # -- requests ---------------------------------------------------------------------
    def request(self, text: str, *, timeout: float | None = None) -> Line:
        """Send one framed request and return its ok reply; retried after a bad CRC either way or a
        timeout (all commands are idempotent). Error replies raise DeviceError."""
        timeout = self.timeout if timeout is None else timeout
        failure: Exception | None = None
        for attempt in range(1 + self.retries):
            if attempt:
                self.stats.retried_requests += 1
                self._note(f"retry {attempt} of {text[:40]!r} after: {failure}")
            seq = self._next_seq()
            # After a timeout the device may hold a partial line: end it first (answered with an
            # error for seq 0 or an old seq, which is skipped).
            self.stats.lines_sent += 1
            self._send((b"\n" if attempt else b"") + frame(seq, text))
            try:
                line = self._await(seq, time.monotonic() + timeout)
            except (CRCMismatch, LinkTimeout) as e:
                failure = e
                continue
            if line.kind == "err" and line.command in DAMAGED_REQUEST:
                failure = DeviceError(line.command, " ".join(line.words[1:]), seq)
                continue
            line.raise_if_error()
            return line
        assert failure is not None
        if isinstance(failure, LinkTimeout):
            raise LinkTimeout(f"no reply to {text.split()[0]!r} within {timeout} s ({1 + self.retries} tries)")
        raise failure

    def sync(self, *, timeout: float = SYNC_TIMEOUT, attempt_timeout: float = SYNC_ATTEMPT) -> None:
        """Ping with fresh nonces until one is echoed; everything before it is skipped (and logged)."""
        deadline = time.monotonic() + timeout
        start = len(self.transcript.entries)
        sent: list[bytes] = []
        while True:
            nonce = secrets.token_hex(8)
            seq = self._next_seq()
            sent.append(frame(seq, f"ping {nonce}").rstrip(b"\n"))
            self._send(b"\n" + sent[-1] + b"\n")
            try:
                line = self._await(seq, min(deadline, time.monotonic() + attempt_timeout))
                if line.kind == "ok" and line.words == ("ping", nonce):
                    self._note(f"synced with nonce {nonce}")
                    return
                self._note(f"unexpected answer to the sync ping: {line.raw!r}")
            except (LinkTimeout, CRCMismatch):
                pass
            if time.monotonic() >= deadline:
                heard = b"".join(e.data for e in self.transcript.entries[start:] if e.direction == "<")
                raise LinkTimeout(_sync_failure(heard, sent, timeout))

    def ping(self, nonce: str | None = None) -> str:
        nonce = check_nonce(nonce or secrets.token_hex(8))
        line = self.request(f"ping {nonce}")
        _expect(line, "ping", 2)
        if line.words[1] != nonce:
            raise ProtocolError(f"ping echoed {line.words[1]!r}, sent {nonce!r}")
        return nonce

    def hello(self) -> Hello:
        """Ask the device what it is; refuses a device that speaks another protocol version."""
        line = self.request("hello")
        _expect(line, "hello")
        info = Hello.from_line(line)
        if info.proto != PROTOCOL_VERSION:
            raise TinyGMMError(f"the device speaks protocol version {info.proto}, this host {PROTOCOL_VERSION}: "
                               "re-export and flash the firmware with this tinygmm")
        self.info = info
        return info

    def expect_model(self, model_id: str) -> Hello:
        """hello(), refusing a device that runs another model (stale firmware)."""
        info = self.hello()
        if info.model_id != model_id:
            raise StaleFirmware(f"the device runs model {info.model_id}, expected {model_id}: "
                                "stale firmware? rebuild and flash the project")
        return info

    # -- single vectors ---------------------------------------------------------------
    def _single(self, op: str, x: np.ndarray, timeout: float | None) -> Line:
        line = self.request(f"{op} {vector_text(x)}", timeout=timeout)
        _expect(line, op)
        return line

    def predict(self, x: np.ndarray, *, timeout: float | None = None) -> int:
        return int(_expect(self._single("predict", x, timeout), "predict", 2).words[1])

    def log_joint(self, x: np.ndarray, *, timeout: float | None = None) -> np.ndarray:
        return hex_floats(list(self._single("log_joint", x, timeout).words[1:]))

    def score(self, x: np.ndarray, *, timeout: float | None = None) -> np.float32:
        return hex_floats(list(_expect(self._single("score", x, timeout), "score", 2).words[1:]))[0]

    def proba(self, x: np.ndarray, *, timeout: float | None = None) -> np.ndarray:
        return hex_floats(list(self._single("proba", x, timeout).words[1:]))

    def anomaly(self, x: np.ndarray, *, timeout: float | None = None) -> bool:
        return _expect(self._single("anomaly", x, timeout), "anomaly", 2).words[1] == "1"

    def bench(self, op: str, x: np.ndarray, n: int, *, timeout: float = BENCH_TIMEOUT) -> BenchResult:
        """Run `op` n times on the device on one vector; elapsed time on the device's clock."""
        line = self.request(f"bench {op} {int(n)} {vector_text(x)}", timeout=timeout)
        _expect(line, "bench", 5)
        return BenchResult(op=line.words[1], n=int(line.words[2]), elapsed=int(line.words[3]), unit=line.words[4])

    # -- batches ----------------------------------------------------------------------
    def batch(self, op: str, X: np.ndarray, *, timeout: float = BATCH_LINE_TIMEOUT) -> BatchResult:
        """`op` on every row of X through batch lines, pipelined within the device's receive buffer."""
        info = self.info or self.hello()
        X = np.asarray(X, dtype=np.float32)
        X = X.reshape(1, -1) if X.ndim == 1 else X
        if X.ndim != 2 or X.shape[1] != info.n_features:
            raise TinyGMMError(f"batch of shape {X.shape}: the device's model has {info.n_features} features")
        if len(X) == 0:
            empty = np.zeros((0, info.n_components) if op in ("log_joint", "proba") else 0)
            return BatchResult(op, np.zeros(0, dtype=np.int64), empty)
        per_line = vectors_per_line(op, info.n_features, info.batch_max, info.rx_buffer)
        chunks = [X[i : i + per_line] for i in range(0, len(X), per_line)]
        texts = [batch_request(op, c) for c in chunks]
        lines: list[Line] = []
        for g in range(0, len(texts), PIPELINE_GROUP):
            lines += self._pipeline(texts[g : g + PIPELINE_GROUP], timeout)
        parts = []
        for chunk, line in zip(chunks, lines):
            _expect(line, "batch", 4)
            if line.words[1] != op or int(line.words[2]) != len(chunk):
                raise ProtocolError(f"batch reply for {line.words[1]} x{line.words[2]}, asked {op} x{len(chunk)}")
            parts.append(decode_batch(op, len(chunk), line.words[3], info.n_components))
        return BatchResult(op, np.concatenate([p.status for p in parts]), np.concatenate([p.values for p in parts]))

    def _pipeline(self, texts: Sequence[str], timeout: float) -> list[Line]:
        """Send the lines, never with more than `rx` bytes beyond the end of the oldest unanswered
        line (docs/protocol.md, Flow control); lines whose replies are lost or corrupted are
        resent one at a time afterwards."""
        assert self.info is not None
        rx = self.info.rx_buffer
        seqs = [self._next_seq() for _ in texts]
        index_of = {s: i for i, s in enumerate(seqs)}
        frames = [frame(s, t) for s, t in zip(seqs, texts)]
        self.stats.lines_sent += len(frames)
        ends = np.cumsum([len(f) for f in frames]).tolist()
        stream = b"".join(frames)
        replies: list[Line | None] = [None] * len(texts)
        sent = oldest = 0
        timed_out = False
        while oldest < len(texts):
            limit = min(len(stream), ends[oldest] + rx)
            if sent < limit:
                self._send(stream[sent:limit])
                sent = limit
            try:
                item = self._next_line(time.monotonic() + timeout)
            except LinkTimeout:
                timed_out = True
                break
            if isinstance(item, CRCMismatch):
                if item.seq_hint == seqs[oldest]:  # its reply is garbled, but the device is done with it
                    oldest += 1
                continue
            if item is None or item.seq == UNSOLICITED_SEQ or index_of.get(item.seq, -1) < oldest:
                if item is not None:
                    self._note(f"skipped line with seq {item.seq} during a batch: {item.raw[:80]!r}")
                continue
            idx = index_of[item.seq]  # replies come in order: lines before idx lost theirs
            if not (item.kind == "err" and item.command in DAMAGED_REQUEST):
                item.raise_if_error()
                replies[idx] = item
            oldest = idx + 1
        missing = [i for i, r in enumerate(replies) if r is None]
        if missing:
            self.stats.resent_lines += len(missing)
            self._note(f"resending {len(missing)} of {len(texts)} batch lines" + (" after a timeout" if timed_out else ""))
            if timed_out:
                self.sync()
            for i in missing:
                replies[i] = self.request(texts[i], timeout=timeout)
        return [r for r in replies if r is not None]


def _sync_failure(heard: bytes, sent: list[bytes], timeout: float) -> str:
    """Why syncing failed, told from what came back: nothing, our own bytes, or something else."""
    if not heard.strip():
        return (f"the device did not answer a ping within {timeout:g} s: is the firmware running, on this "
                "port, at this baud rate?")
    if any(ping in heard for ping in sent):
        return ("the port echoes what it is sent instead of answering (a loopback adapter, or a terminal "
                "with echo on?): the tinygmm firmware is not on the other end")
    return (f"the port sent {len(heard)} bytes in {timeout:g} s but no tinygmm reply (another program's output, "
            f"or a different baud rate?); first bytes: {heard[:40]!r}")


def _expect(line: Line, command: str, n_words: int | None = None) -> Line:
    if line.kind != "ok" or line.command != command or (n_words is not None and len(line.words) != n_words):
        raise ProtocolError(f"expected an ok {command} reply, got {line.raw[:80]!r}")
    return line


__all__ = ["Device", "Transcript", "TranscriptEntry"]
