"""The tables and descriptions tinygmm prints for people: the table of candidate k, a model file's
description. (The verify table is verify/report.py's.)"""
from __future__ import annotations

import json
import os

from .fit.selection import Selection
from .model import Model


def format_selection(sel: Selection) -> str:
    """The selection table with the chosen row marked by '*', then the rule."""
    lrt = sel.criterion == "lrt"
    header = ["", "k", "log-likelihood", "params", "BIC", "AIC"]
    if lrt:
        header += ["LRT stat", "df", "p-value"]
    header.append("")
    lines = [header]
    for r in sel.rows:
        cells = ["*" if r.k == sel.best_k else "", str(r.k), f"{r.log_likelihood:.2f}", str(r.n_parameters),
                 f"{r.bic:.2f}", f"{r.aic:.2f}"]
        if lrt:
            if r.lrt_statistic is None:
                cells += ["", "", ""]
            else:
                cells += [f"{r.lrt_statistic:.2f}", str(r.lrt_df), f"{r.lrt_p_value:.3g}"]
        cells.append("" if r.converged else "(did not converge)")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = []
    for row in lines:
        parts = [row[0].ljust(widths[0])]
        parts += [cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:-1])]
        parts.append(row[-1])
        text.append("  ".join(parts).rstrip())
    if lrt:
        text.append("LRT: 2*(ll(k+1) - ll(k)) vs chi-square(df); mixtures break its regularity conditions, "
                    "so read p-values as a guide")
    text.append(f"chosen: k={sel.best_k}: {sel.rule}")
    return "\n".join(text)


def format_info(model: Model, path: str | os.PathLike) -> str:
    """What `tinygmm info` prints: the model's shape, scaler, threshold, components and metadata."""
    names = model.feature_names
    lines = [
        f"model file:   {path}",
        f"model id:     {model.model_id}",
        f"components:   {model.n_components}",
        f"covariance:   {model.covariance_type}",
        f"features:     {model.n_features} ({', '.join(names)})",
    ]
    if model.scaler is None:
        lines.append("scaler:       none (the model works on raw values)")
    else:
        lines.append("scaler:       standard, x_scaled = (x - mean) / scale")
        lines += [f"  {n}: mean {m:.6g}, scale {s:.6g}" for n, m, s in zip(names, model.scaler.mean, model.scaler.scale)]
    if model.anomaly_threshold is None:
        lines.append("anomaly threshold: none")
    else:
        pct = model.metadata.get("threshold_percentile")
        rows = f"{model.metadata.get('n_train', '?')} training rows"
        if model.metadata.get("threshold_sample", model.metadata.get("n_train")) != model.metadata.get("n_train"):
            rows = f"a uniform sample of {model.metadata['threshold_sample']} of the {rows}"
        origin = f"; percentile {pct:g} of {rows}" if pct is not None else ""
        lines.append(f"anomaly threshold: {model.anomaly_threshold:.6g} "
                     f"(log-likelihood of the scaled input{origin})")
    means = model.means if model.scaler is None else model.means * model.scaler.scale + model.scaler.mean
    lines.append("components (means in original units):")
    for k in range(model.n_components):
        centre = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, means[k]))
        lines.append(f"  {k}: weight {model.weights[k]:.4f}  mean {centre}")
    if model.metadata:
        lines.append("metadata:")
        lines += [f"  {key}: {value if isinstance(value, str) else json.dumps(value)}" for key, value in model.metadata.items()]
    return "\n".join(lines)
