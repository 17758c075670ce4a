"""A newcomer's first commands: builds that cannot happen here fail at once and say what to do,
offline builds are discoverable, and the command line is consistent across subcommands."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tinygmm.cli import build_parser, main
from tinygmm.project import build


@pytest.fixture
def no_registry(monkeypatch, tmp_path: Path) -> None:
    """PlatformIO's own core empty and its registry out of reach, as on a fresh offline machine."""
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "empty-core"))
    monkeypatch.delenv("TINYGMM_PIO_CORE", raising=False)
    monkeypatch.setattr(build, "registry_reachable", lambda timeout=build.REGISTRY_TIMEOUT: False)


def test_an_online_build_that_cannot_download_fails_at_once_naming_offline(demo_project: Path, no_registry,
                                                                          capsys) -> None:
    start = time.monotonic()
    assert main(["build", str(demo_project), "-e", "native"]) == 1
    err = capsys.readouterr().err
    assert time.monotonic() - start < 5
    assert "has no native platform" in err and "--offline (--tinygmm-offline under pytest)" in err
    assert main(["verify", str(demo_project), "--emulator", "native"]) == 1
    assert "--offline" in capsys.readouterr().err


def test_a_board_that_cannot_build_offline_fails_at_once_naming_it(demo_project: Path, capsys) -> None:
    start = time.monotonic()
    assert main(["build", str(demo_project), "-e", "esp32dev", "--offline"]) == 1
    assert time.monotonic() - start < 5
    assert "esp32dev cannot be built offline here: no Xtensa ESP32 toolchain" in capsys.readouterr().err


def test_building_every_env_offline_says_which_it_skips(demo_project: Path, pio_core, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    assert main(["build", str(demo_project), "--offline"]) == 0
    assert "skipping esp32dev: it cannot be built offline here" in capsys.readouterr().err


def test_verify_finds_a_board_on_its_port_as_flash_does(demo_project: Path, capsys) -> None:
    """Without --port, a board's env looks for its port (auto), like `tinygmm flash`; native runs here."""
    assert main(["verify", str(demo_project), "-e", "uno"]) == 1  # no Uno attached to this machine
    assert "--port auto found no port that looks like a uno board" in capsys.readouterr().err
    flash = build_parser().parse_args(["flash", "p", "-e", "uno"])
    verify = build_parser().parse_args(["verify", "p", "-e", "uno"])
    assert flash.port == "auto" and verify.port is None and verify.emulator is None


def test_fit_and_select_take_the_same_k_options_and_plot_takes_plot(tmp_path: Path) -> None:
    parser = build_parser()
    for command in ("fit", "select"):
        extra = ["-o", "m.json"] if command == "fit" else []
        assert parser.parse_args([command, "d.csv", "-k", "3", *extra]).n_components == 3
        assert parser.parse_args([command, "d.csv", "--k-range", "1:4", *extra]).k_range == range(1, 5)
    assert parser.parse_args(["plot", "m.json", "d.csv", "--plot", "x.png"]).output == Path("x.png")
    assert "docs/tutorial.md" in parser.format_help()
    assert "Annual Income (k$)" in parser._subparsers._group_actions[0].choices["fit"].format_help()


def test_the_readmes_python_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    import re

    import numpy as np

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README shows its Python"
    monkeypatch.chdir(tmp_path)
    X = np.random.default_rng(0).normal(size=(300, 2)) * [14.0, 26.0] + [39.0, 50.0]
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"X": X})
    from tinygmm import load

    model = load(tmp_path / "model.json")
    assert model.scaler is not None  # the saved model standardises, as the tutorial advises


def test_verify_explains_its_terms(demo_project: Path, pio_core, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    assert main(["verify", str(demo_project), "--emulator", "native", "--no-bench"]) == 0
    out = capsys.readouterr().out
    assert "float32 twin (the host's exact model of the device's arithmetic)" in out
    assert "error/bound: the largest error as a share of what float32 rounding can explain" in out
    assert "certified float32 ties: 200 (boundary 200): inputs whose two best components" in out
    assert "(shown, not required:" in out
    assert "not timed (--no-bench)" in out and "over a pseudo-terminal, no serial line" in out


def test_device_cycles_are_also_shown_in_time_at_the_boards_clock() -> None:
    from tinygmm.verify.report import VerifyReport, format_report

    r = VerifyReport(model_id="0" * 16, target="uno", transport="port /dev/ttyACM0", n_vectors=1, kinds={"sample": 1},
                     checks=[], certified_ties=0, bit_exact={}, cycles={"predict": 6968.0}, clock_unit="cycles",
                     clock_hz=16e6, vectors_per_second={"predict": 900.0, "score": 600.0},
                     bytes_per_vector={"predict": 11.3, "score": 11.3}, link_limit=1440.0)
    text = format_report(r)
    assert "predict 6,968 cycles = 436 us at 16 MHz" in text and "against a raw-payload limit of 1,440/s" in text


def test_the_projects_readme_names_the_offline_options(demo_project: Path) -> None:
    readme = (demo_project / "README.md").read_text()
    assert "`--offline`" in readme and "`--tinygmm-offline`" in readme and "builds native, uno\n" in readme
    listed = re.search(r"`--tinygmm-emulator ([a-z0-9|-]+)`", readme).group(1).split("|")  # the project's envs
    assert sorted(listed) == ["native", "qemu", "simavr"]
