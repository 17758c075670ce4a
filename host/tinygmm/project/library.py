"""Export a model as a library for a user's own firmware: PlatformIO (library.json) and the Arduino IDE
(library.properties, src/, a .zip for "Add .ZIP Library").

The library holds the core, the model header (the model's name in its identifiers, so several models
live in one firmware), the serial protocol behind a test-build switch, an example sketch, the model
and its test vectors (what `tinygmm verify` compares with) and the `pio test` runner to copy. Layout::

    library.json  library.properties  README.md  model.json  test_vectors.json
    src/          NAME.h, tinygmm.h, tinygmm_proto.h, tinygmm_serial.h (the hook), tinygmm_proto_gate.h,
                  proto_*.c / proto_*.cpp: one gated wrapper per protocol source
    proto/        the protocol sources as tinygmm ships them (never compiled directly), tinygmm_model.h
    examples/monitor/monitor.ino
    extras/test_custom_runner.py
    dist/NAME.zip

Both IDEs compile every source under src/ of a library a sketch includes, so the protocol sources sit
in proto/ and each has a wrapper in src/ that includes it only in a test build (``TINYGMM_PROTO``
defined; with several model libraries, only in the one ``TINYGMM_PROTO_MODEL`` names). A re-export
follows the rules of every generated folder (generated.py).
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..device.fold import DeviceModel, fold
from ..device.render import c_float, render_header
from ..errors import TinyGMMError
from ..model import Model, model_to_dict
from ..resources import firmware_dir, render_template
from ..verify.vectors import Vectors, dumps_vectors, make_vectors
from .boards import DEFAULT_BAUD, get_board
from .export import memory_lines, own_firmware_context, render_test_runner
from .generated import ExportResult, write_generated

# What of firmware/ a library carries: the core, the protocol and the Arduino hook.
CORE_DIR = "lib/tinygmm"
PROTO_DIRS = ("lib/tinygmm_proto", "lib/tinygmm_serial")
# Protocol headers a user's code includes; the rest of the protocol stays in proto/.
PUBLIC_HEADERS = ("tinygmm_proto.h", "tinygmm_serial.h")
EXAMPLE = "monitor"
# A library's name: a C identifier (its model's identifiers) that Arduino also takes as a library name.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# Fixed zip timestamps: a re-export of the same model writes the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def library_name(folder: str | os.PathLike, name: str | None = None) -> str:
    """``name``, checked, or one made from the folder's name (``my-sensor`` -> ``my_sensor``)."""
    if name is None:
        name = re.sub(r"[^A-Za-z0-9_]", "_", Path(folder).resolve().name)
        if not name[:1].isalpha():
            name = "model_" + name
    if not _NAME.match(name):
        raise TinyGMMError(f"library name {name!r}: letters, digits and _, starting with a letter (it names the "
                           "model's C identifiers and the library)")
    return name


def _stand_in(vectors: Vectors) -> tuple[list[str], list[str]]:
    """The example's stand-in sensor: per feature, the centre and spread of points drawn from the model."""
    drawn = vectors.of_kind("sample").astype(np.float64)
    return [c_float(v) for v in drawn.mean(axis=0)], [c_float(v) for v in drawn.std(axis=0)]


def _zip(name: str, files: dict[str, bytes]) -> bytes:
    """The library as the Arduino IDE's "Add .ZIP Library" takes it: one top folder named like it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in sorted(files):
            info = zipfile.ZipInfo(f"{name}/{rel}", _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[rel])
    return buf.getvalue()


def library_files(dev: DeviceModel, name: str, X_train: np.ndarray | None = None, seed: int = 0,
                  memory: Sequence[str] = ()) -> dict[str, bytes]:
    """Every file of the library for the folded model: relative path -> content."""
    model = dev.source
    fw = firmware_dir()
    header = render_header(dev, name)
    vectors = make_vectors(model, X_train, seed=seed)
    common = dict(tool_version=__version__, model_id=model.model_id, name=name, macro=name.upper())
    files: dict[str, bytes] = {}
    for src in sorted((fw / CORE_DIR).glob("*.h")):
        files[f"src/{src.name}"] = src.read_bytes()
    files[f"src/{name}.h"] = header.encode()
    files["src/tinygmm_proto_gate.h"] = render_template("library/gate.h.j2", **common).encode()
    for folder in PROTO_DIRS:
        for src in sorted(p for p in (fw / folder).iterdir() if p.is_file()):
            if src.name in PUBLIC_HEADERS:
                files[f"src/{src.name}"] = src.read_bytes()
                continue
            files[f"proto/{src.name}"] = src.read_bytes()
            if src.suffix in (".c", ".cpp"):
                files[f"src/proto_{src.name}"] = render_template("library/wrapper.c.j2", source=src.name,
                                                                 **common).encode()
    files["proto/tinygmm_model.h"] = render_template("library/proto_model.h.j2", **common).encode()
    centre, spread = _stand_in(vectors)
    files[f"examples/{EXAMPLE}/{EXAMPLE}.ino"] = render_template(
        "library/example.ino.j2", centre=centre, spread=spread, has_threshold=model.anomaly_threshold is not None,
        features=", ".join(model.feature_names), baud=DEFAULT_BAUD, example=EXAMPLE, **common).encode()
    files["extras/test_custom_runner.py"] = render_test_runner().encode()
    files["model.json"] = (json.dumps(model_to_dict(model), indent=1) + "\n").encode()
    files["test_vectors.json"] = dumps_vectors(vectors).encode()
    description = (f"tinygmm model {model.model_id}: a Gaussian mixture ({model.n_components} {model.covariance_type} "
                   f"components over {model.n_features} features) in float32 C, verified against the host")
    files["library.json"] = (json.dumps({
        "name": name, "version": __version__, "description": description,
        "keywords": ["tinygmm", "gaussian-mixture", "anomaly-detection", "machine-learning"],
        "authors": [{"name": "tinygmm (generated)"}], "frameworks": "*", "platforms": "*",
        "headers": [f"{name}.h", "tinygmm_serial.h"],
        "build": {"srcDir": "src", "includeDir": "src", "flags": "-lm"},  # expf/logf: a native link needs libm named
        "examples": [f"examples/{EXAMPLE}/*.ino"], "export": {"exclude": ["dist", ".tinygmm"]},
    }, indent=2) + "\n").encode()
    files["library.properties"] = render_template("library/library.properties.j2", description=description,
                                                  **common).encode()
    files["README.md"] = render_template(
        "library/README.md.j2", n_components=model.n_components, covariance_type=model.covariance_type,
        n_features=model.n_features, example=EXAMPLE, memory=list(memory), tool_version=__version__,
        model_id=model.model_id, **own_firmware_context(model, name, f"/path/to/{name}")).encode()
    files[f"dist/{name}.zip"] = _zip(name, files)
    return files


def export_library(model: Model, folder: str | os.PathLike, name: str | None = None, board_names: Sequence[str] = (),
                   X_train: np.ndarray | None = None, force: bool = False, seed: int = 0) -> ExportResult:
    """Write (or refresh) the model library in ``folder``; ``name`` defaults to the folder's. The model
    is checked against each of ``board_names`` (refused, naming bytes, when it does not fit)."""
    name = library_name(folder, name)
    boards = [get_board(b) for b in dict.fromkeys(board_names)]
    dev = fold(model)
    memory = memory_lines(dev, boards)
    files = library_files(dev, name, X_train, seed, memory)
    result = write_generated(Path(folder), files, {"model_id": model.model_id, "name": name},
                             force=force, kind="library")
    result.memory = memory
    return result

