"""`tinygmm export --library`: the model as a library for a user's own firmware (PlatformIO and the Arduino
IDE), its re-export rules, the protocol compiled only in a test build, two models in one firmware, and
the example sketch built for every board whose toolchain is here."""
from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import fit_demo_model, require, require_programs
from tinygmm.cli import main
from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.model import Model
from tinygmm.project.boards import BOARDS
from tinygmm.project.export import export_project
from tinygmm.project.firmware import TEST_BUILD_FLAG, read_firmware_project
from tinygmm.project.generated import MANIFEST
from tinygmm.project.library import EXAMPLE, export_library, library_name
from tinygmm.project.pio import run_pio
from tinygmm.resources import firmware_dir
from test_pio_offline import NO_NETWORK

SHIM = Path(__file__).resolve().parent / "shims"
WARNINGS = ("-Wall", "-Wextra", "-Wdouble-promotion")


@pytest.fixture(scope="module")
def model() -> Model:
    return fit_demo_model(3)


@pytest.fixture(scope="module")
def lib(tmp_path_factory, model: Model) -> Path:
    folder = tmp_path_factory.mktemp("libs") / "room_sensor"
    export_library(model, folder, X_train=demo_data()[0], board_names=["uno"])
    return folder


def test_the_library_installs_in_platformio_and_the_arduino_ide(lib: Path, model: Model) -> None:
    meta = json.loads((lib / "library.json").read_text())
    assert meta["name"] == "room_sensor" and meta["build"]["srcDir"] == "src" and "room_sensor.h" in meta["headers"]
    props = dict(line.split("=", 1) for line in (lib / "library.properties").read_text().splitlines())
    assert props["name"] == "room_sensor" and props["version"] == meta["version"]
    assert props["architectures"] == "*" and props["includes"] == "room_sensor.h"
    for key in ("author", "maintainer", "sentence", "paragraph", "category", "url"):
        assert props[key], key  # the Arduino library specification's required fields
    header = (lib / "src" / "room_sensor.h").read_text()
    assert model.model_id in header and "static const tinygmm_model room_sensor " in header
    assert "ROOM_SENSOR_N_FEATURES" in header and not re.search(r"\bgmm_model\b", header)
    # the core and the protocol as tinygmm ships them; one gated wrapper per protocol source
    fw = firmware_dir()
    assert (lib / "src" / "tinygmm.h").read_bytes() == (fw / "lib/tinygmm/tinygmm.h").read_bytes()
    for src in (fw / "lib/tinygmm_proto").iterdir():
        shipped = lib / ("src" if src.name == "tinygmm_proto.h" else "proto") / src.name
        assert shipped.read_bytes() == src.read_bytes(), src.name
        if src.suffix == ".c":
            wrapper = (lib / "src" / f"proto_{src.name}").read_text()
            assert f'#include "../proto/{src.name}"' in wrapper and "#if TINYGMM_PROTO_HERE" in wrapper
    assert (lib / "examples" / EXAMPLE / f"{EXAMPLE}.ino").is_file()
    assert json.loads((lib / "test_vectors.json").read_text())["model_id"] == model.model_id
    # the .zip the Arduino IDE's "Add .ZIP Library" takes: one top folder named like the library
    with zipfile.ZipFile(lib / "dist" / "room_sensor.zip") as z:
        names = z.namelist()
    assert all(n.startswith("room_sensor/") for n in names)
    assert {"room_sensor/library.properties", "room_sensor/src/room_sensor.h",
            f"room_sensor/examples/{EXAMPLE}/{EXAMPLE}.ino"} <= set(names)
    assert not any(n.startswith(("room_sensor/dist/", "room_sensor/.tinygmm/")) for n in names)
    readme = (lib / "README.md").read_text()
    for needed in ("lib_deps = symlink://", "Add .ZIP Library", "-ffp-contract=off", "tinygmm_serial_begin(Serial)",
                   "tinygmm_serial_poll()", "TINYGMM_PROTO", "test_custom_runner.py", "test_framework = custom",
                   "--test-port simavr", "tinygmm_predict(&room_sensor"):
        assert needed in readme, needed


def test_reexport_updates_the_library_and_never_a_users_file(tmp_path: Path, model: Model) -> None:
    lib = tmp_path / "room_sensor"
    export_library(model, lib)
    assert export_library(model, lib).written == []  # the same bytes, the zip included
    (lib / "src" / "calibration.h").write_text("#define OFFSET 3\n")  # the user's own file
    other = fit_demo_model(4, seed=1)
    result = export_library(other, lib)
    assert {"src/room_sensor.h", "model.json", "test_vectors.json", "dist/room_sensor.zip"} <= set(result.written)
    assert other.model_id in (lib / "src" / "room_sensor.h").read_text()
    assert (lib / "src" / "calibration.h").read_text() == "#define OFFSET 3\n"
    (lib / "src" / "room_sensor.h").write_text("/* edited */\n")
    with pytest.raises(TinyGMMError, match=r"src/room_sensor.h \(edited since the last export\)"):
        export_library(model, lib)
    export_library(model, lib, force=True)
    renamed = export_library(model, lib, name="hall_sensor")  # a new name: the old header goes
    assert "src/room_sensor.h" in renamed.removed and (lib / "src" / "hall_sensor.h").is_file()
    assert json.loads((lib / MANIFEST).read_text())["kind"] == "library"
    # a library and a project never overwrite each other
    with pytest.raises(TinyGMMError, match="holds a tinygmm library, not a project"):
        export_project(model, ["uno"], lib)
    export_project(model, ["uno"], tmp_path / "p")
    with pytest.raises(TinyGMMError, match="holds a tinygmm project, not a library"):
        export_library(model, tmp_path / "p")


def test_library_names_and_the_command_line(tmp_path: Path, model: Model, capsys) -> None:
    assert library_name(tmp_path / "my-sensor.v2") == "my_sensor_v2"
    assert library_name(tmp_path / "2nd") == "model_2nd"
    for bad in ("_x", "9x", "a-b", ""):
        with pytest.raises(TinyGMMError, match="letters, digits and _"):
            library_name(tmp_path, bad)
    from tinygmm.model import save

    save(model, tmp_path / "m.json")
    assert main(["export", str(tmp_path / "m.json"), "--library", str(tmp_path / "libs" / "door"),
                 "--name", "door_sensor", "--board", "uno"]) == 0
    out = capsys.readouterr().out
    assert "model door_sensor: door_sensor.h" in out and "lib_deps = symlink://" in out and "door_sensor.zip" in out
    assert (tmp_path / "libs" / "door" / "src" / "door_sensor.h").is_file()
    assert main(["export", str(tmp_path / "m.json"), "-o", str(tmp_path / "p"), "--name", "x"]) == 1
    assert "--name names a library's model" in capsys.readouterr().err
    # the library folder itself stands for a board running a sketch built elsewhere: ports only
    assert main(["verify", str(tmp_path / "libs" / "door"), "--emulator", "simavr"]) == 1
    assert "is a model library: it builds no firmware to emulate" in capsys.readouterr().err
    assert set(read_firmware_project(tmp_path / "libs" / "door").envs) == {b.env for b in BOARDS.values() if b.embedded}


def _compile_sources(lib: Path, out: Path, *defines: str) -> Path:
    """Every C source of the library's src/ compiled and linked into one relocatable object, as a
    build of a user's firmware compiles them (C99, warnings as errors)."""
    out.mkdir()
    objects = []
    for src in sorted((lib / "src").glob("*.c")):
        obj = out / f"{src.stem}.o"
        proc = subprocess.run(["gcc", "-std=c99", *WARNINGS, "-Werror", "-ffp-contract=off", *defines,
                               f"-I{lib / 'src'}", "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objects.append(str(obj))
    combined = out / "all.o"
    subprocess.run(["ld", "-r", "-o", str(combined), *objects], check=True)
    return combined


def _defined(obj: Path) -> set[str]:
    lines = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in lines.splitlines() if line.strip()}


def test_the_protocol_is_compiled_only_in_a_test_build_of_its_model(lib: Path, tmp_path: Path) -> None:
    require_programs("gcc", "nm", "ld", install="apt-get install gcc binutils")
    normal = _defined(_compile_sources(lib, tmp_path / "normal"))
    assert not any(s.startswith(("tinygmm_proto", "tp_")) for s in normal), normal
    test = _defined(_compile_sources(lib, tmp_path / "test", TEST_BUILD_FLAG))
    assert {"tinygmm_proto_init", "tinygmm_proto_feed", "tinygmm_proto_banner"} <= test
    named = _defined(_compile_sources(lib, tmp_path / "named", TEST_BUILD_FLAG, "-DTINYGMM_PROTO_MODEL=room_sensor"))
    assert "tinygmm_proto_feed" in named
    other = _defined(_compile_sources(lib, tmp_path / "other", TEST_BUILD_FLAG, "-DTINYGMM_PROTO_MODEL=door_sensor"))
    assert not any(s.startswith(("tinygmm_proto", "tp_")) for s in other)


def test_the_arduino_hook_compiles_as_cpp11_and_answers_through_a_stream(lib: Path, tmp_path: Path) -> None:
    """No Arduino core on the host: the hook and the protocol against the Arduino shim, as C++11."""
    require_programs("g++", install="apt-get install g++")
    sketch = tmp_path / "sketch.cpp"
    sketch.write_text('#include <room_sensor.h>\n#include <tinygmm_serial.h>\n'
                      "void setup() { Serial.begin(115200); tinygmm_serial_begin(Serial); }\n"
                      "void loop() { tinygmm_serial_poll(); }\n")
    sources = [sketch, *sorted((lib / "src").glob("*.c")), *sorted((lib / "src").glob("*.cpp")), SHIM / "arduino_shim.cpp"]
    exe = tmp_path / "sketch"
    cmd = ["g++", "-std=c++11", *WARNINGS, "-Werror", "-ffp-contract=off", "-DARDUINO=10819", TEST_BUILD_FLAG,
           f"-I{SHIM}", f"-I{lib / 'src'}", "-x", "c++", *map(str, sources), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], input="hello\n", capture_output=True, text=True, timeout=20)
    assert re.search(r"^0 boot proto=1 model=\w+ target=arduino\b", run.stdout, re.M)
    assert re.search(r"^0 ok hello proto=1 model=", run.stdout, re.M)


TWO_MODELS = r"""
#include <stdio.h>
#include <room_sensor.h>
#include <door_sensor.h>
#include <tinygmm_proto.h>
#include <unistd.h>
static void out(void *u, const uint8_t *d, size_t n) { (void)u; if (write(1, d, n) < 0) _exit(1); }
int main(void) {
    static tinygmm_proto p;
    tinygmm_proto_config cfg = {"native", 4096, "us", NULL, out, NULL, NULL};
    float x[2] = {1.0f, 2.0f};
    int a = -1, b = -1;
    uint8_t c;
    tinygmm_predict(&room_sensor, x, 2, &a);
    tinygmm_predict(&door_sensor, x, 2, &b);
    printf("room %d door %d\n", a, b);
    fflush(stdout);
    tinygmm_proto_init(&p, &cfg);
    while (read(0, &c, 1) == 1) tinygmm_proto_feed(&p, c);
    return 0;
}
"""


def test_two_models_in_one_firmware_and_the_one_the_protocol_serves(tmp_path: Path) -> None:
    require_programs("gcc", install="apt-get install gcc")
    room, door = fit_demo_model(3), fit_demo_model(4, seed=2, shift=5.0)
    libs = [tmp_path / "room_sensor", tmp_path / "door_sensor"]
    export_library(room, libs[0])
    export_library(door, libs[1])
    proj = tmp_path / "fw"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text(TWO_MODELS)
    ini = "[env:native]\nplatform = native\nbuild_flags = {flags}\nlib_deps =\n" + "".join(f"  symlink://{d}\n" for d in libs)
    (proj / "platformio.ini").write_text(ini.format(flags=""))
    with pytest.raises(TinyGMMError, match="uses 2 model libraries.*-DTINYGMM_PROTO_MODEL=NAME"):
        read_firmware_project(proj)
    (proj / "platformio.ini").write_text(ini.format(flags="-DTINYGMM_PROTO_MODEL=door_sensor"))
    assert read_firmware_project(proj).libraries["native"] == libs[1].resolve()
    # the test build of that firmware, as PlatformIO compiles it: both models fit (TINYGMM_MAX_* set to
    # the largest K and D before the first include), one protocol, serving the model named
    sources = [proj / "src" / "main.c", *(f for d in libs for f in sorted((d / "src").glob("*.c")))]
    objects = []
    for i, src in enumerate(sources):  # each library's sources see its own folder first, as in its build
        obj = tmp_path / f"{i}.o"
        subprocess.run(["gcc", "-std=c99", *WARNINGS, "-Werror", "-ffp-contract=off", TEST_BUILD_FLAG,
                        "-DTINYGMM_PROTO_MODEL=door_sensor", "-DTINYGMM_MAX_COMPONENTS=4",
                        *(f"-I{d / 'src'}" for d in libs), "-c", str(src), "-o", str(obj)], check=True)
        objects.append(str(obj))
    subprocess.run(["gcc", *objects, "-lm", "-o", str(tmp_path / "fw.exe")], check=True)
    out = subprocess.run([str(tmp_path / "fw.exe")], input="hello\n", capture_output=True, text=True,
                         timeout=20).stdout
    x = np.array([[1.0, 2.0]])
    assert f"room {room.predict(x)[0]} door {door.predict(x)[0]}" in out.splitlines()
    assert f"model={door.model_id}" in out and room.model_id not in out


def _arduino_boards_here() -> list:
    return [b for b in BOARDS.values() if b.framework == "arduino" and b.buildable_here()]


def test_the_example_sketch_builds_for_every_board_here(lib: Path, tmp_path: Path, pio_core, avr_toolchain) -> None:
    """The Uno offline, and every other Arduino board whose toolchain is here: no warning from the library
    or the sketch, and no protocol in the build (tests/test_user_firmware.py builds and verifies a test build)."""
    boards = _arduino_boards_here()
    require(any(b.env == "uno" for b in boards), "the uno toolchain is needed")
    proj = tmp_path / "example"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / f"{EXAMPLE}.ino").write_bytes((lib / "examples" / EXAMPLE / f"{EXAMPLE}.ino").read_bytes())
    (proj / "platformio.ini").write_text("".join(
        f"[env:{b.env}]\nplatform = {b.platform}\nboard = {b.board}\nframework = arduino\nlib_deps = symlink://{lib}\n"
        f"build_flags = -ffp-contract=off {' '.join(WARNINGS)}\n\n" for b in boards))
    for b in boards:
        res = run_pio(["run", "-e", b.env], proj, pio_core.core_dir, echo=io.StringIO(), extra_env=NO_NETWORK)
        ours = [line for line in res.output.splitlines()
                if "warning:" in line and ("room_sensor" in line or EXAMPLE in line)]
        assert not ours, ours
        assert (proj / ".pio" / "build" / b.env / "firmware.elf").is_file()
        if b.env == "uno":
            symbols = subprocess.run(["avr-nm", str(proj / ".pio/build/uno/firmware.elf")], capture_output=True,
                                     text=True, check=True).stdout
            assert "tp_" not in symbols and "tinygmm_proto" not in symbols
