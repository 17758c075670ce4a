"""pytest plugin: a tinygmm device (board, native build or emulated Uno) as session fixtures.

Registered through the ``pytest11`` entry point. Options::

    --tinygmm-project DIR      an exported project (tinygmm export)
    --tinygmm-env ENV          its env to test (default with an emulator: the env it runs)
    --tinygmm-port PORT|auto   a board on a serial port or pyserial URL (rfc2217://host:4001) ...
    --tinygmm-emulator NAME    ... or an emulator (`tinygmm boards` lists them); both repeatable
    --tinygmm-baud N           serial speed (default: the board's)
    --tinygmm-reset            reset the board by DTR after opening (default: leave it running)
    --tinygmm-flash            upload the firmware first (to the board, or into the emulated Uno: simavr)
    --tinygmm-offline          build with tinygmm's offline PlatformIO core

Fixtures: ``tinygmm_project`` (Path), ``tinygmm_session`` (the project read and the target checked
once, shared with `tinygmm verify`), ``tinygmm_model``, ``tinygmm_vectors``, ``tinygmm_device``
(a synced :class:`~tinygmm.link.client.Device`, refused before any comparison when it runs another
model), ``tinygmm_report`` (the whole suite run once: :class:`~tinygmm.verify.report.VerifyReport`).
The session, device and report are made once per session (with --tinygmm-flash, the upload too: an
emulated board flashed is the one tested, stopped at the end); a set-up that fails (stale firmware,
a broken link, a failed upload) is reported by the first test that needs it and only named by the others.
A failing test that used the device gets the device's byte log attached as a report section; the
whole run's log is kept under the project's .tinygmm/logs/.
Without a board or emulator the tests skip and say why; under CI=true a missing emulator fails.

A board farm: give several targets (``--tinygmm-port A --tinygmm-port B --tinygmm-emulator simavr``)
and every device test runs once per target, its id ending in the target's (``[...-ttyACM0]``),
with a session, device and report per target. Under pytest-xdist (``pytest -n 4``) each target's
tests go to one worker (a scheduler of the plugin's, used with ``-n N``), so the boards are checked
side by side, each opened by one process only; the summary ends with a line per target.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from .errors import StaleFirmware, TinyGMMError
from .project.boards import DEFAULT_BAUD, emulators
from .verify.farm import TargetSpec, log_path, target_specs

# Bytes of the device log attached to a failing test (the end of it: the latest exchange).
LOG_TAIL_CHARS = 20_000
_DEVICE_KEY = pytest.StashKey[dict]()  # target id -> its open Device
_LOG_KEY = pytest.StashKey[dict]()  # target id -> its byte log
_TARGETS_KEY = pytest.StashKey[list]()
_TALLY_KEY = pytest.StashKey[dict]()  # target id -> outcome -> count (on the controller under xdist)
# The user property naming a test's target (in JUnit too), and xdist's mark grouping a target's tests.
TARGET_PROPERTY = "tinygmm_target"


def _emulator_names() -> list[str]:
    return list(emulators())


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinygmm", "tinygmm device under test")
    group.addoption("--tinygmm-project", metavar="DIR", help="exported tinygmm project to test")
    group.addoption("--tinygmm-env", metavar="ENV",
                    help="the project's env (default with --tinygmm-emulator: the env it runs)")
    group.addoption("--tinygmm-port", metavar="PORT|auto", action="append",
                    help="a board on a serial port (path or pyserial URL, e.g. rfc2217://host:4001); repeat for a "
                         "board farm (one target per pytest-xdist worker)")
    group.addoption("--tinygmm-emulator", choices=_emulator_names(), action="append",
                    help="run the firmware here instead of on a board (repeatable, as --tinygmm-port)")
    group.addoption("--tinygmm-baud", type=int, default=0, metavar="N",
                    help=f"serial speed (default: the board's, {DEFAULT_BAUD} for every board tinygmm knows)")
    group.addoption("--tinygmm-reset", action="store_true", help="reset the board by DTR after opening its port")
    group.addoption("--tinygmm-flash", action="store_true",
                    help="upload the firmware first: to the board on --tinygmm-port, or into an emulated Uno "
                    "(--tinygmm-emulator simavr) started in its bootloader, which the tests then use")
    group.addoption("--tinygmm-offline", action="store_true", help="build with tinygmm's offline PlatformIO core")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tinygmm: the test talks to a tinygmm device (board or emulator)")
    config.stash[_DEVICE_KEY] = {}
    config.stash[_LOG_KEY] = {}
    config.stash[_TALLY_KEY] = {}
    targets = _targets(config)
    if len(targets) < 2:
        return
    config.pluginmanager.register(_Tally(config.stash[_TALLY_KEY]), "tinygmm-target-tally")
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") == "each":
        raise pytest.UsageError("--dist each would open every board from every worker: with several "
                                "--tinygmm-port/--tinygmm-emulator targets use -n N alone")


def _targets(config: pytest.Config) -> list[TargetSpec]:
    """The targets given (ports first), each with an id unique among them."""
    if _TARGETS_KEY not in config.stash:
        opt = config.getoption
        config.stash[_TARGETS_KEY] = target_specs(opt("tinygmm_port") or [], opt("tinygmm_emulator") or [],
                                                  opt("tinygmm_env"))
    return config.stash[_TARGETS_KEY]


@pytest.hookimpl(tryfirst=True)  # first, so that the target's id leads the test id: [simavr-1-...]
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With several targets, every test that uses the device runs once per target."""
    if "_tinygmm_target" not in metafunc.fixturenames:
        return
    targets = _targets(metafunc.config)
    if len(targets) > 1:
        metafunc.parametrize("_tinygmm_target", targets, ids=[t.id for t in targets], indirect=True, scope="session")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, when it is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist with several targets: xdist's load scheduling by scopes, a scope being one
    target's tests, so each board is opened by one worker only and the boards run side by side.
    (Not xdist's own loadgroup: its workers rename test ids through ``item._nodeid``, which pytest
    9.2 no longer reads, so with xdist 3.8 every test is its own group; measured here.)"""
    targets = _targets(config)
    if len(targets) < 2 or config.getoption("dist", "no") not in ("load", "loadgroup", "loadscope", "worksteal"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    ids = sorted((t.id for t in targets), key=len, reverse=True)

    class TargetScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            params = nodeid.partition("[")[2]
            target = next((i for i in ids if params.startswith(f"{i}-") or params == f"{i}]"), None)
            return f"tinygmm target {target}" if target is not None else nodeid

    return TargetScheduling(config, log)


@pytest.fixture(scope="session")
def _tinygmm_target(request: pytest.FixtureRequest) -> TargetSpec | None:
    if hasattr(request, "param"):
        return request.param
    targets = _targets(request.config)
    return targets[0] if targets else None


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


@dataclass
class _SetupFailure:
    """Why the device cannot be used this session: reported by the first test that needs it, and
    only named by the others (a project with 80 tests must not print the same error 80 times)."""

    message: str
    skip: bool  # nothing to test against here (no board given): every test skips, saying why
    reported: bool = False


def _failure(message: str, required_in_ci: bool, available_elsewhere: bool) -> _SetupFailure:
    """A missing board or emulator skips (fails under CI=true when CI installs it); anything else fails."""
    skip = available_elsewhere and not (required_in_ci and IN_CI)
    suffix = " (CI=true: CI must install it)" if available_elsewhere and not skip else ""
    return _SetupFailure(message + suffix, skip)


def _use(value: Any) -> Any:
    """``value``, or the set-up failure it stands for: raised in the first test, named in the others."""
    if not isinstance(value, _SetupFailure):
        return value
    if value.skip:
        pytest.skip(value.message)
    if value.reported:
        pytest.skip(f"the tinygmm device could not be set up (reported once, by the first test that needed it): "
                    f"{value.message.splitlines()[0][:160]}")
    value.reported = True
    pytest.fail(value.message, pytrace=False)


@pytest.fixture(scope="session")
def _tinygmm_session(pytestconfig: pytest.Config, tinygmm_project: Path,
                     _tinygmm_target: TargetSpec | None) -> Iterator[Any]:
    from .verify.session import VerifySession

    opt = pytestconfig.getoption
    spec = _tinygmm_target
    if spec is None:
        yield _SetupFailure("no board or emulator: give --tinygmm-port PORT or --tinygmm-emulator "
                            + "|".join(_emulator_names()), skip=True)
        return
    try:
        session = VerifySession.open(tinygmm_project, spec.env, port=spec.port, emulator=spec.emulator,
                                     baud=opt("tinygmm_baud"), reset=opt("tinygmm_reset"),
                                     offline=opt("tinygmm_offline"))
    except TinyGMMError as e:
        yield _SetupFailure(str(e), skip=False)
        return
    with session:  # stops an emulated board the upload started
        if opt("tinygmm_flash"):
            try:
                session.flash()
            except TinyGMMError as e:
                yield _SetupFailure(f"the upload failed: {e}", skip=False)
                return
        yield session


@pytest.fixture(scope="session")
def _tinygmm_device(pytestconfig: pytest.Config, _tinygmm_session: Any, _tinygmm_target: TargetSpec | None
                    ) -> Iterator[Any]:
    session = _tinygmm_session
    if isinstance(session, _SetupFailure):
        yield session
        return
    target = session.target
    farm = len(_targets(pytestconfig)) > 1
    key = _tinygmm_target.id if _tinygmm_target is not None else ""

    def keep_log(path: Path) -> None:
        pytestconfig.stash[_LOG_KEY][key] = path

    with contextlib.ExitStack() as stack:
        try:
            # in a farm each target's log carries its id: two emulated Unos are both env uno
            log = log_path(session.project, _tinygmm_target) if farm and _tinygmm_target is not None else None
            device = stack.enter_context(session.device(log, on_log=keep_log))
        except StaleFirmware as e:
            yield _SetupFailure(f"refusing to compare: {e}", skip=False)
            return
        except TinyGMMError as e:
            text = str(e)
            missing = "apt-get install" in text or "no serial port" in text or "no port that looks like" in text
            yield _failure(f"{target.transport_name} unavailable: {text}" if missing else text,
                           required_in_ci=target.emulator is not None, available_elsewhere=missing)
            return
        pytestconfig.stash[_DEVICE_KEY][key] = device
        yield device
        del pytestconfig.stash[_DEVICE_KEY][key]


@pytest.fixture(scope="session")
def _tinygmm_report(_tinygmm_session: Any, _tinygmm_device: Any) -> Any:
    if isinstance(_tinygmm_device, _SetupFailure):
        return _tinygmm_device
    try:
        return _tinygmm_session.run(_tinygmm_device)
    except TinyGMMError as e:
        return _SetupFailure(f"the verification run broke off: {e}", skip=False)


@pytest.fixture
def tinygmm_session(_tinygmm_session: Any) -> Any:
    """The project read and the target checked, once (:class:`~tinygmm.verify.session.VerifySession`)."""
    return _use(_tinygmm_session)


@pytest.fixture
def tinygmm_model(_tinygmm_session: Any) -> Any:
    return _use(_tinygmm_session).model


@pytest.fixture
def tinygmm_vectors(_tinygmm_session: Any) -> Any:
    return _use(_tinygmm_session).vectors


@pytest.fixture
def tinygmm_device(_tinygmm_device: Any) -> Any:
    """A synced :class:`~tinygmm.link.client.Device` checked to run the project's model (one per session)."""
    return _use(_tinygmm_device)


@pytest.fixture
def tinygmm_report(_tinygmm_report: Any) -> Any:
    """The whole suite run once on the device: :class:`~tinygmm.verify.report.VerifyReport`."""
    return _use(_tinygmm_report)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    logs = config.stash.get(_LOG_KEY, {})
    for key, log in sorted(logs.items()):
        where = f" of {key}" if key and len(logs) > 1 else ""
        terminalreporter.write_line(f"tinygmm: link log{where} (every byte, timestamped): {log}")
    tally = config.stash.get(_TALLY_KEY, {})
    if len(_targets(config)) > 1 and tally:
        terminalreporter.section("tinygmm targets")
        for t in _targets(config):
            counts = tally.get(t.id, {})
            text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no tests ran"
            terminalreporter.write_line(f"{t.id} ({t.where}): {text}")
        if not logs:  # under xdist the workers kept the logs
            from .verify.session import LOG_DIR

            logs_dir = Path(config.getoption("tinygmm_project")) / LOG_DIR
            terminalreporter.write_line(f"tinygmm: link logs (every byte, timestamped): {logs_dir}")


class _Tally:
    """Outcomes per target, counted where the reports arrive (the controller under xdist)."""

    def __init__(self, counts: dict) -> None:
        self.counts = counts

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        target = dict(report.user_properties).get(TARGET_PROPERTY)
        if target is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        outcome = "error" if report.when == "setup" and report.failed else report.outcome
        counts = self.counts.setdefault(target, {})
        counts[outcome] = counts.get(outcome, 0) + 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    spec = item.callspec.params.get("_tinygmm_target") if hasattr(item, "callspec") else None
    if spec is not None and (TARGET_PROPERTY, spec.id) not in item.user_properties:
        item.user_properties.append((TARGET_PROPERTY, spec.id))  # the reports of every phase share the list
    if report.failed and "tinygmm_device" in getattr(item, "fixturenames", ()):
        targets = _targets(item.config)
        key = spec.id if spec is not None else targets[0].id if targets else ""
        device = item.config.stash.get(_DEVICE_KEY, {}).get(key)
        if device is not None:
            report.sections.append(("tinygmm device log", device.transcript.text()[-LOG_TAIL_CHARS:]))
