"""The demo: the whole path on built-in data with no board (fit, choose k, save, describe, export,
build the native firmware with the offline core, verify). A list of steps run in order, printing
as they go; `tinygmm demo` runs it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .data import demo_data
from .fit.build import fit_selection
from .tables import format_selection
from .model import save
from .tables import format_info

DEMO_K_RANGE = range(1, 7)
# The boards the demo project is exported for (native is built and verified).
DEMO_BOARDS = ("native", "uno", "esp32dev")


@dataclass
class DemoState:
    output: Path
    seed: int
    progress: Callable[[Any], None] | None = None
    on_log: Callable[[Path], None] | None = None
    fitted: Any = None
    model: Any = None
    project: Path | None = None
    passed: bool = True


def _demo_fit(state: DemoState) -> None:
    X, names = demo_data()
    print(f"demo data: {len(X)} points in {len(names)}-D, three Gaussian blobs; choosing k by BIC over "
          f"{DEMO_K_RANGE.start}..{DEMO_K_RANGE.stop - 1}\n")
    state.fitted = fit_selection(X, names, DEMO_K_RANGE, scale="standard", criterion="bic", covariance="full",
                                 n_init=1, seed=state.seed, progress=state.progress)
    print(format_selection(state.fitted.selection))
    print()


def _demo_save(state: DemoState) -> None:
    assert state.fitted is not None
    state.model = state.fitted.to_model(1.0, {"data": "tinygmm demo (three blobs)", "seed": state.seed})
    save(state.model, state.output)


def _demo_info(state: DemoState) -> None:
    print(format_info(state.model, state.output))


def _demo_export(state: DemoState) -> None:
    from .project.export import export_project

    state.project = state.output.parent / "project"
    result = export_project(state.model, list(DEMO_BOARDS), state.project, X_train=state.fitted.X, force=True)
    print(f"\nexported {state.project}: PlatformIO project for {', '.join(DEMO_BOARDS)} "
          f"({len(result.written)} file(s) written)")


def _demo_verify(state: DemoState) -> None:
    from .verify.report import format_report
    from .verify.session import verify_project

    print("building the native firmware with an isolated offline PlatformIO core, then verifying it:")
    report = verify_project(state.project, "native", emulator="native", offline=True, on_log=state.on_log)
    print(format_report(report))
    state.passed = report.passed


DEMO_STEPS: list[tuple[str, Callable[[DemoState], None]]] = [
    ("fit", _demo_fit),
    ("save", _demo_save),
    ("info", _demo_info),
    ("export", _demo_export),
    ("verify", _demo_verify),
]


def run_demo(output: Path, seed: int = 0, progress: Callable[[Any], None] | None = None,
             on_log: Callable[[Path], None] | None = None) -> DemoState:
    """Every step in order; the state says where the project is and whether verify passed."""
    state = DemoState(output, seed, progress, on_log)
    for _name, step in DEMO_STEPS:
        step(state)
    return state
