"""`pio test` runs tinygmm's verification: a PlatformIO custom test runner (``test_framework = custom``).

A project's ``test/test_custom_runner.py`` (an export writes it; a model library's README shows it)
imports :class:`CustomTestRunner` from here, so PlatformIO's Python must have tinygmm installed.
The same session as `tinygmm verify` (verify/session.py) runs in PlatformIO's three stages, and each
check of its report becomes a PlatformIO test case: PlatformIO's summary, ``--json-output-path`` and
``--junit-output-path`` report them.

- building: the firmware's build (a user's own project: its test build, with -DTINYGMM_PROTO);
  skipped with ``--without-building``, and for a board that is uploaded to (the upload builds);
- uploading: to a board on its port; skipped with ``--without-uploading`` and for emulators;
- testing: open and sync the device (a case: it runs this project's model; stale firmware fails
  it), send every test vector, one case per check, and print tinygmm's table.

Where the firmware runs: the native env on this computer; a board on ``--test-port PORT`` /
``test_port = PORT`` (a serial port or pyserial URL; default: the only port that looks like the
board); or an emulator, named as the test port: ``pio test -e uno --test-port simavr``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from platformio.public import TestCase, TestRunnerBase, TestStatus

from .errors import StaleFirmware
from .project.boards import emulators


class CustomTestRunner(TestRunnerBase):
    """tinygmm's verification as PlatformIO test cases (PlatformIO finds the class by this name)."""

    session: Any = None

    def setup(self) -> None:
        from .project.firmware import read_firmware_project
        from .verify.session import VerifySession

        project = Path(self.project_config.path).parent
        env = self.test_suite.env_name
        port = self.get_test_port() or None
        emulator = None
        if port in emulators():
            emulator, port = port, None
        elif not read_firmware_project(project).envs[env].embedded:
            port = None  # the native env runs here, whatever port the ini names for the boards
        section = f"env:{env}"
        baud = self.get_test_speed() if port and self.project_config.has_option(section, "test_speed") else 0
        self.session = VerifySession.open(project, env, port=port, emulator=emulator, baud=baud)

    def _uploads(self) -> bool:
        return self.session.target.port is not None and not self.options.without_uploading

    def stage_building(self) -> None:
        if self.options.without_building or self._uploads():
            return
        click.secho("Building...", bold=True)
        self.session.build()

    def stage_uploading(self) -> None:
        if not self._uploads():
            return
        click.secho("Uploading..." if self.options.without_building else "Building & Uploading...", bold=True)
        self.session.flash(build=not self.options.without_building)

    def stage_testing(self) -> None:
        if self.options.without_testing:
            return
        from .verify.report import format_report

        click.secho("Testing...", bold=True)
        session = self.session
        identity = f"device: runs model {session.model.model_id} (built for {session.target.env})"
        try:
            with session.device(build=False) as dev:  # built (or not, as asked) by the building stage
                self._add(identity, None)
                report = session.run(dev)
        except StaleFirmware as e:
            self._add(identity, str(e))
            return
        if self.options.verbose:
            click.echo(format_report(report))
        for check in report.checks:
            failed = f"{check.failures} of {check.checked} vectors" + (f", e.g. {check.examples}" if check.examples
                                                                        else f": {check.detail}")
            self._add(check.name, None if check.passed else failed)

    def _add(self, name: str, failure: str | None) -> None:
        """One test case, shown as PlatformIO's own runners show theirs; a failure's text is its output,
        which PlatformIO's summary and JUnit report carry."""
        case = TestCase(name, TestStatus.PASSED if failure is None else TestStatus.FAILED, message=failure,
                        stdout=None if failure is None else f"{name}: {failure}")
        self.test_suite.add_case(case)
        click.echo(case.humanize())
