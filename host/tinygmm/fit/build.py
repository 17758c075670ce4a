"""From data to a Model: standardise (or not), choose k, and record how the model was made."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..model import Model, Scaler
from .selection import Selection, select_n_components


@dataclass
class Fitted:
    """The data, the scaler fitted to it and the selection over k: what fit, select and demo share."""

    X: np.ndarray  # raw training data
    feature_names: list[str]
    scaler: Scaler | None
    selection: Selection

    def to_model(self, threshold_percentile: float = 1.0, metadata: dict[str, Any] | None = None) -> Model:
        """The chosen model with its scaler, names, anomaly threshold (that percentile of the training
        log-likelihoods) and metadata, including how k was chosen."""
        sel = self.selection
        model = Model.from_gmm(sel.model, self.scaler, self.feature_names, X_train=self.X,
                               threshold_percentile=threshold_percentile)
        model.metadata.update(metadata or {})
        model.metadata["selection"] = {"criterion": sel.criterion, "candidates": [r.k for r in sel.rows],
                                       "rule": sel.rule}
        return model


def fit_selection(X: np.ndarray, feature_names: Sequence[str], candidates: Sequence[int], *, scale: str = "standard",
                  criterion: str = "bic", covariance: str = "full", n_init: int = 1, seed: int = 0,
                  alpha: float = 0.05, progress: Callable[[Any], None] | None = None) -> Fitted:
    """Standardise ``X`` when ``scale == "standard"``, then fit every candidate k and choose one."""
    scaler = Scaler.fit(X) if scale == "standard" else None
    Xs = scaler.transform(X) if scaler is not None else X
    selection = select_n_components(Xs, candidates, criterion=criterion, covariance_type=covariance,
                                    n_init=n_init, random_state=seed, alpha=alpha, progress=progress)
    return Fitted(X, list(feature_names), scaler, selection)
