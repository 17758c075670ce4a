"""Shared fixtures: what a test needs from the machine, skipped with a reason (or failed under CI=true)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tinygmm.pytest_plugin import IN_CI, skip_unless_ci

# Development tooling the tests share with the benchmarks (bench/avr_size.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
# The Mall Customers data of the source article: $TINYGMM_MALL_CSV, else shared/data/ beside the
# repository. It is not part of the repository; tests that need it skip when it is absent.
MALL_CSV = Path(os.environ.get("TINYGMM_MALL_CSV")
                or Path(__file__).resolve().parents[2] / "shared" / "data" / "Mall_Customers.csv")


def fit_demo_model(k: int = 3, seed: int = 0, shift: float = 0.0):
    """A model of the built-in demo data (moved by ``shift``), standardised, fitted with k components."""
    from tinygmm import GaussianMixture
    from tinygmm.data import demo_data
    from tinygmm.model import Model, Scaler

    X, names = demo_data()
    X = X + shift
    scaler = Scaler.fit(X)
    gmm = GaussianMixture(k, random_state=seed).fit(scaler.transform(X))
    return Model.from_gmm(gmm, scaler=scaler, feature_names=names, X_train=scaler.transform(X))


def require(condition: bool, what: str) -> None:
    """Skip the test saying ``what`` is missing; under CI=true a missing tool is a failure."""
    if not condition:
        skip_unless_ci(what, required_in_ci=True)


def require_programs(*programs: str, install: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    require(not missing, f"needs {', '.join(missing)}: {install}")


@pytest.fixture(scope="session")
def pio_core(tmp_path_factory):
    """An offline PlatformIO core (native + uno from Debian packages), made once per session."""
    from tinygmm.project.offline import provision_offline

    return provision_offline(tmp_path_factory.mktemp("pio") / "core")


@pytest.fixture(scope="session")
def demo_project(pio_core):
    """`tinygmm demo`'s project (the demo model exported for native, uno and esp32dev, the native
    firmware built and verified), made once per session; every build goes through ``pio_core``."""
    from tinygmm.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
        root = pio_core.core_dir.parent / "demo"
        assert main(["demo", "-o", str(root / "model.json")]) == 0
        yield root / "project"


@pytest.fixture
def avr_toolchain():
    from tinygmm.project.boards import BOARDS

    missing = BOARDS["uno"].missing_tools()
    require(not missing, "the uno build needs apt-get install " + " ".join(missing))

pytest_plugins = ["pytester"]

# Under CI the property tests draw the same examples every run (a red CI run must be reproducible);
# elsewhere they explore new ones each time.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")
