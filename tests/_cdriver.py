"""Build and run the C test driver (firmware/dev/tinygmm_driver.c) with the host compiler."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinygmm.device.fold import DeviceModel
from tinygmm.resources import firmware_dir

CORE_DIR = firmware_dir() / "lib" / "tinygmm"
TOOLS_DIR = firmware_dir() / "dev"
DRIVER_SOURCES = [TOOLS_DIR / "tinygmm_driver.c", TOOLS_DIR / "tinygmm_driver_tu2.c"]
# The core's promise: warning-free under these, as C99 and as C++11 (-Wshadow and -Wpedantic on top).
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wdouble-promotion", "-Wconversion", "-Wshadow", "-Werror"]
# -ffp-contract=off: no fused multiply-add, or the twin's bit-for-bit promise does not hold.
COMMON = ["-O2", "-ffp-contract=off", *WARNINGS]
LANGUAGES = {
    "c99": ["gcc", "-std=c99", *COMMON],
    "c++11": ["g++", "-x", "c++", "-std=c++11", *COMMON],
}
# On the host (hardware float) predict and score evaluate models of D <= 3 directly, without the
# pruning search (TINYGMM_DIRECT_FEATURES); this build searches at every D, as soft-float targets do,
# and must give the same bytes.
SEARCH_ONLY = "c99-search"
VARIANTS = {**LANGUAGES, SEARCH_ONLY: [*LANGUAGES["c99"], "-DTINYGMM_DIRECT_FEATURES=0"]}


def have_host_compilers() -> bool:
    return shutil.which("gcc") is not None and shutil.which("g++") is not None


def build_driver(out_dir: Path, language: str, header: Path | None = None, model_name: str = "gmm_model") -> Path:
    """Compile the driver (with a rendered model header, or reading the model from stdin)."""
    cmd = list(VARIANTS[language]) + [f"-I{CORE_DIR}"]
    tag = language
    if header is not None:
        cmd += [f'-DDRIVER_MODEL_HEADER="{header}"', f"-DDRIVER_MODEL={model_name}"]
        tag += "-" + hashlib.sha1(str(header).encode()).hexdigest()[:8]
    exe = out_dir / f"tinygmm_driver-{tag.replace('+', 'p')}"
    cmd += [str(s) for s in DRIVER_SOURCES] + ["-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"compile failed: {' '.join(cmd)}\n{proc.stderr}")
    return exe


def record_dtype(K: int) -> np.dtype:
    return np.dtype([
        ("status_predict", "<i4"), ("label", "<i4"),
        ("status_log_joint", "<i4"), ("log_joint", "<f4", (K,)), ("score_from_log_joint", "<f4"),
        ("status_score", "<i4"), ("score", "<f4"),
        ("status_proba", "<i4"), ("proba", "<f4", (K,)),
        ("status_anomaly", "<i4"), ("anomaly", "<i4"),
        ("status_tu2", "<i4"), ("label_tu2", "<i4"),
    ])


def model_bytes(dev: DeviceModel) -> bytes:
    head = np.array([dev.n_components, dev.n_features, dev.covariance_code,
                     dev.inv_scale is not None, dev.anomaly_threshold is not None, dev.lead], dtype="<i4")
    thr = np.array([0.0 if dev.anomaly_threshold is None else dev.anomaly_threshold], dtype="<f4")
    parts = [head.tobytes(), thr.tobytes()] + [a.astype("<f4").tobytes() for a in dev.arrays().values()]
    return b"".join(parts)


@dataclass
class Driver:
    exe: Path
    embedded_model: bool = False  # built with a rendered header: no model on stdin

    def run(self, dev: DeviceModel, X: np.ndarray, n_given: int | None = None) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype="<f4")
        if X.ndim == 1:
            X = X.reshape(1, -1)
        n = X.shape[1] if n_given is None else n_given
        payload = b"" if self.embedded_model else model_bytes(dev)
        payload += np.array([n, X.shape[0]], dtype="<i4").tobytes() + X.tobytes()
        proc = subprocess.run([str(self.exe)], input=payload, capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"driver failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        return np.frombuffer(proc.stdout, dtype=record_dtype(dev.n_components))
