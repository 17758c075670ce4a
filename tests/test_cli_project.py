"""The project commands of the CLI: export, build, flash, ports (run in-process)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinygmm.cli import main
from tinygmm.project.ports import Port, resolve_port
from tinygmm.errors import TinyGMMError


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model.json"
    assert main(["demo", "-o", str(out)]) == 0
    return out


def test_export_then_reexport(model_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(model_file), "--board", "uno", "-o", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "file(s) written" in out and "flash" in out
    assert main(["export", str(model_file), "--board", "uno", "-o", str(tmp_path / "p")]) == 0
    assert "0 file(s) written" in capsys.readouterr().out


def test_export_refusals_exit_1_without_traceback(model_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(model_file), "--board", "pdp11", "-o", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "unknown board 'pdp11'" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "missing.json"), "-o", str(tmp_path / "p")]) == 1
    assert "missing.json" in capsys.readouterr().err


def test_build_and_flash_check_the_project_first(model_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["build", str(tmp_path / "nothing")]) == 1
    assert "not a tinygmm project" in capsys.readouterr().err
    main(["export", str(model_file), "--board", "uno", "-o", str(tmp_path / "p")])
    capsys.readouterr()
    assert main(["build", str(tmp_path / "p"), "-e", "esp32dev"]) == 1
    assert "has no env 'esp32dev'; it has native, uno" in capsys.readouterr().err
    assert main(["flash", str(tmp_path / "p"), "-e", "native"]) == 1
    assert "cannot flash env 'native'" in capsys.readouterr().err
    assert main(["flash", str(tmp_path / "p"), "-e", "uno", "--port", "/dev/ttyNOSUCHPORT"]) == 1
    assert "no serial port /dev/ttyNOSUCHPORT" in capsys.readouterr().err


def test_port_auto_picks_the_only_matching_board_or_names_candidates() -> None:
    uno = Port("/dev/ttyACM0", "Arduino Uno", "2341:0043", (("uno", "Arduino Uno R3"),))
    ch340 = Port("/dev/ttyUSB0", "USB2.0-Serial", "1A86:7523", (("uno", "CH340"), ("esp32dev", "CH340")))
    serial = Port("/dev/ttyS0", "n/a", None, ())
    assert resolve_port("auto", "uno", [uno, serial]) == "/dev/ttyACM0"
    with pytest.raises(TinyGMMError, match="several ports.*ttyACM0.*ttyUSB0"):
        resolve_port("auto", "uno", [uno, ch340, serial])
    assert resolve_port("auto", "esp32dev", [uno, ch340]) == "/dev/ttyUSB0"
    with pytest.raises(TinyGMMError, match="no port that looks like a esp32dev board"):
        resolve_port("auto", "esp32dev", [uno, serial])
    assert resolve_port("socket://localhost:5555", "uno", []) == "socket://localhost:5555"


def test_ports_lists_something(capsys) -> None:
    assert main(["ports"]) == 0
    assert capsys.readouterr().out.strip()


def test_fit_with_a_fixed_k_and_a_likelihood_ratio_test_is_refused(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n" + "\n".join(f"{i % 7},{(i * 3) % 11}" for i in range(40)) + "\n")
    assert main(["fit", str(csv), "-k", "2", "--criterion", "lrt", "-o", str(tmp_path / "m.json")]) == 1
    assert "use it with --k-range A:B, not -k" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
