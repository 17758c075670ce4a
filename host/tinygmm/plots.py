"""Pictures: a model's clusters over its data, the choice of k, and a device's scores against the host's.

matplotlib is an optional extra (``pip install 'tinygmm[plot]'``), imported only when a figure is
made. Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never made through pyplot:
they render headless, whatever the display, and leave the caller's pyplot backend alone. Each
``*_figure`` function returns its Figure (for tests and notebooks); ``save_figure`` writes it.
"""
from __future__ import annotations

import io

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import TinyGMMError
from .files import write_atomic
from .model import Model

INSTALL_HINT = "plotting needs matplotlib: pip install 'tinygmm[plot]'"
DPI = 100
CLUSTER_SIZE = (9.0, 6.0)  # inches; PNG pixels are these times DPI
GRID_PANEL = 2.6  # inches per panel of a pair grid
SELECTION_SIZE = (12.0, 4.8)
VERIFY_SIZE = (12.0, 4.8)
# Negative log-likelihood contours: N_LEVELS levels whose excess over the lowest value on the grid is
# spaced geometrically from LOWEST_EXCESS up. For one Gaussian the excess is r^2/2 (r the Mahalanobis
# radius), so 0.125 is r = 0.5 and equal ratios of excess are equal ratios of radius.
N_LEVELS = 10
LOWEST_EXCESS = 0.125
GRID_POINTS = 200  # per axis of the contour grid
SIGMAS = (1.0, 2.0)  # ellipses at these Mahalanobis radii
PADDING = 0.08  # share of the data range added on each side of a panel
MAX_GRID_FEATURES = 6  # a larger pair grid is unreadable: name the features instead
SYMLOG_THRESHOLD = 1.0  # verify plot: linear within +-1 of zero, logarithmic beyond


def require_matplotlib() -> None:
    """Raise the error people see (with the install line) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise TinyGMMError(INSTALL_HINT) from None


def _new_figure(size: tuple[float, float]) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write the figure (format from the suffix: .png, .svg, .pdf, ...) at DPI dots per inch,
    atomically, creating missing folders."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=DPI, format=path.suffix.lstrip(".").lower() or "png")
    except ValueError as e:  # an unknown format
        raise TinyGMMError(f"{path}: {e}") from None
    return write_atomic(path, buffer.getvalue(), "the plot")


# -- the model in original units ----------------------------------------------------------


def full_covariances(model: Model) -> np.ndarray:
    """(K, D, D) covariances in the model's (scaled) space, whatever its covariance type."""
    K, D = model.n_components, model.n_features
    cov = np.asarray(model.covariances, dtype=np.float64)
    if model.covariance_type == "full":
        return cov.copy()
    if model.covariance_type == "tied":
        return np.broadcast_to(cov, (K, D, D)).copy()
    if model.covariance_type == "diag":
        return cov[:, :, None] * np.eye(D)
    return cov[:, None, None] * np.eye(D)  # spherical


def raw_components(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Means (K, D) and covariances (K, D, D) in original units: the scaler undone."""
    means, covs = np.asarray(model.means, dtype=np.float64), full_covariances(model)
    if model.scaler is None:
        return means.copy(), covs
    s = np.asarray(model.scaler.scale)
    return means * s + np.asarray(model.scaler.mean), covs * s[:, None] * s[None, :]


def mixture_nll(points: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Negative log-density of a mixture with full covariances at points (M, d): (M,)."""
    d = points.shape[1]
    L = np.linalg.cholesky(covs)  # (K, d, d)
    log_comp = np.empty((len(weights), len(points)))
    for k in range(len(weights)):
        z = np.linalg.solve(L[k], (points - means[k]).T)
        log_det = 2.0 * np.sum(np.log(np.diag(L[k])))
        log_comp[k] = math.log(weights[k]) - 0.5 * (d * math.log(2.0 * math.pi) + log_det + np.sum(z * z, axis=0))
    top = log_comp.max(axis=0)
    return -(top + np.log(np.sum(np.exp(log_comp - top), axis=0)))


def resolve_features(model: Model, features: Sequence[str | int] | None) -> list[int]:
    """Indices of the model features named (by name or 0-based index); all of them by default."""
    names = list(model.feature_names)
    if features is None:
        if model.n_features > MAX_GRID_FEATURES:
            raise TinyGMMError(f"the model has {model.n_features} features, too many for one pair grid; "
                               "name two to plot with --features")
        return list(range(model.n_features))
    out: list[int] = []
    for token in features:
        text = str(token).strip()
        if text in names:
            j = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            j = int(text)
        else:
            available = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names))
            raise TinyGMMError(f"the model has no feature {text!r}; its features: {available}")
        if j in out:
            raise TinyGMMError(f"feature {text!r} is named twice")
        out.append(j)
    if not out:
        raise TinyGMMError("name at least one feature to plot")
    if len(out) > MAX_GRID_FEATURES:
        raise TinyGMMError(f"{len(out)} features are too many for one pair grid; name at most {MAX_GRID_FEATURES}")
    return out


# -- cluster plot -------------------------------------------------------------------------


def _colour(k: int) -> str:
    return f"C{k % 10}"


def _limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = PADDING * (hi - lo) if hi > lo else max(abs(lo), 1.0) * PADDING
    return lo - pad, hi + pad


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float, **kwargs: Any) -> Any:
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))  # of the major axis
    return Ellipse(tuple(mean), 2.0 * radius * math.sqrt(values[1]), 2.0 * radius * math.sqrt(values[0]),
                   angle=angle, fill=False, **kwargs)


def _cluster_panel(ax: Any, X2: np.ndarray, labels: np.ndarray, weights: np.ndarray, means2: np.ndarray,
                   covs2: np.ndarray, threshold_nll: float | None = None) -> Any:
    """One pair of features: points, NLL contours, 1- and 2-sigma ellipses, means. Returns the contours."""
    from matplotlib import colormaps

    K = len(weights)
    xlim, ylim = _limits(X2[:, 0]), _limits(X2[:, 1])
    gx, gy = np.meshgrid(np.linspace(*xlim, GRID_POINTS), np.linspace(*ylim, GRID_POINTS))
    nll = mixture_nll(np.column_stack([gx.ravel(), gy.ravel()]), weights, means2, covs2).reshape(gx.shape)
    low = float(nll.min())
    excess_max = max(float(nll.max()) - low, 4.0 * LOWEST_EXCESS)
    levels = low + np.geomspace(LOWEST_EXCESS, excess_max, N_LEVELS)
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, N_LEVELS))
    contours = ax.contour(gx, gy, nll, levels=levels, colors=colours, linewidths=0.8, alpha=0.7, zorder=1)
    if threshold_nll is not None and low < threshold_nll < float(nll.max()):
        ax.contour(gx, gy, nll, levels=[threshold_nll], colors="crimson", linestyles="dashdot", linewidths=1.2,
                   zorder=2)
    for k in range(K):
        mine = labels == k
        ax.scatter(X2[mine, 0], X2[mine, 1], s=18, color=_colour(k), alpha=0.75, edgecolors="none", zorder=3,
                   label=f"component {k} (weight {weights[k]:.2f})")
        for radius, style in zip(SIGMAS, ("-", "--")):
            ax.add_patch(_ellipse(means2[k], covs2[k], radius, edgecolor=_colour(k), linestyle=style,
                                  linewidth=1.6, zorder=4, gid=f"sigma-{radius:g}"))
    ax.scatter(means2[:, 0], means2[:, 1], marker="X", s=130, c=[_colour(k) for k in range(K)],
               edgecolors="black", linewidths=1.2, zorder=5, gid="means", label="component means")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.grid(True, alpha=0.25)
    return contours


def _histogram_panel(ax: Any, x: np.ndarray, labels: np.ndarray, weights: np.ndarray, means1: np.ndarray,
                     vars1: np.ndarray) -> None:
    """One feature: histogram stacked by predicted component, the marginal mixture density, means."""
    K = len(weights)
    ax.hist([x[labels == k] for k in range(K)], bins=min(40, max(10, int(math.sqrt(len(x))))), stacked=True,
            density=True, color=[_colour(k) for k in range(K)], alpha=0.55)
    grid = np.linspace(*_limits(x), GRID_POINTS)
    comp = weights[:, None] * np.exp(-0.5 * (grid[None, :] - means1[:, None]) ** 2 / vars1[:, None]) \
        / np.sqrt(2.0 * math.pi * vars1[:, None])
    ax.plot(grid, comp.sum(axis=0), color="black", linewidth=1.4, label="mixture density")
    for k in range(K):
        ax.plot(grid, comp[k], color=_colour(k), linewidth=1.0, linestyle="--")
    top = comp.sum(axis=0).max()
    ax.scatter(means1, np.full(K, 0.0), marker="X", s=110, c=[_colour(k) for k in range(K)],
               edgecolors="black", linewidths=1.0, zorder=5, gid="means", clip_on=False)
    for k in range(K):
        for radius, lw in zip(SIGMAS, (3.0, 1.2)):
            half = radius * math.sqrt(vars1[k])
            ax.hlines(-0.04 * top * (k + 1), means1[k] - half, means1[k] + half, color=_colour(k), linewidth=lw,
                      gid=f"sigma-{radius:g}")
    ax.set_xlim(grid[0], grid[-1])
    ax.grid(True, alpha=0.25)


def _legend_handles(model: Model, threshold: bool, intervals: bool = False) -> list[Any]:
    from matplotlib.lines import Line2D

    K = model.n_components
    handles = [Line2D([], [], marker="o", linestyle="none", color=_colour(k),
                      label=f"component {k} (weight {model.weights[k]:.2f})") for k in range(K)]
    handles.append(Line2D([], [], marker="X", linestyle="none", markersize=10, markerfacecolor="white",
                          markeredgecolor="black", label="component means"))
    if intervals:  # one feature: mean +- 1 and 2 sigma as thick and thin bars
        handles.append(Line2D([], [], color="black", linewidth=3.0, label="\u00b11\u03c3"))
        handles.append(Line2D([], [], color="black", linewidth=1.2, label="\u00b12\u03c3"))
    else:
        handles.append(Line2D([], [], color="black", linestyle="-", label="1\u03c3 ellipse"))
        handles.append(Line2D([], [], color="black", linestyle="--", label="2\u03c3 ellipse"))
    if threshold:
        handles.append(Line2D([], [], color="crimson", linestyle="dashdot", label="anomaly threshold"))
    return handles


def cluster_figure(model: Model, X: np.ndarray, features: Sequence[str | int] | None = None,
                   title: str | None = None) -> Any:
    """Data coloured by predicted component over the model, in the data's own (unscaled) units.

    Two features: one panel with negative log-likelihood contours (log-spaced levels), the
    component means, 1- and 2-sigma ellipses and, when the model has an anomaly threshold and
    the panel shows every feature, the threshold's contour. More features: a pair grid of the
    marginals (histograms on the diagonal). One feature: the histogram and the mixture density.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.n_features:
        got = X.shape[1] if X.ndim == 2 else X.shape
        raise TinyGMMError(f"the model has {model.n_features} features but the data have {got} columns")
    if len(X) == 0:
        raise TinyGMMError("no data rows to plot")
    idx = resolve_features(model, features)
    labels = model.predict(X)
    weights = np.asarray(model.weights, dtype=np.float64)
    means, covs = raw_components(model)
    names = list(model.feature_names)
    K, m = model.n_components, len(idx)
    heading = title or f"Gaussian mixture: k={K}, {model.covariance_type} covariance"
    notes = ["points coloured by predicted component"]
    if model.scaler is not None:
        notes.append("fitted on standardised data, drawn in original units")

    if m == 1:
        fig = _new_figure(CLUSTER_SIZE)
        ax = fig.subplots()
        j = idx[0]
        _histogram_panel(ax, X[:, j], labels, weights, means[:, j], covs[:, j, j])
        ax.set_xlabel(names[j])
        ax.set_ylabel("density")
        ax.legend(handles=_legend_handles(model, False, intervals=True), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize="small")
    elif m == 2:
        fig = _new_figure(CLUSTER_SIZE)
        ax = fig.subplots()
        i, j = idx
        full = m == model.n_features and model.anomaly_threshold is not None
        threshold = None
        if full:  # the density in original units is the scaled one divided by prod(scale)
            shift = float(np.sum(np.log(model.scaler.scale))) if model.scaler is not None else 0.0
            threshold = -float(model.anomaly_threshold) + shift
        contours = _cluster_panel(ax, X[:, [i, j]], labels, weights, means[:, [i, j]],
                                  covs[:, [i, j]][:, :, [i, j]], threshold)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        bar = fig.colorbar(contours, ax=ax, location="bottom", shrink=0.6, aspect=40, pad=0.01)
        bar.set_label("negative log-likelihood (log-spaced levels)" + ("" if m == model.n_features
                                                                      else ", of the marginal"))
        bar.ax.xaxis.set_major_formatter("{x:.3g}")
        ax.legend(handles=_legend_handles(model, threshold is not None), loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
        notes.append("contours: negative log-likelihood")
    else:
        side = GRID_PANEL * m
        fig = _new_figure((side + 2.2, side))
        axes = fig.subplots(m, m, sharex="col", squeeze=False)
        for r, i in enumerate(idx):
            for c, j in enumerate(idx):
                ax = axes[r][c]
                if r == c:
                    _histogram_panel(ax, X[:, i], labels, weights, means[:, i], covs[:, i, i])
                    ax.set_yticks([])
                elif r > c:
                    _cluster_panel(ax, X[:, [j, i]], labels, weights, means[:, [j, i]],
                                   covs[:, [j, i]][:, :, [j, i]])
                else:
                    ax.set_axis_off()
                if r == m - 1:
                    ax.set_xlabel(names[j])
                if c == 0 and r > 0:
                    ax.set_ylabel(names[i])
        # the empty upper-right panel holds the legend
        axes[0][m - 1].legend(handles=_legend_handles(model, False), loc="upper right", fontsize="small")
        notes.append("pairwise marginals, histograms on the diagonal")
    fig.suptitle(heading + "\n" + "; ".join(notes), fontsize="medium", wrap=True)
    return fig


# -- selection plot -----------------------------------------------------------------------


def selection_figure(selection: Any, alpha: float = 0.05, title: str | None = None) -> Any:
    """BIC and AIC against k with the chosen k marked, and each step's likelihood-ratio statistic
    against its chi-square critical value at ``alpha``."""
    from scipy.stats import chi2

    rows = selection.rows
    ks = [r.k for r in rows]
    best = selection.best_row
    steps = [r for r in rows if r.lrt_statistic is not None]
    fig = _new_figure(SELECTION_SIZE if steps else (SELECTION_SIZE[0] / 2, SELECTION_SIZE[1]))
    axes = fig.subplots(1, 2 if steps else 1, squeeze=False)[0]

    ax = axes[0]
    ax.plot(ks, [r.bic for r in rows], "o-", color="C0", label="BIC")
    ax.plot(ks, [r.aic for r in rows], "s-", color="C1", label="AIC")
    ax.axvline(best.k, color="black", linestyle=":", linewidth=1.2)
    if selection.criterion in ("bic", "aic"):
        ax.plot([best.k], [getattr(best, selection.criterion)], marker="*", markersize=18, color="crimson",
                linestyle="none", gid="chosen", label=f"chosen k={best.k} (lowest {selection.criterion.upper()})")
    else:
        ax.plot([], [], color="black", linestyle=":", label=f"chosen k={best.k} (likelihood-ratio test)")
    ax.set_xticks(ks)
    ax.set_xlabel("number of components k")
    ax.set_ylabel("information criterion (lower is better)")
    ax.set_title("BIC and AIC")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")

    if steps:
        ax = axes[1]
        x = [r.k for r in steps]
        stat = np.array([r.lrt_statistic for r in steps])
        critical = chi2.isf(alpha, [r.lrt_df for r in steps])
        significant = stat > critical
        ax.plot(x, stat, "-", color="C2", zorder=2)
        ax.scatter(np.array(x)[significant], stat[significant], s=45, color="C2", zorder=3,
                   label="statistic 2(\u2113(next) \u2212 \u2113(k)), significant")
        ax.scatter(np.array(x)[~significant], stat[~significant], s=45, facecolors="white", edgecolors="C2",
                   linewidths=1.5, zorder=3, label="not significant")
        dfs = sorted({r.lrt_df for r in steps})
        df_text = f"df={dfs[0]}" if len(dfs) == 1 else "df per step"
        ax.plot(x, critical, "--", color="crimson", drawstyle="steps-mid" if len(dfs) > 1 else "default",
                gid="critical", label=f"\u03c7\u00b2 critical value, \u03b1={alpha:g} ({df_text})")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        if selection.criterion == "lrt":
            ax.axvline(best.k, color="black", linestyle=":", linewidth=1.2)
            if best.lrt_statistic is not None:
                ax.plot([best.k], [best.lrt_statistic], marker="*", markersize=18, color="crimson",
                        linestyle="none", gid="chosen", label=f"chosen k={best.k}")
        ax.set_xticks(x)
        ax.set_xlabel("k (tested against the next candidate)")
        ax.set_ylabel("likelihood-ratio statistic")
        ax.set_title("Likelihood-ratio test of k against the next k")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")

    cov = getattr(selection.model, "covariance_type", "")
    heading = title or f"Choosing k over {ks[0]}..{ks[-1]} ({cov} covariance): chosen k={best.k}"
    fig.suptitle(f"{heading}\n{selection.rule}", fontsize="medium")
    return fig


# -- verify plot --------------------------------------------------------------------------


def verify_figure(report: Any, model: Model | None = None) -> Any:
    """Device score against host score per test vector (failures and certified ties marked), and
    the distribution of the score error as a share of its float32 bound."""
    pv = getattr(report, "per_vector", None)
    if pv is None:
        raise TinyGMMError("this verify report has no per-vector results (a report read back from JSON "
                           "keeps only the summary); plot the report run_suite returns")
    host, device = np.asarray(pv.host_score), np.asarray(pv.device_score)
    failed, tie = np.asarray(pv.failed, bool), np.asarray(pv.certified_tie, bool)
    kinds = np.asarray(pv.kinds)
    scored = np.isfinite(host) & np.isfinite(device)
    fig = _new_figure(VERIFY_SIZE)
    ax, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    plain = scored & ~failed & ~tie
    for n, kind in enumerate(dict.fromkeys(pv.kinds)):
        mine = plain & (kinds == kind)
        if mine.any():
            ax.scatter(host[mine], device[mine], s=10, color=f"C{n % 10}", alpha=0.6, edgecolors="none",
                       label=f"{kind} ({int(mine.sum())})")
    if (scored & tie).any():
        ax.scatter(host[scored & tie], device[scored & tie], s=24, facecolors="none", edgecolors="black",
                   alpha=0.5, linewidths=0.6, gid="ties", label=f"certified float32 tie ({int((scored & tie).sum())})")
    unscored_failures = int((failed & ~scored).sum())
    extra = f"; {unscored_failures} without a score not shown" if unscored_failures else ""
    ax.scatter(host[scored & failed], device[scored & failed], s=90, marker="X", color="crimson",
               edgecolors="black", linewidths=0.6, zorder=5, gid="failures",
               label=f"failed a check ({int((scored & failed).sum())}{extra})")
    if scored.any():
        lo = float(min(host[scored].min(), device[scored].min()))
        hi = float(max(host[scored].max(), device[scored].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, zorder=0, label="device = host")
    ax.set_xscale("symlog", linthresh=SYMLOG_THRESHOLD)
    ax.set_yscale("symlog", linthresh=SYMLOG_THRESHOLD)
    ax.set_xlabel("host score (float64 log-density)")
    ax.set_ylabel("device score (float32)")
    ax.set_title(f"score per test vector ({int(scored.sum())} of {len(host)} scored)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left")

    bound = np.asarray(pv.score_bound)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(device - host)[scored] / bound[scored]
    ratio = np.where(np.isfinite(ratio), ratio, 0.0)
    top = max(1.05, float(ratio.max(initial=0.0)) * 1.05)
    hist.hist(ratio, bins=np.linspace(0.0, top, 41), color="C0", alpha=0.8, gid="errors")
    hist.axvline(1.0, color="crimson", linestyle="--", label="float32 error bound")
    hist.set_xlabel("|device \u2212 host| / error bound")
    hist.set_ylabel("vectors")
    hist.set_yscale("log")
    twin_share = getattr(report, "bit_exact", {}).get("score")
    same = f"; {twin_share:.1%} bit-exact with the float32 twin" if twin_share is not None else ""
    hist.set_title(f"score error vs float64\nmax {float(ratio.max(initial=0.0)):.2f} of the bound{same}",
                   fontsize="medium")
    hist.grid(True, alpha=0.3)
    hist.legend(fontsize="small")

    verdict = "PASS" if report.passed else "FAIL"
    what = f", k={model.n_components}, {model.covariance_type} covariance" if model is not None else ""
    fig.suptitle(f"{verdict}: model {report.model_id}{what} on {report.target} via {report.transport}, "
                 f"{report.n_vectors} vectors", fontsize="medium")
    return fig
