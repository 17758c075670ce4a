"""Device against host on this project's test vectors (copied into every project by `tinygmm export`).

    pytest hil --tinygmm-project . --tinygmm-emulator native
    pytest hil --tinygmm-project . --tinygmm-env uno --tinygmm-port auto --junitxml=device.xml

Each check of tinygmm.verify.compare runs on each kind of vector (training data, model samples, a box around
the data, points 10x and 1000x the span away, decision boundaries, extreme floats, NaN/Inf).
"""
import pytest

from tinygmm.verify.vectors import KINDS
from tinygmm.verify.compare import CHECK_NAMES

pytestmark = pytest.mark.tinygmm


def test_device_runs_this_projects_model(tinygmm_device, tinygmm_model):
    assert tinygmm_device.info.model_id == tinygmm_model.model_id


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("check", CHECK_NAMES)
def test_device_agrees_with_host(tinygmm_report, kind, check):
    checks = {c.name: c for c in tinygmm_report.by_kind.get(kind, [])}
    if kind not in tinygmm_report.by_kind:
        pytest.skip(f"no {kind} vectors in this project")
    if check not in checks:
        pytest.skip(f"{check!r} does not apply to this model")
    c = checks[check]
    assert c.passed, f"{c.failures} of {c.checked} {kind} vectors fail {check!r}; e.g. vectors {c.examples}"


def test_bit_exact_share_is_reported(tinygmm_report):
    """Not a requirement (exp/log differ between libms): shown in the JUnit properties and the log."""
    for op, share in tinygmm_report.bit_exact.items():
        print(f"bit-exact with the float32 twin, {op}: {share:.1%}")
    assert set(tinygmm_report.bit_exact) >= {"predict", "log_joint", "score"}
