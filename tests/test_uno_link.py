"""The Uno's serial link under load: a model whose one inference takes longer than the receive ring
takes to fill (K=16, D=8, full: up to ~220k cycles, 14 ms, while 115200 baud fills 63 bytes in
5.5 ms) loses no byte in simavr, and a run that does lose bytes is reported as a failure."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.model import Model
from tinygmm.project.build import SIMAVR_HEADER
from tinygmm.project.export import export_project
from tinygmm.verify.report import format_report
from tinygmm.verify.session import LINK_CHECK, verify_project


@pytest.fixture(scope="module")
def blobs_project(tmp_path_factory, pio_core) -> Path:
    from sklearn.datasets import make_blobs

    from tinygmm.project.boards import get_board

    missing = get_board("uno").missing_tools()
    require(not missing, "the uno build needs apt-get install " + " ".join(missing))
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install simavr libsimavr-dev")
    X, _ = make_blobs(4000, n_features=8, centers=16, random_state=0)
    model = Model.from_gmm(GaussianMixture(16, covariance_type="full", random_state=0).fit(X), X_train=X)
    project = tmp_path_factory.mktemp("blobs") / "project"
    export_project(model, ["uno"], project, X_train=X)
    return project


def test_a_slow_model_loses_no_byte_on_the_uno(blobs_project: Path, pio_core, monkeypatch) -> None:
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    report = verify_project(blobs_project, "uno", emulator="simavr", offline=True, bench=False)
    print("\n" + format_report(report))
    link = next(c for c in report.checks if c.name == LINK_CHECK)
    assert link.passed, f"{link.detail} ({report.link})"
    assert report.link["lines_sent"] >= 5 and report.device["rx"] == "253"


def test_lost_bytes_fail_the_run(blobs_project: Path, pio_core, monkeypatch, tmp_path: Path) -> None:
    """A host that breaks the flow-control rule (claims a bigger receive buffer than the Uno has)
    makes the device drop bytes: the run must say FAIL and count what was resent."""
    from tinygmm.link import client
    from tinygmm.verify.vectors import Vectors, dumps_vectors, load_vectors

    project = tmp_path / "project"  # the same build, with 150 sample vectors: enough to overrun
    shutil.copytree(blobs_project, project, symlinks=True)
    vectors = load_vectors(project / "test_vectors.json")
    rows = [i for i, k in enumerate(vectors.kinds) if k == "sample"][:150]
    (project / "test_vectors.json").write_text(dumps_vectors(Vectors([vectors.kinds[i] for i in rows],
                                                                     vectors.X[rows], vectors.model_id)))

    real_hello = client.Device.hello

    def bragging_hello(self):  # the device's rx= as if the ring were 4 KB
        info = real_hello(self)
        object.__setattr__(info, "rx_buffer", 4096)
        return info

    monkeypatch.setattr(client.Device, "hello", bragging_hello)
    monkeypatch.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
    report = verify_project(project, "uno", emulator="simavr", offline=True, bench=False)
    link = next(c for c in report.checks if c.name == LINK_CHECK)
    assert not link.passed and not report.passed
    assert report.link["resent_lines"] > 0 or report.link["corrupted_lines"] > 0
    assert "FAIL" in format_report(report) and "resent batch lines" in format_report(report)
    assert np.isfinite(report.seconds)

