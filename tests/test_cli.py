"""The command line end to end: in-process main() and the installed `tinygmm` command."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinygmm import cli, load
from tinygmm.data import demo_data

COMMANDS = ["fit", "select", "info", "demo"]


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture
def blobs_csv(tmp_path):
    X, _ = demo_data()
    path = tmp_path / "blobs.csv"
    lines = ["id,label,width (cm),height (cm)"] + [f"{i},{'ab'[i % 2]},{float(x)!r},{float(y)!r}" for i, (x, y) in enumerate(X)]
    path.write_text("\n".join(lines) + "\n")
    return path


def tinygmm_command():
    exe = Path(sys.executable).with_name("tinygmm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tinygmm"]


def test_help_lists_every_command_subprocess():
    res = subprocess.run([*tinygmm_command(), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for name in COMMANDS:
        line = next((ln for ln in res.stdout.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line is not None and len(line.split()) > 2, f"{name} has no one-line help:\n{res.stdout}"


def test_python_dash_m_works():
    res = subprocess.run([sys.executable, "-m", "tinygmm", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("tinygmm ")


def test_fit_with_fixed_k_then_info(tmp_path, blobs_csv, capsys):
    out_path = tmp_path / "out" / "model.json"
    code, out, err = run(["fit", str(blobs_csv), "--columns", "width (cm),height (cm)", "-k", "3",
                          "--covariance", "diag", "--anomaly-percentile", "2", "-o", str(out_path)], capsys)
    assert code == 0, err
    model = load(out_path)
    assert model.n_components == 3 and model.covariance_type == "diag"
    assert model.feature_names == ["width (cm)", "height (cm)"]
    assert model.scaler is not None
    X, _ = demo_data()
    assert model.is_anomaly(X).mean() == pytest.approx(0.02, abs=0.003)
    assert model.model_id in out

    code, out, err = run(["info", str(out_path)], capsys)
    assert code == 0
    for text in (model.model_id, "components:   3", "diag", "width (cm), height (cm)", "standard", "anomaly threshold"):
        assert text in out


def test_fit_with_k_range_chooses_three_and_prints_table(tmp_path, blobs_csv, capsys):
    out_path = tmp_path / "m.json"
    code, out, err = run(["fit", str(blobs_csv), "--columns", "2,3", "--k-range", "1:5", "-o", str(out_path)], capsys)
    assert code == 0, err
    assert load(out_path).n_components == 3
    assert "chosen: k=3: lowest BIC" in out
    chosen = [ln for ln in out.splitlines() if ln.startswith("*")]
    assert len(chosen) == 1 and chosen[0].split()[1] == "3"


def test_fit_is_reproducible_with_seed(tmp_path, blobs_csv, capsys):
    ids = []
    for name in ("a.json", "b.json"):
        assert run(["fit", str(blobs_csv), "--columns", "2,3", "-k", "3", "--n-init", "2", "--seed", "5",
                    "-o", str(tmp_path / name)], capsys)[0] == 0
        ids.append(load(tmp_path / name).model_id)
    assert ids[0] == ids[1]


def test_fit_default_columns_skip_text_and_say_so(tmp_path, blobs_csv, capsys):
    code, out, err = run(["fit", str(blobs_csv), "-k", "2", "--scale", "none", "-o", str(tmp_path / "m.json")], capsys)
    assert code == 0
    assert "'label'" in err
    m = load(tmp_path / "m.json")
    assert m.feature_names == ["id", "width (cm)", "height (cm)"] and m.scaler is None


def test_select_table_columns_aligned_and_lrt(blobs_csv, capsys):
    code, out, err = run(["select", str(blobs_csv), "--columns", "2,3", "--k-range", "1:4", "--criterion", "lrt"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0]
    assert all(h in header for h in ("k", "log-likelihood", "params", "BIC", "AIC", "LRT stat", "df", "p-value"))
    table = lines[1:5]
    # right-aligned columns: every row ends its BIC column at the same place as the header
    bic_end = header.index("BIC") + 3
    assert all(row[bic_end - 1].isdigit() and row[bic_end] == " " for row in table)
    assert [row.split()[0] for row in table if row.startswith("*")] == ["*"]
    assert "chosen: k=3: smallest k whose step to k+1 is not significant" in out


def test_demo_writes_model_and_prints_table_and_info(tmp_path, capsys):
    out_path = tmp_path / "demo" / "model.json"
    code, out, err = run(["demo", "-o", str(out_path)], capsys)
    assert code == 0, err
    model = load(out_path)
    assert model.n_components == 3
    assert "chosen: k=3: lowest BIC" in out and model.model_id in out


def test_demo_default_path_is_relative_to_cwd(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["demo"], capsys)[0] == 0
    assert (tmp_path / "tinygmm-demo" / "model.json").is_file()


def test_quiet_when_stderr_is_not_a_tty(tmp_path, blobs_csv, capsys):
    code, out, err = run(["select", str(blobs_csv), "--columns", "2,3", "--k-range", "1:3", "--n-init", "2"], capsys)
    assert code == 0 and err == ""


def test_progress_when_stderr_is_a_tty(tmp_path, blobs_csv, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(["select", str(blobs_csv), "--columns", "2,3", "--k-range", "1:2", "--n-init", "2"], capsys)
    assert code == 0
    assert "fitting k=2 (2/2), restart 2/2" in err
    assert "fitting" not in out


# --- errors: message on stderr, right exit code, no traceback ------------------------


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["fit", "{csv}", "-k", "2"], 2, "required: -o/--output"),
        (["fit", "{csv}", "-k", "2", "--k-range", "1:3", "-o", "x.json"], 2, "not allowed with"),
        (["select", "{csv}", "--k-range", "5:2"], 2, "5:2"),
        (["select", "{csv}", "--k-range", "oops"], 2, "not a range"),
        (["fit", "{csv}", "-k", "0", "-o", "x.json"], 2, "at least 1"),
        (["bogus"], 2, "invalid choice"),
        ([], 2, "required"),
        (["fit", "{missing}", "-k", "2", "-o", "x.json"], 1, "no such file"),
        (["fit", "{csv}", "--columns", "weight", "-k", "2", "-o", "x.json"], 1, "no column 'weight'"),
        (["fit", "{csv}", "--columns", "2,3", "-k", "1000", "-o", "x.json"], 1, "k=1000 needs at least 1000 rows"),
        (["info", "{missing}"], 1, "no such model file"),
        (["info", "{csv}"], 1, "not a valid model file"),
    ],
)
def test_errors_exit_codes(tmp_path, blobs_csv, capsys, argv, code, message):
    argv = [a.format(csv=blobs_csv, missing=tmp_path / "missing") for a in argv]
    got, out, err = run(argv, capsys)
    assert got == code
    assert err.strip().splitlines()[-1].startswith("tinygmm: error: ")
    assert message in err


def test_edited_model_file_is_reported(tmp_path, blobs_csv, capsys):
    path = tmp_path / "m.json"
    assert run(["fit", str(blobs_csv), "--columns", "2,3", "-k", "2", "-o", str(path)], capsys)[0] == 0
    doc = json.loads(path.read_text())
    doc["weights"] = doc["weights"][::-1]
    path.write_text(json.dumps(doc))
    code, out, err = run(["info", str(path)], capsys)
    assert code == 1 and "field 'model_id'" in err


def test_keyboard_interrupt_exits_130_quietly(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_demo", interrupted)
    code, out, err = run(["demo"], capsys)
    assert code == 130 and out == "" and err == ""


def test_error_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    res = subprocess.run([*tinygmm_command(), "fit", str(bad), "--columns", "a,b", "-k", "1", "-o", str(tmp_path / "m.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.startswith("tinygmm: error: ") and "line 3" in res.stderr and "'b'" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "m.json").exists()


def test_constant_column_is_pointed_out(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("a,b\n" + "".join(f"{i % 7},5\n" for i in range(40)))
    code, out, err = run(["fit", str(path), "-k", "1", "-o", str(tmp_path / "m.json")], capsys)
    assert code == 0 and "'b'" in err and "single value" in err
