"""Render a model as a C header for the tinygmm core (Jinja2 template in templates/model.h.j2)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import TinyGMMError
from ..project.boards import BOARDS
from ..resources import render_template
from .fold import DeviceModel

MODEL_TEMPLATE = "model.h.j2"
# Values per line in the generated arrays (9-digit constants: lines stay under ~100 columns).
VALUES_PER_LINE = 6
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COVARIANCE_ENUMS = {"full": "TINYGMM_FULL", "tied": "TINYGMM_TIED", "diag": "TINYGMM_DIAG", "spherical": "TINYGMM_SPHERICAL"}
def model_struct_bytes(pointer_bytes: int) -> int:
    """sizeof(tinygmm_model): 6 pointers + 1 float + 5 uint8_t, padded to the pointer alignment
    (AVR aligns nothing)."""
    raw = 6 * pointer_bytes + 4 + 5
    align = 1 if pointer_bytes == 2 else pointer_bytes
    return -(-raw // align) * align


def c_float(value: float | np.floating) -> str:
    """A float32 as a C literal with 9 significant digits, which parses back to the same float32."""
    v = np.float32(value)
    if not np.isfinite(v):
        raise TinyGMMError(f"cannot write {v} into a model header: every parameter must be finite")
    text = "%.9g" % float(v)
    if not any(c in text for c in ".en"):
        text += ".0"
    if np.float32(float(text)) != v or np.signbit(np.float32(float(text))) != np.signbit(v):
        raise AssertionError(f"{text} does not round-trip to {v!r}")  # a bug, not a user error
    return text + "f"


def _rows(values: np.ndarray, per_line: int = VALUES_PER_LINE) -> list[str]:
    flat = [c_float(v) for v in np.asarray(values, dtype=np.float32).ravel()]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return [line + ("," if i < len(lines) - 1 else "") for i, line in enumerate(lines)]


def _comment_safe(text: str) -> str:
    """Text that cannot end a C comment or break a line."""
    return re.sub(r"[\x00-\x1f\x7f]", "?", str(text)).replace("*/", "* /")


def header_context(dev: DeviceModel, name: str = "gmm_model") -> dict:
    """Everything the template needs, already formatted (the template only loops)."""
    if not _C_IDENTIFIER.match(name):
        raise TinyGMMError(f"model name {name!r} is not a C identifier (letters, digits, _; not starting with a digit)")
    K, D, ct = dev.n_components, dev.n_features, dev.covariance_type
    P = D * (D + 1) // 2
    descriptions = {
        "centre": f"({D}) training mean, subtracted from the input first",
        "inv_scale": f"({D}) 1/scale of the input scaler, applied after centring",
        "bias": f"({K}) log w_k - D/2 log 2pi + log det L_k",
        "offset": {
            "full": f"({K} x {D}) b_k = A_k m_k, the component means folded through the factors",
            "tied": f"({K} x {D}) b_k = A m_k, the component means folded through the shared factor",
            "diag": f"({K} x {D}) component means relative to the centre",
            "spherical": f"({K} x {D}) component means relative to the centre (scaled units)",
        }[ct],
        "factor": {
            "full": f"({K} x {P}) packed rows of the lower-triangular factors A_k (A_k^T A_k = precision_k / 2)",
            "tied": f"({P}) packed rows of the shared lower-triangular factor A (A^T A = precision / 2)",
            "diag": f"({K} x {D}) sqrt(precision / 2) per feature",
            "spherical": f"({K}) precision / 2 per component",
        }[ct],
        "tied_bias": f"({K}) (bias_k - ||b_k||^2) / 2, the constant of the linear score tinygmm_predict uses",
    }
    arrays = []
    for key, values in dev.arrays().items():
        arrays.append({
            "name": f"{name}_{key}",
            "size": int(values.size),
            "comment": f"{key}: {descriptions[key]}",
            "rows": _rows(values),
        })
    scaler = dev.source.scaler
    feature_lines = []
    for j, fname in enumerate(dev.feature_names):
        line = f"x[{j}] {_comment_safe(fname)}"
        if scaler is not None:
            line += f": mean {scaler.mean[j]:.9g}, scale {scaler.scale[j]:.9g}"
        feature_lines.append(line)
    if scaler is not None:
        scaler_summary = "standardised as (x - mean) / scale, " + ("applied on the device" if dev.inv_scale is not None else "folded into the factors")
    else:
        scaler_summary = "no scaler"
    id_bytes = len(dev.model_id) + 1
    size_lines = [f"parameters {dev.parameter_bytes} ({dev.n_floats} floats, flash)"]
    size_lines += [f"  {a['name']}: {4 * a['size']}" for a in arrays]
    by_size: dict[int, list[str]] = {}
    for b in BOARDS.values():
        by_size.setdefault(b.pointer_bytes, []).append(b.env)
    size_lines.append("model struct " + ", ".join(f"{model_struct_bytes(p)} on {'/'.join(envs)}"
                                                  for p, envs in sorted(by_size.items())) + " (flash)")
    size_lines.append(f"model id string {id_bytes} (flash); static RAM 0")
    thr = dev.anomaly_threshold
    return {
        "tool_version": __version__,
        "model_id": dev.model_id,
        "name": name,
        "macro": name.upper(),
        "guard": f"TINYGMM_MODEL_{name.upper()}_H",
        "covariance_type": ct,
        "covariance_enum": _COVARIANCE_ENUMS[ct],
        "n_components": K,
        "n_features": D,
        "scaler_summary": scaler_summary,
        "feature_lines": feature_lines,
        "threshold_text": "none (tinygmm_anomaly returns TINYGMM_ERR_NO_THRESHOLD)" if thr is None else f"{float(thr):.9g}",
        "threshold_literal": "0.0f" if thr is None else c_float(thr),
        "has_threshold": 0 if thr is None else 1,
        "lead": dev.lead,
        "size_lines": size_lines,
        "arrays": arrays,
        "ref_centre": f"{name}_centre",
        "ref_inv_scale": f"{name}_inv_scale" if dev.inv_scale is not None else "NULL",
        "ref_bias": f"{name}_bias",
        "ref_offset": f"{name}_offset",
        "ref_factor": f"{name}_factor",
        "ref_tied_bias": f"{name}_tied_bias" if dev.tied_bias is not None else "NULL",
    }


def render_header(dev: DeviceModel, name: str = "gmm_model") -> str:
    """The C header text defining ``static const tinygmm_model <name>`` and its arrays."""
    return render_template(MODEL_TEMPLATE, **header_context(dev, name))


def write_header(dev: DeviceModel, path: str | Path, name: str = "gmm_model") -> Path:
    """Render the header into ``path`` (parent folders created)."""
    path = Path(path)
    text = render_header(dev, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise TinyGMMError(f"{path}: cannot write the model header: {e.strerror or e}") from None
    return path
