"""What a PlatformIO project's env builds, as verification sees it: an exported project's env, or an env
of a user's own project whose firmware uses a model library (`tinygmm export --library`).

An exported project is its firmware: every env runs the protocol, model.json and test_vectors.json
sit beside platformio.ini, env names are board names. A user's own project is found from its
platformio.ini: each env's board (its ``board`` option, or ``platform = native``) and the model
library it uses (a local folder in ``lib_deps`` -- ``symlink://``, ``file://`` or a path --, in
``lib_extra_dirs`` or in the project's ``lib/``, holding a library manifest); with several model
libraries the env's ``-DTINYGMM_PROTO_MODEL=NAME`` names the one the protocol serves. Its test
build is ``pio run -e ENV`` with ``-DTINYGMM_PROTO`` added (PLATFORMIO_BUILD_FLAGS): the build folder
is the one its normal build uses, so every verification runs the build and PlatformIO rebuilds what
the flag changes. A model library itself stands for a board on a port running a sketch built
elsewhere (the Arduino IDE's test build): nothing to build, flash or emulate.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TinyGMMError
from .boards import BOARDS, Board, get_board
from .generated import MANIFEST, read_manifest

# The flag that compiles a model library's protocol in (firmware/lib/tinygmm_serial, the library's
# gate header), and the one that names the model it serves when a firmware holds several.
TEST_BUILD_FLAG = "-DTINYGMM_PROTO"
PROTO_MODEL_FLAG = re.compile(r"-D\s*TINYGMM_PROTO_MODEL=([A-Za-z_][A-Za-z0-9_]*)")
# The PlatformIO environment variable whose flags are added to every env's build_flags.
BUILD_FLAGS_VAR = "PLATFORMIO_BUILD_FLAGS"
MODEL_FILE = "model.json"
VECTORS_FILE = "test_vectors.json"


@dataclass(frozen=True)
class Firmware:
    """One env of a project: where it is built, for which board, against which model."""

    project: Path  # the PlatformIO project folder
    env: str  # its env
    board: Board  # the board that env builds for
    model_dir: Path  # holds model.json and test_vectors.json: the export itself, or the model library
    artifact: Path | None  # what `pio run -e ENV` makes (None: nothing here builds it, a model library)
    test_flags: str = ""  # added to the build to make it a test build ("": every build of the env is one)
    sources: tuple[Path, ...] = ()  # an export's build is stale when one of these is newer than it

    def build_env_vars(self) -> dict[str, str]:
        """Environment variables for `pio run` so that it makes this firmware's test build."""
        if not self.test_flags:
            return {}
        given = os.environ.get(BUILD_FLAGS_VAR, "")
        return {BUILD_FLAGS_VAR: f"{given} {self.test_flags}".strip()}


@dataclass(frozen=True)
class FirmwareProject:
    """A project's verifiable envs (env -> board) and how to get each one's :class:`Firmware`."""

    root: Path
    exported: bool  # made by `tinygmm export` (else a user's own project using a model library)
    envs: dict[str, Board]
    libraries: dict[str, Path] = field(default_factory=dict)  # env -> model library (user projects)
    build_dir: Path | None = None  # PlatformIO's build folder (user projects)
    library: bool = False  # a model library itself: boards on ports only, running a sketch built elsewhere

    def firmware(self, env: str) -> Firmware:
        board = self.envs[env]
        if self.library:
            return Firmware(self.root, env, board, self.root, None)
        if self.exported:
            sources = tuple(self.root / d for d in ("src", "lib", "include")) + (self.root / "platformio.ini",)
            return Firmware(self.root, env, board, self.root, self.root / board.artifact, sources=sources)
        assert self.build_dir is not None
        artifact = self.build_dir / env / Path(board.artifact).name
        return Firmware(self.root, env, board, self.libraries[env], artifact, test_flags=TEST_BUILD_FLAG)


def exported_envs(manifest: dict) -> list[str]:
    """The envs an exported project builds: native first, then its boards."""
    return ["native", *[b for b in manifest.get("boards", []) if b != "native"]]


def read_firmware_project(project: str | os.PathLike) -> FirmwareProject:
    """An exported project (it has a project manifest) or a user's own PlatformIO project using a
    model library; TinyGMMError saying what the folder is and what to do otherwise."""
    root = Path(project)
    manifest = read_manifest(root)
    if manifest:
        if manifest.get("kind", "project") == "library":  # a board runs a sketch built elsewhere (Arduino IDE)
            boards = {b.env: b for b in BOARDS.values() if b.embedded}
            return FirmwareProject(root, False, boards, {e: root for e in boards}, library=True)
        envs = {e: get_board(e) for e in exported_envs(manifest)}
        return FirmwareProject(root, True, envs)
    if not (root / "platformio.ini").is_file():
        raise TinyGMMError(f"{root} is not a tinygmm project (no {MANIFEST}) nor a PlatformIO project using a "
                           "model library (no platformio.ini); create one with `tinygmm export`")
    return _user_project(root)


def _user_project(root: Path) -> FirmwareProject:
    from platformio.project.config import ProjectConfig
    from platformio.project.exception import ProjectError

    from .pio import inside

    ini = (root / "platformio.ini").resolve()
    envs: dict[str, Board] = {}
    libraries: dict[str, Path] = {}
    problems: list[str] = []
    with inside(ini.parent):  # PlatformIO resolves its folders against the current directory
        try:
            ProjectConfig._instances.pop(str(ini), None)  # its cache is keyed by mtime, too coarse for us
            config = ProjectConfig(str(ini))
            build_dir = Path(config.get("platformio", "build_dir")).resolve()
            lib_dir = Path(config.get("platformio", "lib_dir")).resolve()
            for env in config.envs():
                section = f"env:{env}"
                board = _board_of(config.get(section, "platform", ""), config.get(section, "board", None))
                if board is None:
                    problems.append(f"env {env}: no board tinygmm knows (`tinygmm boards`)")
                    continue
                found = _model_libraries(config, section, lib_dir)
                chosen = _choose_library(found, " ".join(config.get(section, "build_flags", [])))
                if isinstance(chosen, str):
                    problems.append(f"env {env}: {chosen}")
                    continue
                envs[env], libraries[env] = board, chosen
        except ProjectError as e:
            raise TinyGMMError(f"{ini}: {e}") from None
    if not envs:
        raise TinyGMMError(f"{root}: no env builds a firmware tinygmm can verify: " + "; ".join(problems)
                           + ". Export a model library with `tinygmm export --library DIR` and add it to lib_deps")
    return FirmwareProject(root, False, envs, libraries, build_dir)


def _board_of(platform: str, board_id: str | None) -> Board | None:
    """The board table's entry an env builds for: by PlatformIO board id, or the native platform."""
    for b in BOARDS.values():
        if b.board is not None and b.board == board_id:
            return b
        if b.board is None and board_id is None and platform.split("@", 1)[0].strip().rsplit("/", 1)[-1] == b.platform:
            return b
    return None


def _local_folders(config: Any, section: str, lib_dir: Path) -> list[Path]:
    """Folders an env may take libraries from: local lib_deps, lib_extra_dirs' and lib_dir's subfolders."""
    folders: list[Path] = []
    for dep in config.get(section, "lib_deps", []):
        name, sep, rest = dep.partition("=")  # "NAME=symlink://..." names the package
        spec = rest.strip() if sep and "://" not in name else dep.strip()
        for scheme in ("symlink://", "file://"):
            if spec.startswith(scheme):
                spec = spec[len(scheme):]
                break
        else:
            if not spec.startswith((".", "/", "~")):
                continue  # a registry or VCS dependency
        folders.append(Path(spec).expanduser().resolve())
    for parent in [*map(Path, config.get(section, "lib_extra_dirs", [])), lib_dir]:
        parent = parent.expanduser().resolve()
        if parent.is_dir():
            folders.extend(sorted(p for p in parent.iterdir() if p.is_dir()))
    return folders


def _model_libraries(config: Any, section: str, lib_dir: Path) -> dict[str, Path]:
    """The model libraries among an env's library folders, by model name."""
    found: dict[str, Path] = {}
    for folder in _local_folders(config, section, lib_dir):
        try:
            doc = read_manifest(folder)
        except TinyGMMError:
            continue
        if doc.get("kind") == "library" and isinstance(doc.get("name"), str):
            found.setdefault(doc["name"], folder)
    return found


def _choose_library(found: dict[str, Path], build_flags: str) -> Path | str:
    """The library whose model the protocol serves, or why there is none."""
    named = PROTO_MODEL_FLAG.search(build_flags)
    if named:
        name = named.group(1)
        return found.get(name) or f"-DTINYGMM_PROTO_MODEL={name} names no model library it uses ({', '.join(found) or 'none'})"
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        return "uses no model library (none in lib_deps, lib_extra_dirs or lib/)"
    return (f"uses {len(found)} model libraries ({', '.join(sorted(found))}): name the one the protocol serves "
            "with -DTINYGMM_PROTO_MODEL=NAME in its build_flags")
