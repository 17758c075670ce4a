"""Device against host on this project's test vectors (copied into every project by `tinygmm export`).

    pytest hil --tinygmm-project . --tinygmm-emulator native
    pytest hil --tinygmm-project . --tinygmm-env uno --tinygmm-port auto --junitxml=device.xml

Each check of tinygmm.verify.compare runs on each kind of vector (training data, model samples, a box around
the data, points 10x and 1000x the span away, decision boundaries, extreme floats, NaN/Inf).
"""
import re

import pytest

from tinygmm.verify.vectors import KINDS
from tinygmm.verify.compare import CHECK_NAMES

pytestmark = pytest.mark.tinygmm


def plain(name: str) -> str:
    """A test id of plain words, easy to select with -k: 'predict-status-equals-the-twin-s'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def test_device_is_built_for_this_board_and_model_shape(tinygmm_device, tinygmm_session, tinygmm_model):
    """The firmware was built for the env under test (not another board's build that runs the same model)."""
    info = tinygmm_device.info
    assert info.target == tinygmm_session.target.env, \
        f"the device runs firmware built for {info.target!r}, not {tinygmm_session.target.env!r}: build and flash that env"
    assert (info.n_components, info.n_features) == (tinygmm_model.n_components, tinygmm_model.n_features)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("check", CHECK_NAMES, ids=plain)
def test_device_agrees_with_host(tinygmm_report, kind, check):
    checks = {c.name: c for c in tinygmm_report.by_kind.get(kind, [])}
    if kind not in tinygmm_report.by_kind:
        pytest.skip(f"no {kind} vectors in this project")
    if check not in checks:
        pytest.skip(f"{check!r} does not apply to this model")
    c = checks[check]
    assert c.passed, f"{c.failures} of {c.checked} {kind} vectors fail {check!r}; e.g. vectors {c.examples}"


def test_predictions_and_log_joints_equal_the_twin_bit_for_bit(tinygmm_report, record_property):
    """The log-joint path uses no libm (docs/core.md), so with IEEE single precision and no fused
    multiply-add every prediction and log-joint equals the float32 twin's bit for bit. Scores and
    probabilities call exp/log, whose last bit differs between libms: their shares are recorded
    as JUnit properties, not required."""
    for op, share in tinygmm_report.bit_exact.items():
        record_property(f"bit_exact_{op}", f"{share:.4f}")
    for op in ("predict", "log_joint"):
        assert tinygmm_report.bit_exact[op] == 1.0, \
            f"{op}: {tinygmm_report.bit_exact[op]:.1%} bit-exact with the float32 twin (the device rounds differently)"


def test_the_link_lost_nothing(tinygmm_report, record_property):
    """Flow control held: no reply corrupted, no request retried, no batch line resent (otherwise
    the throughput and bytes per vector measured are not the link's)."""
    for key, value in tinygmm_report.link.items():
        record_property(f"link_{key}", value)
    lost = {k: v for k, v in tinygmm_report.link.items() if k != "lines_sent" and v}
    assert not lost, f"the link lost or corrupted bytes: {lost} of {tinygmm_report.link['lines_sent']} lines sent"
