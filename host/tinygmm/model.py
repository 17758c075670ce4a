"""The model file: a fitted GMM with its scaler and metadata, its JSON schema, validation and id.

It is longer than 500 lines because it holds every way a model comes in (a fitted estimator or
scikit-learn pipeline, a file) beside the one validation all of them pass through.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .fit.covariance import COVARIANCE_TYPES, log_gaussian_prob, precision_cholesky, precisions_from_cholesky
from .files import write_atomic
from .errors import TinyGMMError

if TYPE_CHECKING:
    from .fit.mixture import GaussianMixture

FORMAT = "tinygmm-model"
SCHEMA_VERSION = 1
# |sum(weights) - 1| allowed in a model.  EM's weights sum to 1 within a few ulps times K
# (scikit-learn: nk / n); 1e-8 accepts any honest rounding of K <= 10^6 components while
# catching a hand-edited weight.
WEIGHT_SUM_TOL = 1e-8
# Relative asymmetry |C - C^T| / max|C| allowed in a full/tied covariance: M-step products
# are symmetric up to rounding (~1e-16); anything past 1e-8 is not a covariance matrix.
SYMMETRY_TOL = 1e-8
# Hex digits of the sha256 kept as the model id (64 bits: collisions are not a concern).
MODEL_ID_HEX = 16


class ModelFieldError(TinyGMMError):
    """A model parameter is invalid; ``field`` names it (``covariances[2]``)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r} {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, eq=False)
class Scaler:
    """Standardisation ``x_scaled = (x - mean) / scale``, as scikit-learn's StandardScaler."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,), > 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _frozen_array(self.mean, "scaler.mean"))
        object.__setattr__(self, "scale", _frozen_array(self.scale, "scaler.scale"))
        if self.mean.ndim != 1 or self.scale.shape != self.mean.shape:
            raise ModelFieldError("scaler", f"needs mean and scale of equal length, got {self.mean.shape} and {self.scale.shape}")
        _check_finite(self.mean, "scaler.mean")
        _check_finite(self.scale, "scaler.scale")
        if np.any(self.scale <= 0):
            raise ModelFieldError(f"scaler.scale[{int(np.argmin(self.scale))}]", "is not positive")

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        """scikit-learn's StandardScaler fitted to X, so that ``tinygmm fit`` makes the model a Pipeline makes."""
        from sklearn.preprocessing import StandardScaler

        return cls.from_sklearn(StandardScaler().fit(np.asarray(X, dtype=np.float64)))

    @classmethod
    def from_sklearn(cls, scaler: Any) -> Scaler:
        """A fitted StandardScaler, duck-typed (``mean_``, ``scale_``), honouring ``with_mean``/``with_std``."""
        if not (hasattr(scaler, "mean_") and hasattr(scaler, "scale_")):
            raise TinyGMMError(f"expected a fitted StandardScaler, but {type(scaler).__name__} has no mean_/scale_")
        D = int(scaler.n_features_in_) if hasattr(scaler, "n_features_in_") else len(scaler.mean_ if scaler.mean_ is not None else scaler.scale_)
        # StandardScaler(with_mean=False) still computes mean_ but does not subtract it.
        use_mean = getattr(scaler, "with_mean", True) and scaler.mean_ is not None
        use_std = getattr(scaler, "with_std", True) and scaler.scale_ is not None
        return cls(scaler.mean_ if use_mean else np.zeros(D), scaler.scale_ if use_std else np.ones(D))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.scale

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Scaler)
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.scale, other.scale)
        )


@dataclass(eq=False)
class Model:
    """A fitted Gaussian mixture ready to save, export or predict with.

    ``means`` and ``covariances`` live in the scaled space when ``scaler`` is set; the
    predict methods take raw data and scale it first.  ``anomaly_threshold`` is on
    ``score_samples`` (the log-density of the *scaled* input): points scoring below it
    are anomalies.  Arrays are validated on construction and stored read-only.
    """

    covariance_type: str
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # full (K,D,D), tied (D,D), diag (K,D), spherical (K,)
    scaler: Scaler | None = None
    feature_names: list[str] = field(default_factory=list)  # empty -> x0..x{D-1}
    anomaly_threshold: float | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived --------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def precisions_cholesky(self) -> np.ndarray:
        """Lower-triangular ``L`` with ``precision = L @ L.T`` (scikit-learn's shapes)."""
        return precision_cholesky(self.covariances, self.covariance_type)

    @property
    def model_id(self) -> str:
        """Hash of everything that changes outputs (not feature names nor metadata)."""
        return compute_model_id(self)

    # -- conversion -----------------------------------------------------------------
    def to_gmm(self) -> GaussianMixture:
        """A fitted ``tinygmm.GaussianMixture`` with these parameters (scaled space)."""
        from .fit.mixture import GaussianMixture

        gmm = GaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type)
        prec_chol = self.precisions_cholesky
        gmm.weights_ = self.weights.copy()
        gmm.means_ = self.means.copy()
        gmm.covariances_ = self.covariances.copy()
        gmm.precisions_cholesky_ = prec_chol
        gmm.precisions_ = precisions_from_cholesky(prec_chol, self.covariance_type)
        gmm.converged_ = bool(self.metadata.get("converged", True))
        gmm.n_iter_ = int(self.metadata.get("n_iter", 0))
        gmm.lower_bound_ = float(self.metadata.get("lower_bound", -np.inf))
        gmm.n_features_in_ = self.n_features
        return gmm

    @classmethod
    def from_gmm(
        cls,
        gmm: Any,
        scaler: Scaler | None = None,
        feature_names: list[str] | None = None,
        X_train: np.ndarray | None = None,
        threshold_percentile: float = 1.0,
    ) -> Model:
        """Wrap a fitted GaussianMixture or BayesianGaussianMixture (tinygmm's or scikit-learn's, duck-typed).

        ``X_train`` is the raw (unscaled) training data; when given, the anomaly threshold
        is the ``threshold_percentile`` percentile of its ``score_samples``.
        """
        missing = [a for a in ("weights_", "means_", "covariances_", "covariance_type") if not hasattr(gmm, a)]
        if missing:
            raise TinyGMMError(
                f"expected a fitted GaussianMixture, but {type(gmm).__name__} has no {', '.join(missing)}; call fit() first"
            )
        weights, means, covariances = _float64_parameters(gmm)
        D = means.shape[1] if means.ndim == 2 else 0
        metadata: dict[str, Any] = {
            "tool": f"tinygmm {__version__}",
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "source": f"{type(gmm).__module__}.{type(gmm).__name__}",
        }
        for attr, key, conv in (("converged_", "converged", bool), ("n_iter_", "n_iter", int), ("lower_bound_", "lower_bound", float)):
            if hasattr(gmm, attr):  # .item(): a tied BayesianGaussianMixture's lower_bound_ is a 1-element array
                metadata[key] = conv(np.asarray(getattr(gmm, attr)).item())
        model = cls(
            covariance_type=str(gmm.covariance_type),
            weights=weights,
            means=means,
            covariances=covariances,
            scaler=scaler,
            feature_names=list(feature_names) if feature_names is not None else [f"x{j}" for j in range(D)],
            metadata=metadata,
        )
        if X_train is not None:
            if not 0.0 <= threshold_percentile <= 100.0:
                raise TinyGMMError(f"anomaly percentile {threshold_percentile} is outside 0..100")
            scores = model.score_samples(X_train)
            model.anomaly_threshold = float(np.percentile(scores, threshold_percentile))
            model.metadata["n_train"] = int(scores.shape[0])
            model.metadata["threshold_percentile"] = float(threshold_percentile)
        return model

    # -- inference on raw data ------------------------------------------------------
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Check the shape of raw ``X`` and apply the scaler (if any)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            got = X.shape[1] if X.ndim == 2 else X.shape
            raise TinyGMMError(
                f"the model expects {self.n_features} features ({', '.join(self.feature_names)}), got {got}"
            )
        return self.scaler.transform(X) if self.scaler is not None else X

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        """(N, K) float64 ``log w_k + log N(x | mu_k, Sigma_k)`` of the scaled raw ``X``: the reference
        the device is verified against, from centred differences (exact for offset data)."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights) + log_gaussian_prob(self.transform(X), self.means, self.precisions_cholesky,
                                                            self.covariance_type)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.to_gmm().predict(self.transform(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.to_gmm().predict_proba(self.transform(X))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Log-density of each scaled point (the quantity ``anomaly_threshold`` applies to)."""
        return self.to_gmm().score_samples(self.transform(X))

    def is_anomaly(self, X: np.ndarray) -> np.ndarray:
        if self.anomaly_threshold is None:
            raise TinyGMMError("the model has no anomaly threshold; fit it with training data to set one")
        return self.score_samples(X) < self.anomaly_threshold


def _float64_parameters(gmm: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A mixture's weights, means and covariances in float64. A float32 fit's weights sum to 1, and its
    covariances are symmetric, only to float32's precision (scikit-learn's tied one can be 1e-4 off),
    coarser than the model's tolerances: the weights are renormalised, the covariances symmetrised."""
    weights, means, covariances = (np.asarray(getattr(gmm, a), dtype=np.float64)
                                   for a in ("weights_", "means_", "covariances_"))
    if np.asarray(gmm.weights_).dtype != np.float64:
        weights = weights / weights.sum()
        if gmm.covariance_type in ("full", "tied"):
            covariances = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
    return weights, means, covariances


def from_sklearn(
    estimator: Any,
    scaler: Any = None,
    feature_names: list[str] | None = None,
    X_train: np.ndarray | None = None,
    threshold_percentile: float = 1.0,
) -> Model:
    """Import a fitted mixture with its scaler, without loss.

    ``estimator``: a fitted GaussianMixture or BayesianGaussianMixture (scikit-learn's or tinygmm's),
    with a fitted StandardScaler as ``scaler`` or none; or a fitted Pipeline of a StandardScaler and
    such a mixture, which brings its scaler. Read duck-typed (``weights_``, ``means_``,
    ``covariances_``, ``covariance_type``; ``mean_``, ``scale_``). Of a BayesianGaussianMixture the
    model is the point estimate those attributes describe (its own predict takes expectations over
    the variational posterior, which can differ near boundaries). Feature names default to
    ``feature_names_in_``; ``X_train`` (raw data) sets the anomaly threshold as in ``Model.from_gmm``.
    """
    from sklearn.pipeline import Pipeline

    if feature_names is None and hasattr(estimator, "feature_names_in_"):
        feature_names = [str(n) for n in estimator.feature_names_in_]
    if isinstance(estimator, Pipeline):
        estimator, scaler = _pipeline_mixture_and_scaler(estimator, scaler)
    own_scaler = None if scaler is None else Scaler.from_sklearn(scaler)
    return Model.from_gmm(estimator, own_scaler, feature_names, X_train, threshold_percentile)


def _pipeline_mixture_and_scaler(pipeline: Any, scaler: Any) -> tuple[Any, Any]:
    """(mixture, scaler) of a Pipeline(StandardScaler, mixture), or of a Pipeline(mixture) beside ``scaler``."""
    steps = [step for _, step in pipeline.steps if step is not None and not (isinstance(step, str) and step == "passthrough")]
    if len(steps) == 1:
        return steps[0], scaler
    if len(steps) == 2 and scaler is None:
        return steps[1], steps[0]
    names = ", ".join(type(step).__name__ for step in steps) or "no steps"
    beside = " and a scaler= beside it" if scaler is not None else ""
    raise TinyGMMError(f"expected a Pipeline of a StandardScaler and a mixture, got one of {names}{beside}")


# -- id -------------------------------------------------------------------------------


def compute_model_id(model: Model) -> str:
    """sha256 over a canonical text of the output-affecting parameters (float.hex), 16 hex chars."""

    def arr(name: str, a: np.ndarray) -> str:
        shape = "x".join(str(n) for n in a.shape)
        return f"{name}[{shape}]=" + ",".join(float(v).hex() for v in a.ravel())

    parts = [
        f"{FORMAT}/{SCHEMA_VERSION}",
        f"covariance_type={model.covariance_type}",
        arr("weights", model.weights),
        arr("means", model.means),
        arr("covariances", model.covariances),
    ]
    if model.scaler is None:
        parts.append("scaler=none")
    else:
        parts += [arr("scaler.mean", model.scaler.mean), arr("scaler.scale", model.scaler.scale)]
    thr = model.anomaly_threshold
    parts.append("anomaly_threshold=" + ("none" if thr is None else float(thr).hex()))
    return hashlib.sha256("\n".join(parts).encode("ascii")).hexdigest()[:MODEL_ID_HEX]


# -- file -----------------------------------------------------------------------------


def model_to_dict(model: Model) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "model_id": model.model_id,
        "covariance_type": model.covariance_type,
        "n_components": model.n_components,
        "n_features": model.n_features,
        "feature_names": list(model.feature_names),
        "weights": model.weights.tolist(),
        "means": model.means.tolist(),
        "covariances": model.covariances.tolist(),
        "scaler": None if model.scaler is None else {"mean": model.scaler.mean.tolist(), "scale": model.scaler.scale.tolist()},
        "anomaly_threshold": model.anomaly_threshold,
        "metadata": model.metadata,
    }


def save(model: Model, path: str | os.PathLike) -> None:
    """Write ``model`` as JSON to ``path`` atomically (a crash never leaves a half-written file).

    Floats are written with Python's shortest round-trip repr, so ``load`` gets them back bit for bit.
    """
    _validate(model)
    try:
        text = _dumps(model_to_dict(model)) + "\n"
    except (TypeError, ValueError) as e:
        raise ModelFieldError("metadata", f"cannot be written as JSON: {e}") from None
    write_atomic(path, text, "the model")


def load(path: str | os.PathLike) -> Model:
    """Read and validate a model file; every problem names the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TinyGMMError(f"{path}: no such model file; create one with `tinygmm fit`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TinyGMMError(f"{path}: cannot read the model file: {e}") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise TinyGMMError(f"{path}: not a valid model file (JSON error: {e})") from None
    except RecursionError:  # Python's JSON parser recurses once per nesting level
        raise TinyGMMError(f"{path}: not a valid model file (JSON nested too deeply)") from None
    try:
        return model_from_dict(doc)
    except ModelFieldError as e:
        raise TinyGMMError(f"{path}: {e}") from None


def model_from_dict(doc: Any) -> Model:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFieldError("format", f"is not {FORMAT!r}; this is not a tinygmm model file")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ModelFieldError(
            "schema_version",
            f"is {version!r}, but this tinygmm ({__version__}) reads version {SCHEMA_VERSION}; "
            "use a matching tinygmm version or re-create the model",
        )
    for key in ("model_id", "covariance_type", "feature_names", "weights", "means", "covariances"):
        if key not in doc:
            raise ModelFieldError(key, "is missing")
    scaler_doc = doc.get("scaler")
    scaler = None
    if scaler_doc is not None:
        if not isinstance(scaler_doc, dict) or "mean" not in scaler_doc or "scale" not in scaler_doc:
            raise ModelFieldError("scaler", "must be null or an object with 'mean' and 'scale'")
        scaler = Scaler(_array(scaler_doc["mean"], "scaler.mean"), _array(scaler_doc["scale"], "scaler.scale"))
    threshold = doc.get("anomaly_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise ModelFieldError("anomaly_threshold", "must be a number or null")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFieldError("metadata", "must be an object")
    model = Model(
        covariance_type=doc["covariance_type"],
        weights=_array(doc["weights"], "weights"),
        means=_array(doc["means"], "means"),
        covariances=_array(doc["covariances"], "covariances"),
        scaler=scaler,
        feature_names=doc["feature_names"],
        anomaly_threshold=None if threshold is None else float(threshold),
        metadata=metadata,
    )
    for key in ("n_components", "n_features"):
        if key in doc and doc[key] != getattr(model, key):
            raise ModelFieldError(key, f"is {doc[key]!r} but the parameters have {getattr(model, key)}")
    if doc["model_id"] != model.model_id:
        raise ModelFieldError(
            "model_id",
            f"is {doc['model_id']!r} but the parameters hash to {model.model_id!r}: the file was changed "
            "after it was written; re-create it with `tinygmm fit` (or fix the edit)",
        )
    return model


# -- validation -----------------------------------------------------------------------


def _validate(m: Model) -> None:
    if m.covariance_type not in COVARIANCE_TYPES:
        raise ModelFieldError("covariance_type", f"is {m.covariance_type!r}; expected one of {', '.join(COVARIANCE_TYPES)}")
    m.weights = _frozen_array(m.weights, "weights")
    m.means = _frozen_array(m.means, "means")
    m.covariances = _frozen_array(m.covariances, "covariances")
    if m.weights.ndim != 1 or m.weights.shape[0] < 1:
        raise ModelFieldError("weights", f"must be a non-empty list, got shape {m.weights.shape}")
    if m.means.ndim != 2 or m.means.shape[0] < 1 or m.means.shape[1] < 1:
        raise ModelFieldError("means", f"must have shape (n_components, n_features), got {m.means.shape}")
    # The number of components is what most of weights, means and covariances say: the odd one out
    # is the field named wrong (the means decide a tie).
    counts = [m.means.shape[0], m.weights.shape[0]]
    if m.covariance_type != "tied" and m.covariances.ndim >= 1:
        counts.append(m.covariances.shape[0])
    K = max(counts, key=lambda k: (counts.count(k), k == m.means.shape[0]))
    if m.weights.shape[0] != K:
        raise ModelFieldError("weights", f"has {m.weights.shape[0]} entries but the model has {K} components")
    if m.means.shape[0] != K:
        raise ModelFieldError("means", f"must have shape ({K}, n_features), got {m.means.shape}")
    D = m.means.shape[1]
    expected = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[m.covariance_type]
    if m.covariances.shape != expected:
        raise ModelFieldError("covariances", f"must have shape {expected} for {m.covariance_type!r}, got {m.covariances.shape}")
    for name, a in (("weights", m.weights), ("means", m.means), ("covariances", m.covariances)):
        _check_finite(a, name)
    if np.any(m.weights <= 0):
        raise ModelFieldError(f"weights[{int(np.argmin(m.weights))}]", "is not positive")
    if abs(float(m.weights.sum()) - 1.0) > WEIGHT_SUM_TOL:
        raise ModelFieldError("weights", f"sum to {float(m.weights.sum())!r}, not 1 (tolerance {WEIGHT_SUM_TOL})")
    _check_positive_definite(m.covariances, m.covariance_type)
    if m.scaler is not None:
        if not isinstance(m.scaler, Scaler):
            raise ModelFieldError("scaler", f"must be a tinygmm Scaler, got {type(m.scaler).__name__}")
        if m.scaler.mean.shape != (D,):
            raise ModelFieldError("scaler", f"has {m.scaler.mean.shape[0]} features but the means have {D}")
    if not m.feature_names:
        m.feature_names = [f"x{j}" for j in range(D)]
    if not isinstance(m.feature_names, list) or not all(isinstance(n, str) for n in m.feature_names):
        raise ModelFieldError("feature_names", "must be a list of strings")
    if len(m.feature_names) != D:
        raise ModelFieldError("feature_names", f"has {len(m.feature_names)} names but the model has {D} features")
    if m.anomaly_threshold is not None:
        if not math.isfinite(m.anomaly_threshold):
            raise ModelFieldError("anomaly_threshold", "is not finite")
        m.anomaly_threshold = float(m.anomaly_threshold)
    if not isinstance(m.metadata, dict):
        raise ModelFieldError("metadata", "must be a dict")


def _check_positive_definite(cov: np.ndarray, covariance_type: str) -> None:
    if covariance_type in ("diag", "spherical"):
        bad = np.argwhere(cov <= 0)
        if len(bad):
            raise ModelFieldError(f"covariances[{', '.join(str(int(i)) for i in bad[0])}]", "is not positive")
        return
    mats = cov if covariance_type == "full" else cov[None]
    for k, c in enumerate(mats):
        name = f"covariances[{k}]" if covariance_type == "full" else "covariances"
        if np.max(np.abs(c - c.T)) > SYMMETRY_TOL * np.max(np.abs(c)):
            raise ModelFieldError(name, "is not symmetric")
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise ModelFieldError(name, "is not positive definite") from None


def _frozen_array(value: Any, name: str) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)  # a copy: the model owns its arrays
    except (TypeError, ValueError):
        raise ModelFieldError(name, "must be numbers in a regular (non-ragged) array") from None
    a.setflags(write=False)
    return a


def _array(value: Any, name: str) -> np.ndarray:
    """A JSON list of numbers (no strings, booleans or nulls) as float64."""

    def walk(v: Any, where: str) -> None:
        if isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ModelFieldError(where, f"is {v!r}, not a number")

    if not isinstance(value, list):
        raise ModelFieldError(name, "must be a list")
    walk(value, name)
    return _frozen_array(value, name)


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        idx = ", ".join(str(int(i)) for i in np.argwhere(~np.isfinite(a))[0])
        raise ModelFieldError(f"{name}[{idx}]" if a.ndim else name, "is not finite")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed; model values must be finite")


def _dumps(value: Any, indent: int = 0) -> str:
    """JSON with one line per list of numbers (rows of matrices), objects indented."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad}  {json.dumps(str(k))}: {_dumps(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value):
        items = [f"{pad}  {_dumps(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)
