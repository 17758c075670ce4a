"""pytest plugin: a tinygmm device (board, native build or emulated Uno) as session fixtures.

Registered through the ``pytest11`` entry point. Options::

    --tinygmm-project DIR      an exported project (tinygmm export)
    --tinygmm-env ENV          its env to test (default with an emulator: the env it runs)
    --tinygmm-port PORT|auto   a board on a serial port ...
    --tinygmm-emulator NAME    ... or an emulator (`tinygmm boards` lists them)
    --tinygmm-baud N           serial speed (default: the board's)
    --tinygmm-reset            reset the board by DTR after opening (default: leave it running)
    --tinygmm-offline          build with tinygmm's offline PlatformIO core

Fixtures: ``tinygmm_project`` (Path), ``tinygmm_session`` (the project read and the target checked
once, shared with `tinygmm verify`), ``tinygmm_model``, ``tinygmm_vectors``, ``tinygmm_device``
(a synced :class:`~tinygmm.link.client.Device`, refused before any comparison when it runs another
model), ``tinygmm_report`` (the whole suite run once: :class:`~tinygmm.verify.report.VerifyReport`).
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
from .project.boards import DEFAULT_BAUD, emulators

# Bytes of the device log attached to a failing test (the end of it: the latest exchange).
LOG_TAIL_CHARS = 20_000
_DEVICE_KEY = pytest.StashKey[Any]()
_LOG_KEY = pytest.StashKey[Path]()


def _emulator_names() -> list[str]:
    return list(emulators())


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinygmm", "tinygmm device under test")
    group.addoption("--tinygmm-project", metavar="DIR", help="exported tinygmm project to test")
    group.addoption("--tinygmm-env", metavar="ENV",
                    help="the project's env (default with --tinygmm-emulator: the env it runs)")
    group.addoption("--tinygmm-port", metavar="PORT|auto", help="a board on a serial port (path or pyserial URL)")
    group.addoption("--tinygmm-emulator", choices=_emulator_names(), help="run the firmware here instead of on a board")
    group.addoption("--tinygmm-baud", type=int, default=0, metavar="N",
                    help=f"serial speed (default: the board's, {DEFAULT_BAUD} for every board tinygmm knows)")
    group.addoption("--tinygmm-reset", action="store_true", help="reset the board by DTR after opening its port")
    group.addoption("--tinygmm-offline", action="store_true", help="build with tinygmm's offline PlatformIO core")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tinygmm: the test talks to a tinygmm device (board or emulator)")


# Under CI=true whatever CI installs must be there: a test that would skip for want of it fails.
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def skip_unless_ci(what: str, required_in_ci: bool = True) -> None:
    """Skip saying ``what`` is missing; under CI=true fail instead when it is ``required_in_ci``
    (an emulator or toolchain CI installs; never a real board)."""
    if required_in_ci and IN_CI:
        pytest.fail(f"{what} (CI=true: CI must install it)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def tinygmm_project(pytestconfig: pytest.Config) -> Path:
    value = pytestconfig.getoption("tinygmm_project")
    if not value:
        pytest.skip("no --tinygmm-project DIR given")
    return Path(value)


@pytest.fixture(scope="session")
def tinygmm_session(pytestconfig: pytest.Config, tinygmm_project: Path) -> Any:
    """The project read and the target checked, once (:class:`~tinygmm.verify.session.VerifySession`)."""
    from .verify.session import VerifySession

    opt = pytestconfig.getoption
    port, emulator = opt("tinygmm_port"), opt("tinygmm_emulator")
    if port is None and emulator is None:
        skip_unless_ci("no board or emulator: give --tinygmm-port PORT or --tinygmm-emulator "
                     + "|".join(_emulator_names()), False)
    try:
        return VerifySession.open(tinygmm_project, opt("tinygmm_env"), port=port, emulator=emulator,
                                  baud=opt("tinygmm_baud"), reset=opt("tinygmm_reset"), offline=opt("tinygmm_offline"))
    except TinyGMMError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def tinygmm_model(tinygmm_session: Any) -> Any:
    return tinygmm_session.model


@pytest.fixture(scope="session")
def tinygmm_vectors(tinygmm_session: Any) -> Any:
    return tinygmm_session.vectors


@pytest.fixture(scope="session")
def tinygmm_device(pytestconfig: pytest.Config, tinygmm_session: Any) -> Iterator[Any]:
    target = tinygmm_session.target

    def keep_log(path: Path) -> None:
        pytestconfig.stash[_LOG_KEY] = path

    with contextlib.ExitStack() as stack:
        try:
            device = stack.enter_context(tinygmm_session.device(on_log=keep_log))
        except StaleFirmware as e:
            pytest.fail(f"refusing to compare: {e}", pytrace=False)
        except TinyGMMError as e:
            text = str(e)
            if "apt-get install" in text or "no serial port" in text or "no port that looks like" in text:
                skip_unless_ci(f"{target.transport_name} unavailable: {text}",
                             required_in_ci=target.emulator is not None)
            pytest.fail(text, pytrace=False)
        pytestconfig.stash[_DEVICE_KEY] = device
        yield device


@pytest.fixture(scope="session")
def tinygmm_report(tinygmm_session: Any, tinygmm_device: Any) -> Any:
    """The whole suite run once on the device: :class:`~tinygmm.verify.report.VerifyReport`."""
    return tinygmm_session.run(tinygmm_device)


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
