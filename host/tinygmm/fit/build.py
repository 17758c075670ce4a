"""From data to a Model: standardise (or not), choose k, and record how the model was made."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..data import data_notes
from ..errors import TinyGMMError
from ..model import Model, Scaler
from .selection import Selection, select_n_components
from .passes import SAMPLE_ROWS, summarize
from .sources import Prep, Source, as_source


@dataclass
class Fitted:
    """The data, the scaler fitted to it and the selection over k: what fit, select and demo share."""

    X: Any  # raw training data: an array, or a Source read in blocks
    feature_names: list[str]
    scaler: Scaler | None
    selection: Selection
    # data read in blocks: the rows the anomaly threshold is taken from (a uniform sample), all rows
    threshold_rows: np.ndarray | None = None
    n_rows: int = 0
    notes: list[str] = field(default_factory=list)  # what the user should know about the data read

    def to_model(self, threshold_percentile: float = 1.0, metadata: dict[str, Any] | None = None) -> Model:
        """The chosen model with its scaler, names, anomaly threshold (that percentile of the training
        log-likelihoods) and metadata, including how k was chosen."""
        sel = self.selection
        sampled = self.threshold_rows is not None
        model = Model.from_gmm(sel.model, self.scaler, self.feature_names,
                               X_train=self.threshold_rows if sampled else self.X,
                               threshold_percentile=threshold_percentile)
        if sampled:  # the percentile of a uniform sample's log-likelihoods, not of every row's
            model.metadata["threshold_sample"] = model.metadata["n_train"]
            model.metadata["n_train"] = self.n_rows
        model.metadata.update(metadata or {})
        model.metadata["selection"] = {"criterion": sel.criterion, "candidates": [r.k for r in sel.rows],
                                       "rule": sel.rule}
        return model


def fit_selection(X: Any, feature_names: Sequence[str], candidates: Sequence[int], *, scale: str = "standard",
                  criterion: str = "bic", covariance: str = "full", n_init: int = 1, seed: int = 0,
                  alpha: float = 0.05, progress: Callable[[Any], None] | None = None) -> Fitted:
    """Standardise ``X`` when ``scale == "standard"``, then fit every candidate k and choose one.

    ``X`` may be data read in blocks (a memmap, a Parquet file, a Dask array): a first pass
    then gives the scaler, the rows with missing values and a uniform sample for the threshold."""
    source = as_source(X)
    if source is not None:
        return _fit_blocks(source, feature_names, candidates, scale=scale, criterion=criterion, covariance=covariance,
                           n_init=n_init, seed=seed, alpha=alpha, progress=progress)
    scaler = Scaler.fit(X) if scale == "standard" else None
    Xs = scaler.transform(X) if scaler is not None else X
    selection = select_n_components(Xs, candidates, criterion=criterion, covariance_type=covariance,
                                    n_init=n_init, random_state=seed, alpha=alpha, progress=progress)
    return Fitted(X, list(feature_names), scaler, selection)


def _fit_blocks(source: Source, feature_names: Sequence[str], candidates: Sequence[int], *, scale: str,
                progress: Callable[[Any], None] | None, seed: int, **options: Any) -> Fitted:
    summary = summarize(source, np.random.RandomState(seed), SAMPLE_ROWS)
    if summary.n_missing and not source.prep.drop_missing:
        raise TinyGMMError(f"{summary.n_missing} row(s) have missing values (null or NaN) at row(s) "
                           f"{summary.missing_listed} (counted from 0); fill them in or pass --drop-missing to "
                           "skip those rows")
    if summary.n == 0:
        raise TinyGMMError("every row has a missing value; nothing is left to fit")
    std = np.sqrt(summary.variance)
    notes = data_notes(dropped=summary.n_missing, constant=[name for name, s in zip(feature_names, std) if s == 0.0])
    scaler = None
    if scale == "standard":  # StandardScaler's: population standard deviation, 1 where it is 0
        scaler = Scaler(summary.mean, np.where(std == 0.0, 1.0, std))
    scaled = source.with_prep(Prep(scaler.mean if scaler else None, scaler.scale if scaler else None,
                                   source.prep.drop_missing))
    selection = select_n_components(scaled, candidates, random_state=seed, progress=progress,
                                    covariance_type=options.pop("covariance"), **options)
    return Fitted(source, list(feature_names), scaler, selection, threshold_rows=summary.sample,
                  n_rows=summary.n, notes=notes)
