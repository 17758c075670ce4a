"""pytest plugin: a tinygmm device (board, native build or emulated Uno) as session fixtures.

Registered through the ``pytest11`` entry point. Options::

    --tinygmm-project DIR      an exported project (tinygmm export)
    --tinygmm-env ENV          its env to test (default with an emulator: the env it runs)
    --tinygmm-port PORT|auto   a board on a serial port ...
    --tinygmm-emulator NAME    ... or native | simavr | qemu
    --tinygmm-baud N           serial speed (default: 115200)
    --tinygmm-reset            reset the board by DTR after opening (default: leave it running)
    --tinygmm-offline          build with tinygmm's offline PlatformIO core

Fixtures: ``tinygmm_project`` (Path), ``tinygmm_model``, ``tinygmm_vectors``, ``tinygmm_device``
(a synced :class:`~tinygmm.link.client.Device`, refused before any comparison when it runs another
model), ``tinygmm_report`` (the whole suite run once: :class:`~tinygmm.verify.compare.VerifyReport`).
A failing test that used the device gets the device's byte log attached as a report section; the
whole run's log is kept under the project's .tinygmm/logs/.
Without a board or emulator the tests skip and say why; under CI=true a missing emulator fails.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from .errors import StaleFirmware, TinyGMMError

# Bytes of the device log attached to a failing test (the end of it: the latest exchange).
LOG_TAIL_CHARS = 20_000
_DEVICE_KEY = pytest.StashKey[Any]()
_LOG_KEY = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinygmm", "tinygmm device under test")
    group.addoption("--tinygmm-project", metavar="DIR", help="exported tinygmm project to test")
    group.addoption("--tinygmm-env", metavar="ENV",
                    help="the project's env (default with --tinygmm-emulator: the env it runs)")
    group.addoption("--tinygmm-port", metavar="PORT|auto", help="a board on a serial port (path or pyserial URL)")
    group.addoption("--tinygmm-emulator", choices=("native", "simavr", "qemu"),
                    help="run the firmware here instead of on a board")
    group.addoption("--tinygmm-baud", type=int, default=115200, metavar="N", help="serial speed (default: 115200)")
    group.addoption("--tinygmm-reset", action="store_true", help="reset the board by DTR after opening its port")
    group.addoption("--tinygmm-offline", action="store_true", help="build with tinygmm's offline PlatformIO core")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tinygmm: the test talks to a tinygmm device (board or emulator)")


def _unavailable(what: str, required_in_ci: bool) -> None:
    """Skip saying what is missing; under CI=true a missing emulator is a failure, a missing board is not."""
    if required_in_ci and os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: emulators are required)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def tinygmm_project(pytestconfig: pytest.Config) -> Path:
    value = pytestconfig.getoption("tinygmm_project")
    if not value:
        pytest.skip("no --tinygmm-project DIR given")
    return Path(value)


@pytest.fixture(scope="session")
def tinygmm_model(tinygmm_project: Path) -> Any:
    from .project.export import read_project

    try:
        return read_project(tinygmm_project)[0]
    except TinyGMMError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def tinygmm_vectors(tinygmm_project: Path) -> Any:
    from .verify.vectors import load_vectors

    try:
        return load_vectors(tinygmm_project / "test_vectors.json")
    except TinyGMMError as e:
        pytest.fail(str(e), pytrace=False)


def _target(config: pytest.Config) -> Any:
    from .verify import session as c

    opt = config.getoption
    port, emulator = opt("tinygmm_port"), opt("tinygmm_emulator")
    if port is None and emulator is None:
        _unavailable("no board or emulator: give --tinygmm-port PORT or --tinygmm-emulator native|simavr|qemu", False)
    try:
        env = c.resolve_env(opt("tinygmm_env"), port, emulator)
        c.check_target(env, port, emulator)
    except TinyGMMError as e:
        pytest.fail(str(e), pytrace=False)
    return c.Target(env, port, emulator, opt("tinygmm_baud"), opt("tinygmm_reset"))


@pytest.fixture(scope="session")
def tinygmm_device(pytestconfig: pytest.Config, tinygmm_project: Path, tinygmm_model: Any) -> Iterator[Any]:
    from .verify import session as c

    target = _target(pytestconfig)

    def keep_log(path: Path) -> None:
        pytestconfig.stash[_LOG_KEY] = path

    with contextlib.ExitStack() as stack:
        try:
            core = c.default_core_dir(pytestconfig.getoption("tinygmm_offline"))
            device = stack.enter_context(c.open_device(tinygmm_project, target, tinygmm_model.model_id, core,
                                                       on_log=keep_log))
        except StaleFirmware as e:
            pytest.fail(f"refusing to compare: {e}", pytrace=False)
        except TinyGMMError as e:
            text = str(e)
            if "apt-get install" in text or "no serial port" in text or "no port that looks like" in text:
                _unavailable(f"{target.emulator or 'board'} unavailable: {text}",
                             required_in_ci=target.emulator is not None)
            pytest.fail(text, pytrace=False)
        pytestconfig.stash[_DEVICE_KEY] = device
        yield device


@pytest.fixture(scope="session")
def tinygmm_report(pytestconfig: pytest.Config, tinygmm_device: Any, tinygmm_model: Any, tinygmm_vectors: Any) -> Any:
    from .verify.compare import run_suite

    target = _target(pytestconfig)
    return run_suite(tinygmm_device, tinygmm_model, tinygmm_vectors, target=target.env,
                     transport=target.transport_name, bench=target.timed, baud=target.link_baud)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    log = config.stash.get(_LOG_KEY, None)
    if log is not None:
        terminalreporter.write_line(f"tinygmm: link log (every byte, timestamped): {log}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "tinygmm_device" in getattr(item, "fixturenames", ()):
        device = item.config.stash.get(_DEVICE_KEY, None)
        if device is not None:
            report.sections.append(("tinygmm device log", device.transcript.text()[-LOG_TAIL_CHARS:]))
