"""A board farm: several targets in one pytest run (one per pytest-xdist worker) and in one
`tinygmm verify`, and a remote Uno through RFC 2217: Debian's ser2net on 127.0.0.1 in front of the
emulated Uno's pseudo-terminal, as labgrid's exporters and ser2net serve real boards."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import require, require_programs
from tinygmm import cli
from tinygmm.errors import TinyGMMError
from tinygmm.link import client
from tinygmm.project.boards import get_emulator
from tinygmm.project.build import SIMAVR_HEADER, ensure_built, simavr_runner
from tinygmm.project.firmware import read_firmware_project
from tinygmm.verify.compare import CHECK_NAMES
from tinygmm.verify.farm import target_specs
from tinygmm.verify.session import verify_project
from tinygmm.verify.vectors import KINDS

SUITE_TESTS = len(CHECK_NAMES) * len(KINDS) + 3  # the shipped hil suite, per target
FARM = ["--tinygmm-emulator", "simavr", "--tinygmm-emulator", "simavr", "--tinygmm-emulator", "native"]
# Seconds a dropped RFC 2217 connection may take to become an error (the link's own timeouts are longer).
DROP_NOTICED_WITHIN = 15.0


def test_targets_are_named_for_test_ids_and_numbered_when_repeated() -> None:
    specs = target_specs(["/dev/ttyACM0", "rfc2217://10.0.0.5:4001?logging=debug"], ["simavr", "simavr", "native"],
                         "uno")
    assert [s.id for s in specs] == ["ttyACM0", "rfc2217-10.0.0.5-4001", "simavr-1", "simavr-2", "native"]
    assert [s.env for s in specs] == ["uno", "uno", None, None, None]  # -e is the boards' env, not native's
    assert target_specs([], ["simavr"], "uno")[0].env == "uno"  # a single target keeps today's check


@pytest.fixture
def uno_project(demo_project: Path, pio_core, monkeypatch) -> Path:
    """The demo project with its uno firmware built (once: every later run finds it up to date)."""
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install simavr libsimavr-dev")
    from tinygmm.project.boards import get_board

    missing = get_board("uno").missing_tools()
    require(not missing, "the uno build needs apt-get install " + " ".join(missing))
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    ensure_built(read_firmware_project(demo_project).firmware("uno"), pio_core.core_dir)
    return demo_project


def test_pytest_n2_checks_two_emulated_unos_and_native_each_on_one_worker(pytester, uno_project, tmp_path) -> None:
    shutil.copytree(uno_project / "hil", pytester.path / "hil")
    junit = tmp_path / "farm.xml"
    result = pytester.runpytest_subprocess("hil", "--tinygmm-project", str(uno_project), *FARM, "-n", "2", "-v",
                                           "-p", "no:cacheprovider", f"--junitxml={junit}")
    result.assert_outcomes(passed=3 * SUITE_TESTS)
    # each target's tests ran on exactly one worker, and both workers had work
    worker_of: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        m = re.match(r"\[(gw\d)\] .*PASSED .*\[(simavr-1|simavr-2|native)\b", line)
        if m:
            worker_of.setdefault(m[2], set()).add(m[1])
    assert sorted(worker_of) == ["native", "simavr-1", "simavr-2"]
    assert all(len(w) == 1 for w in worker_of.values()), worker_of
    assert len(set.union(*worker_of.values())) == 2
    # each reported separately: a line per target, and a property on every test case
    result.stdout.fnmatch_lines(["*tinygmm targets*", f"simavr-1 (emulator simavr): {SUITE_TESTS} passed",
                                 f"simavr-2 (emulator simavr): {SUITE_TESTS} passed",
                                 f"native (emulator native): {SUITE_TESTS} passed"])
    xml = junit.read_text()
    for target in ("simavr-1", "simavr-2", "native"):
        assert xml.count(f'<property name="tinygmm_target" value="{target}"') == SUITE_TESTS
    logs = {p.name.split("-", 2)[-1] for p in (uno_project / ".tinygmm" / "logs").glob("*.log")}
    assert {"simavr-1.log", "simavr-2.log", "native.log"} <= logs  # two Unos of one env keep their own log


def test_tinygmm_verify_runs_several_targets_side_by_side_with_a_summary(uno_project, tmp_path, capsys) -> None:
    report = tmp_path / "farm.json"
    code = cli.main(["verify", str(uno_project), "-e", "uno", "--emulator", "simavr", "--emulator", "native",
                     "--port", "/dev/ttyNOSUCH", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 1  # one target had no board
    for header in ("== simavr (emulator simavr) ==", "== native (emulator native) ==",
                   "== ttyNOSUCH (port /dev/ttyNOSUCH) =="):
        assert header in out
    assert "summary: 2 of 3 targets passed" in out
    assert re.search(r"PASS +simavr +emulator simavr: \d+/\d+ checks", out)
    assert re.search(r"ERROR +ttyNOSUCH +port /dev/ttyNOSUCH: .*no serial port /dev/ttyNOSUCH", out)
    doc = json.loads(report.read_text())
    assert doc["format"] == "tinygmm-verify" and doc["passed"] is False
    assert [(t["target"], t["passed"]) for t in doc["targets"]] == [("ttyNOSUCH", False), ("simavr", True),
                                                                    ("native", True)]
    assert doc["targets"][1]["report"]["checks"] and "error" in doc["targets"][0]


def test_the_deadline_ends_a_farm_run_on_time_and_leaves_nothing_running(demo_project, pio_core, monkeypatch
                                                                       ) -> None:
    """A board that never answers (a port that accepts and stays silent) and --timeout: the run ends at
    the deadline, not at the link's own timeouts; no target thread outlives it, nothing is reported late."""
    from tinygmm.verify.farm import verify_farm

    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    silent = f"socket://127.0.0.1:{server.getsockname()[1]}"
    heard: list[str] = []
    t0 = time.monotonic()
    results = verify_farm(demo_project, target_specs([silent], ["native"], "uno"), bench=False, offline=True,
                          timeout=3.0, on_done=lambda r: heard.append(r.spec.id))
    took = time.monotonic() - t0
    try:
        assert took < 6.0, f"the 3 s deadline ended the run after {took:.1f} s"
        silent_result, native = results
        assert "did not finish within 3 s" in (silent_result.error or "") and not silent_result.passed
        assert native.passed
        assert not [t.name for t in threading.enumerate() if t.name.startswith("tinygmm-")]
        time.sleep(0.5)
        assert heard == ["native"]  # the silent target is in the summary only, never reported late
    finally:
        server.close()
        for c in accepted:
            c.close()


def test_a_deadline_spent_building_runs_no_target_and_stops_the_build(demo_project, pio_core, tmp_path,
                                                                     monkeypatch, capsys) -> None:
    """--timeout shorter than a stale build: every target is an error naming the deadline, at once;
    the build is stopped (no pio left running), and nothing runs without a deadline after it."""
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    project = tmp_path / "stale"
    shutil.copytree(demo_project, project, ignore=shutil.ignore_patterns(".pio"))
    t0 = time.monotonic()
    code = cli.main(["verify", str(project), "--emulator", "native", "--emulator", "native", "--no-bench",
                     "--offline", "--timeout", "0.5"])
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert code == 1 and took < 8.0, (code, took)
    assert "summary: 0 of 2 targets passed" in out
    assert len(re.findall(r"ERROR +native-\d +emulator native: .*did not finish within 0.5 s", out)) == 2, out
    leftover = subprocess.run(["pgrep", "-f", f"pio.* run -e native"], capture_output=True, text=True).stdout
    assert not [pid for pid in leftover.split() if str(project) in Path(f"/proc/{pid}/cwd").resolve().as_posix()]


# -- a remote Uno through RFC 2217 ---------------------------------------------------------------


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, without connecting (a connection would make
    ser2net open the pty, and the runner stops when it is closed again)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_uno(project: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The project's Uno firmware in simavr, its pty served by ser2net over RFC 2217 on 127.0.0.1.

    The runner starts the firmware when ser2net opens the pty (on a client's connection) and stops
    when ser2net closes it. Yields (the URL, ser2net's process)."""
    require_programs("ser2net", install="apt-get install ser2net")
    emulator = get_emulator("simavr")[0]
    elf = project / ".pio" / "build" / "uno" / "firmware.elf"
    argv = [str(simavr_runner()), "-m", emulator.options["mcu"], "-f", str(emulator.options["frequency"]),
            "-t", "120", str(elf)]
    with contextlib.ExitStack() as stack:
        runner = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        stack.callback(lambda: (runner.kill(), runner.wait()))
        pty = runner.stdout.readline().decode().strip()
        assert pty.startswith("/dev/"), pty
        port = _free_port()
        config = tmp_path / f"ser2net-{port}.yaml"
        config.write_text(f"connection: &uno\n"
                          f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                          f"  connector: serialdev,{pty},115200n81,local,nobreak\n"
                          f"  options:\n    kickolduser: true\n    mdns: false\n")
        server = subprocess.Popen(["ser2net", "-n", "-d", "-c", str(config)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        stack.callback(lambda: (server.kill(), server.wait()))
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert server.poll() is None, "ser2net exited at start"
            assert time.monotonic() < deadline, "ser2net did not listen"
            time.sleep(0.02)
        yield f"rfc2217://127.0.0.1:{port}", server


def test_a_remote_uno_through_ser2net_verifies(uno_project, tmp_path, capsys) -> None:
    with served_uno(uno_project, tmp_path) as (url, _):
        code = cli.main(["verify", str(uno_project), "-e", "uno", "--port", url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"via port {url}" in out and "PASS" in out


def test_a_dropped_remote_connection_is_a_clear_error_not_a_hang(uno_project, tmp_path, monkeypatch) -> None:
    real_batch = client.Device.batch
    with served_uno(uno_project, tmp_path) as (url, server):
        def batch_after_the_drop(self, *args, **kwargs):  # the server goes away mid-run
            server.kill()
            return real_batch(self, *args, **kwargs)

        monkeypatch.setattr(client.Device, "batch", batch_after_the_drop)
        t0 = time.monotonic()
        with pytest.raises(TinyGMMError, match="connection was closed from the other end") as e:
            verify_project(uno_project, "uno", port=url, bench=False, timeout=120)
        assert time.monotonic() - t0 < DROP_NOTICED_WITHIN
    assert url in str(e.value)


def test_in_a_farm_a_failing_test_carries_its_own_targets_log(pytester, demo_project) -> None:
    pytester.makepyfile(test_mine="""
        def test_hello_says_something_else(tinygmm_device, tinygmm_session):
            print("target", tinygmm_session.target.transport_name)
            assert tinygmm_device.hello().n_components == 99
    """)
    result = pytester.runpytest_subprocess("--tinygmm-project", str(demo_project), "--tinygmm-emulator", "native",
                                           "--tinygmm-emulator", "native", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*test_hello_says_something_else?native-1?*", "*tinygmm device log*", "*hello*",
                                 "*test_hello_says_something_else?native-2?*", "*tinygmm device log*", "*hello*",
                                 "*native-1 (emulator native): 1 failed*", "*native-2 (emulator native): 1 failed*"])


def test_the_plugin_loads_light_in_every_pytest_run() -> None:
    """pytest loads the plugin in every run where tinygmm is installed: the farm's targets come with
    it, the verify session (NumPy, the link, the build tools) only when a device is used."""
    import sys

    code = "import sys, tinygmm.pytest_plugin; assert 'numpy' not in sys.modules and 'tinygmm.verify.session' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
