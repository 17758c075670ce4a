"""docs/tutorial.md cannot rot: each of its commands runs, in order, in one fresh folder holding the Mall
Customers CSV, and each output it shows is checked against what was printed. Commands that need a
board or the network are checked to parse; `pip install` lines must name extras that exist."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import MALL_CSV

from conftest import require, require_programs
from tinygmm.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
IMAGES = {"clusters.png": REPO / "docs" / "img" / "mall-clusters.png",
          "selection.png": REPO / "docs" / "img" / "mall-selection.png"}
# A trailing comment starting with one of these: the command is checked to parse, not run.
PARSE_ONLY = ("needs a board", "needs the network")
STEP_TIMEOUT = 300  # seconds; the slowest step (qemu, paced at 19200 baud) takes about 30 s
CSV_NAME = "Mall_Customers.csv"


def mall_csv() -> Path:
    """$TINYGMM_MALL_CSV, else shared/data/ beside the repository (conftest.MALL_CSV)."""
    return MALL_CSV


@dataclass
class Step:
    kind: str  # "sh" or "python"
    text: str  # the command line, or the Python source
    line: int  # in the tutorial
    block: int  # index of its fenced block
    parse_only: str = ""  # why it is not run
    expected: list[str] = field(default_factory=list)  # output lines shown after its block (last step only)

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    @property
    def label(self) -> str:
        return f"line {self.line}: " + (self.text if self.kind == "sh" else "python block")


def read_steps(text: str) -> list[Step]:
    """The sh commands and python blocks in order; a text block's lines go to the block before it."""
    steps: list[Step] = []
    fence = re.compile(r"^```(\w*)\s*$")
    lines = text.splitlines()
    i, block = 0, 0
    previous: list[Step] = []
    while i < len(lines):
        m = fence.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i + 1
        j = start
        while not lines[j].startswith("```"):
            j += 1
        body = lines[start:j]
        if lang == "sh":
            previous = []
            for n, cmd in enumerate(body):
                if cmd.strip():
                    comment = cmd.split("#", 1)[1].strip() if "#" in cmd else ""
                    why = next((c for c in PARSE_ONLY if comment.startswith(c)), "")
                    previous.append(Step("sh", cmd.strip(), start + n + 1, block, why))
            steps += previous
        elif lang == "python":
            previous = [Step("python", "\n".join(body), start + 1, block)]
            steps += previous
        elif lang == "text" and previous:
            previous[-1].expected += [x for x in body if x.strip()]
            previous = []
        else:
            previous = []
        block += 1
        i = j + 1
    return steps


STEPS = read_steps(TUTORIAL.read_text())
# The article's own code is quoted, not run: a python block that reads the CSV is ours.
STEPS = [s for s in STEPS if s.kind == "sh" or CSV_NAME in s.text]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def squeeze(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text.strip())


def test_the_tutorial_runs_the_whole_path() -> None:
    """Each command is tinygmm or the set-up's activation; the path goes from CSV to a verified board."""
    commands = [s.argv for s in STEPS if s.kind == "sh"]
    assert all(a[0] in ("tinygmm", ".") for a in commands), [a for a in commands if a[0] not in ("tinygmm", ".")]
    words = {" ".join(a[1:3]) for a in commands if a[0] == "tinygmm"}
    for needed in ("select Mall_Customers.csv", "fit Mall_Customers.csv", "plot mall.json", "export mall.json",
                   "build mall-project", "verify mall-project", "flash mall-project"):
        assert needed in words, needed
    run = " ".join(s.text for s in STEPS if not s.parse_only)
    for needed in ("--criterion lrt", "--scale none", "--plot selection.png", "--board uno", "--board esp32dev",
                   "--emulator simavr", "--emulator qemu"):
        assert needed in run, needed
    assert any(s.parse_only == "needs a board" and "flash" in s.argv for s in STEPS)
    # the flashing section runs against the emulated Uno: an upload alone, and one verified
    flashes = [s.argv for s in STEPS if not s.parse_only and s.kind == "sh"
               and ("flash" in s.argv[1:2] or "--flash" in s.argv) and "simavr" in s.argv]
    assert [a[1] for a in flashes] == ["flash", "verify"], flashes


def test_the_readme_links_the_tutorial_and_shows_its_plots() -> None:
    readme = (REPO / "README.md").read_text()
    assert "](docs/tutorial.md)" in readme
    for image in IMAGES.values():
        assert f"](docs/img/{image.name})" in readme
        assert image.is_file() and image.stat().st_size < 200_000, image


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, pio_core) -> Path:
    csv = mall_csv()
    if not csv.is_file():
        pytest.skip(f"the tutorial's data is absent: {csv} (set TINYGMM_MALL_CSV to the Mall Customers CSV)")
    folder = tmp_path_factory.mktemp("tutorial")
    shutil.copy(csv, folder / CSV_NAME)
    return folder


def _require_tools(argv: list[str]) -> None:
    """Skip (fail under CI) a step whose toolchain or emulator is not installed."""
    from tinygmm.project.boards import BOARDS, get_emulator
    from tinygmm.project.build import SIMAVR_HEADER

    env = argv[argv.index("-e") + 1] if "-e" in argv else None
    if argv[1] in ("build", "verify", "flash") and env == "uno":
        missing = BOARDS["uno"].missing_tools()
        require(not missing, "the uno build needs apt-get install " + " ".join(missing))
    if argv[1] == "flash" or "--flash" in argv:
        missing = BOARDS["uno"].toolchain.missing_uploader()
        require(not missing, "uploads need apt-get install " + " ".join(missing))
    if argv[1] in ("build", "verify") and env == "native":
        require_programs("gcc", install="apt-get install gcc")
    if "simavr" in argv:
        packages = " ".join(get_emulator("simavr")[0].packages)
        require_programs("gcc", install="apt-get install gcc " + packages)
        require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install " + packages)
    if "qemu" in argv:
        require_programs("qemu-system-avr", install="apt-get install " + " ".join(get_emulator("qemu")[0].packages))


_outputs: dict[int, list[str]] = {}  # stdout of each block's steps so far


@pytest.mark.parametrize("step", STEPS, ids=[s.label for s in STEPS])
def test_tutorial_step(step: Step, workdir: Path, pio_core) -> None:
    if step.kind == "sh" and step.argv[0] == ".":
        # the set-up: ./run demo made .venv, whose bin/ holds tinygmm and pytest
        run_script = (REPO / "run").read_text()
        assert step.argv[1] == ".venv/bin/activate" and "python3 -m venv .venv" in run_script
        assert re.search(r"demo\)\n\s+venv \S*plot", run_script), "./run demo must install the plot extra"
        return
    if step.parse_only:
        build_parser().parse_args(step.argv[1:])  # exits (a failure here) on a usage error
        return
    if step.kind == "sh":
        _require_tools(step.argv)
        argv = [sys.executable, "-m", "tinygmm", *step.argv[1:]]
    else:
        argv = [sys.executable, "-c", step.text]
    env = {**os.environ, "TINYGMM_PIO_CORE": str(pio_core.core_dir), "PYTHONUNBUFFERED": "1"}
    res = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert res.returncode == 0, f"{step.label} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    _outputs.setdefault(step.block, []).append(res.stdout)
    shown = squeeze("\n".join(_outputs[step.block]))
    for line in step.expected:
        assert squeeze(line) in shown, f"the tutorial shows {line!r} after {step.label}, but it printed:\n{shown}"
    for name, committed in IMAGES.items():
        if f"-o {name}" in step.text or f"--plot {name}" in step.text:
            assert png_size(workdir / name) == png_size(committed), f"{committed} is not the size {name} is now"
