"""The real Uno firmware in simavr (through firmware/emulator/simavr_bridge.c) and in qemu-system-avr, and
the native build on a pty: sync, hello, predictions against the float32 twin, limits, and children
always reaped."""
from __future__ import annotations

import gc
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import require, require_programs
from tinygmm.data import demo_data
from tinygmm.device.fold import fold
from tinygmm.errors import TinyGMMError
from tinygmm.link import Device, LinkClosed
from tinygmm.link.child import PtyTransport
from tinygmm.link.emulators import EXIT_CYCLE_LIMIT, EXIT_WALL_LIMIT, SimavrTransport
from tinygmm.project import build
from tinygmm.project.boards import get_emulator
from tinygmm.project.build import simavr_runner
from tinygmm.verify.session import emulator_transport
from tinygmm.link.protocol import frame, parse_line
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.model import Model
from tinygmm.device.twin import DeviceTwin

KINDS = ("simavr", "qemu", "native")


@dataclass
class Built:
    model: Model
    elf: Path  # the uno firmware
    program: Path  # the native build
    points: np.ndarray  # float32 test vectors: training rows and points around them


@pytest.fixture(scope="session")
def built(tmp_path_factory, pio_core) -> Built:
    """The demo model exported for uno and native and built once with the offline PlatformIO core."""
    from tinygmm.project.boards import BOARDS
    from tinygmm.project.pio import run_pio
    from tinygmm.project.export import export_project

    missing = BOARDS["uno"].missing_tools()
    require(not missing, "the uno build needs apt-get install " + " ".join(missing))
    X, names = demo_data()
    gmm = GaussianMixture(3, random_state=0).fit(X)
    model = Model.from_gmm(gmm, feature_names=names, X_train=X)
    project = tmp_path_factory.mktemp("emu") / "project"
    export_project(model, ["uno", "native"], project, X_train=X)
    run_pio(["run", "-e", "uno", "-e", "native"], project, pio_core.core_dir, echo=False)
    rng = np.random.default_rng(5)
    lo, hi = X.min(axis=0), X.max(axis=0)
    points = np.vstack([X[rng.choice(len(X), 60, replace=False)], rng.uniform(lo, hi, (60, X.shape[1]))])
    return Built(model, project / ".pio/build/uno/firmware.elf", project / ".pio/build/native/program",
                 points.astype(np.float32))


def _require_kind(kind: str) -> None:
    packages = " ".join(get_emulator(kind)[0].packages)
    if kind == "simavr":
        require_programs("gcc", install="apt-get install gcc " + packages)
        require(build.SIMAVR_HEADER.is_file(), "needs simavr: apt-get install " + packages)
    elif kind == "qemu":
        require_programs("qemu-system-avr", install="apt-get install " + packages)


def _open(kind: str, built: Built, **kwargs):
    _require_kind(kind)
    return emulator_transport(get_emulator(kind)[0], built.program if kind == "native" else built.elf, **kwargs)


def _simavr(built: Built, **kwargs) -> SimavrTransport:
    return _open("simavr", built, **kwargs)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once no process (not even a zombie) has this pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_sync_hello_and_predictions_equal_the_twin(kind: str, built: Built) -> None:
    twin = DeviceTwin(fold(built.model)).evaluate(built.points)
    with _open(kind, built) as transport, Device(transport) as dev:
        pid = transport.pid
        dev.sync()
        info = dev.hello()
        assert info.model_id == built.model.model_id
        assert info.target == ("native" if kind == "native" else "uno")
        assert (info.n_components, info.n_features) == (built.model.n_components, built.model.n_features)
        assert info.fma is False
        start = time.perf_counter()
        for _ in range(20):
            dev.ping()
        rtt = (time.perf_counter() - start) / 20
        labels = [dev.predict(x) for x in built.points[:8]]
        assert labels == twin.label[:8].tolist()
        batch = dev.batch("predict", built.points)  # pipelined within the device's receive buffer
        assert batch.values.tolist() == twin.label.tolist()
    print(f"\n{kind}: ping round trip {rtt * 1e3:.2f} ms")
    assert transport.returncode is not None and _gone(pid)
    if kind == "simavr":
        assert transport.exit_code == 0 and transport.exit_reason == "hangup"
        assert transport.cycles > 1_000_000
        print(f"simavr: {transport.cycles} cycles, {transport.emulated_mhz:.1f} emulated MHz")


@pytest.mark.parametrize("kind", KINDS)
def test_child_reaped_after_an_exception_in_the_with_block(kind: str, built: Built) -> None:
    with pytest.raises(KeyboardInterrupt):
        with _open(kind, built) as transport:
            pid = transport.pid
            Device(transport).sync()
            raise KeyboardInterrupt
    assert _gone(pid)


@pytest.mark.parametrize("kind", KINDS)
def test_child_killed_when_the_transport_is_dropped_unclosed(kind: str, built: Built) -> None:
    transport = _open(kind, built)
    pid = transport.pid
    del transport
    gc.collect()
    assert _gone(pid)


def test_a_simavr_run_sends_the_boot_banner_first(built: Built) -> None:
    """The runner starts the firmware only when the pty is opened: nothing is lost before."""
    _require_kind("simavr")
    with _simavr(built) as transport:
        data = b""
        deadline = time.monotonic() + 10
        while b"\n" not in data and time.monotonic() < deadline:
            data += transport.read(256, 0.5)
        banner = parse_line(data.split(b"\n")[0])
        assert banner.kind == "boot" and banner.fields()["model"] == built.model.model_id
        transport.write(frame(7, "ping abc"))
        reply = b""
        while not reply.endswith(b"\n") and time.monotonic() < deadline:
            reply += transport.read(256, 0.5)
        assert parse_line(reply.strip()).words == ("ping", "abc")


def test_a_person_at_the_uno_in_simavr_gets_help_and_decimals(built: Built) -> None:
    """Human mode on the real Uno firmware (tests/test_human_mode.py checks the decimals themselves)."""
    _require_kind("simavr")
    x = built.points[0]
    D = built.model.n_features
    with _simavr(built) as transport, Device(transport) as dev:
        dev.sync()
        framed = dev.log_joint(x)
        args = " ".join(repr(float(v)) for v in x)  # shortest repr: read back as the same float32
        replies = {}
        for text in ("help", args, f"log_joint {args}"):
            dev.send_raw(text.encode() + b"\r")
            replies[text] = line = dev.read_line(timeout=5)
            assert line.seq == 0 and line.kind == "ok", line
    assert f"predict x1..x{D}, " in " ".join(replies["help"].words)
    assert replies[args].words == ("predict", str(DeviceTwin(fold(built.model)).predict(x)[0]))
    words = replies[f"log_joint {args}"].words
    bits = np.asarray(framed, np.float32).view(np.uint32)
    assert words[1:] == tuple(w for v, b in zip(framed, bits) for w in ("%.6g" % v, f"({b:08x})"))


def test_simavr_wall_clock_limit(built: Built) -> None:
    _require_kind("simavr")
    with _simavr(built, wall_limit=0.5) as transport:
        dev = Device(transport)
        dev.sync()
        start = time.monotonic()
        with pytest.raises(LinkClosed, match="wall-clock limit"):
            while time.monotonic() - start < 10:
                dev.ping()
        assert 0.3 < time.monotonic() - start < 5
    assert transport.exit_code == EXIT_WALL_LIMIT and transport.exit_reason == "wall_limit"


def test_simavr_cycle_limit_is_exact(built: Built) -> None:
    _require_kind("simavr")
    limit = 3_000_000  # 0.19 s of Uno time: past the boot
    with _simavr(built, cycle_limit=limit) as transport:
        dev = Device(transport)
        with pytest.raises(LinkClosed, match="cycle limit"):
            dev.sync(timeout=10)
            while True:
                dev.ping()
    assert transport.exit_code == EXIT_CYCLE_LIMIT and transport.exit_reason == "cycle_limit"
    assert limit <= transport.cycles <= limit + 4  # stops at the first instruction past the limit


def test_simavr_throttled_to_real_time(built: Built) -> None:
    _require_kind("simavr")
    with _simavr(built, realtime=1.0) as transport:
        dev = Device(transport)
        dev.sync()
        start = time.monotonic()
        while time.monotonic() - start < 0.6:
            dev.ping()
    assert 8.0 < transport.emulated_mhz <= 16.5


def test_runner_waits_for_a_client_within_its_wall_clock_limit(built: Built, tmp_path: Path) -> None:
    _require_kind("simavr")
    exe = simavr_runner()
    proc = subprocess.run([str(exe), "-t", "0.3", str(built.elf)], capture_output=True, text=True, timeout=10)
    first, *rest = proc.stdout.splitlines()
    assert first.startswith("/dev/pts/")
    assert proc.returncode == EXIT_WALL_LIMIT and "no client opened" in proc.stderr
    assert rest[-1].startswith("exit reason=wall_limit code=4 cycles=0 ")
    bad = subprocess.run([str(exe), str(tmp_path / "missing.elf")], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1 and "cannot read the firmware ELF" in bad.stderr


def test_runner_builds_warning_free_and_is_rebuilt_when_its_source_changes(tmp_path: Path, monkeypatch) -> None:
    _require_kind("simavr")
    source = build.runner_source()
    strict = subprocess.run(["gcc", *build.RUNNER_CFLAGS, "-Werror", "-fsyntax-only", str(source)],
                            capture_output=True, text=True)
    assert strict.returncode == 0, strict.stderr
    first = simavr_runner(bin_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert simavr_runner(bin_dir=tmp_path) == first and first.stat().st_mtime_ns == stamp  # cached
    edited = tmp_path / "simavr_bridge.c"
    edited.write_text(source.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(build, "runner_source", lambda: edited)
    second = simavr_runner(bin_dir=tmp_path)
    assert second != first and second.is_file() and first.exists()  # another checkout may be running it
    day_old = time.time() - build.STALE_BUILD_SECONDS - 60
    os.utime(first, (day_old, day_old))
    monkeypatch.setattr(build, "runner_source", lambda: source)
    assert simavr_runner(bin_dir=tmp_path) == first  # a build of these sources is rebuilt...
    os.utime(second, (day_old, day_old))
    simavr_runner(bin_dir=tmp_path, rebuild=True)
    assert not second.exists()  # ...and one of other sources a day old is removed


def test_missing_tools_name_the_debian_packages(built: Built, tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(TinyGMMError, match="apt-get install qemu-system-misc"):
        emulator_transport(get_emulator("qemu")[0], built.elf, qemu="qemu-system-avr-not-installed")
    with pytest.raises(TinyGMMError, match="no firmware ELF"):
        SimavrTransport(tmp_path / "missing.elf", runner="/bin/true", mcu="atmega328p", frequency=16_000_000)
    with pytest.raises(TinyGMMError, match="not found"):
        PtyTransport([tmp_path / "no-program"])
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(TinyGMMError, match="apt-get install gcc simavr libsimavr-dev"):
        simavr_runner(bin_dir=tmp_path / "bin")


def test_native_on_a_pty_has_no_echo_and_exits_when_hung_up(built: Built) -> None:
    with PtyTransport([built.program]) as transport:
        pid = transport.pid
        transport.write(frame(3, "ping xyz"))
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"\n") < 2 and time.monotonic() < deadline:
            data += transport.read(4096, 0.5)
        lines = data.split(b"\n")
        assert parse_line(lines[0]).kind == "boot" and parse_line(lines[1]).words == ("ping", "xyz")
    assert transport.returncode == 0 and _gone(pid)  # exited by itself at the hang-up


def test_which_emulator_names_are_known(built: Built) -> None:
    with pytest.raises(TinyGMMError, match="unknown emulator 'avrdude'"):
        get_emulator("avrdude")
    assert shutil.which("true")  # sanity: the environment has coreutils


# Tokens whose reading differs between C libraries (glibc takes hex floats and nan(...), avr-libc
# does not): the protocol's own grammar decides, the same on every device.
NUMBER_TOKENS = ["0x1p3", "0X1P-2", "0x3f800000", "nan(123)", "1e", ".", "+.", "e5", "1.5.2", "--1", "infinity",
                 "-INF", "NaN", "+.5", "1.5E+3", "2.", "-0", "12345678", "3f800000"]


def _answer(dev: Device, token: str, D: int) -> str:
    from tinygmm.link import DeviceError

    try:
        return f"ok {dev.request('predict ' + ' '.join([token] * D)).words[1]}"
    except DeviceError as e:
        return f"err {e.code}"


def test_numbers_read_the_same_on_every_device(built: Built) -> None:
    answers = {}
    for kind in ("native", "simavr"):
        with _open(kind, built) as transport, Device(transport) as dev:
            dev.sync()
            answers[kind] = {tok: _answer(dev, tok, built.model.n_features) for tok in NUMBER_TOKENS}
    assert answers["native"] == answers["simavr"]
    got = answers["native"]
    assert all(got[t] == "err bad_number" for t in ("0x1p3", "0X1P-2", "0x3f800000", "nan(123)", "1e", ".", "+."))
    assert got["NaN"] == got["-INF"] == "err nonfinite" and got["1.5E+3"].startswith("ok")
    assert got["3f800000"].startswith("ok") and got["12345678"].startswith("ok")  # 8 hex digits: bits
