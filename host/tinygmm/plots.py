"""Pictures: a model's clusters over its data, the choice of k, and a device's errors against their bounds.

It is longer than 500 lines because the three pictures share their figure, units, contour and
legend helpers, and each says in full what it shows (units, levels, threshold, bounds).

matplotlib is an optional extra (``pip install 'tinygmm[plot]'``), imported only when a figure is
made. Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never made through pyplot:
they render headless, whatever the display, and leave the caller's pyplot backend alone. Each
``*_figure`` function returns its Figure (for tests and notebooks); ``save_figure`` writes it.

Units: tinygmm cannot know a column's unit. Axis labels are the column names (which often carry
one, as "Annual Income (k$)"), with a unit added where one is given: ``units={"Age": "years"}``
(``--units "Age=years"`` on the command line), else the model's ``metadata["units"]`` (written by
``tinygmm fit --units``).
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
# spaced geometrically from LOWEST_EXCESS up, each rounded to one significant digit of its gap from the
# level below (so the labels read 7.3, 7.4, 7.6, 7.9, 8.6, 10, 12, ...). For one Gaussian the excess is
# r^2/2 (r the Mahalanobis radius), so 0.125 is r = 0.5 and equal ratios of excess are equal ratios of radius.
N_LEVELS = 10
LOWEST_EXCESS = 0.125
CONTOUR_COLOURS = ("#111111", "#5a5a5a")  # innermost to outermost level: dark greys, over a white halo
GRID_POINTS = 200  # per axis of the contour grid
SIGMAS = (1.0, 2.0)  # ellipses at these Mahalanobis radii
PADDING = 0.08  # share of the data range added on each side of a panel
MAX_GRID_FEATURES = 6  # a larger pair grid is unreadable: name the features instead
ERROR_FLOOR = 1e-4  # verify plot: errors below this share of their bound are drawn on the floor
NLL_UNIT = "nats"  # the natural log: log-likelihoods are in nats


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


def feature_index(names: Sequence[str], token: str | int, where: str = "the model") -> int:
    """The index of the feature named ``token`` (its name or 0-based index); an unknown one is an error
    listing the features of ``where``."""
    text = str(token).strip()
    if text in names:
        return list(names).index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    available = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names))
    raise TinyGMMError(f"{where} has no feature {text!r}; its features: {available}")


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
        j = feature_index(names, token)
        if j in out:
            raise TinyGMMError(f"feature {str(token).strip()!r} is named twice")
        out.append(j)
    if not out:
        raise TinyGMMError("name at least one feature to plot")
    if len(out) > MAX_GRID_FEATURES:
        raise TinyGMMError(f"{len(out)} features are too many for one pair grid; name at most {MAX_GRID_FEATURES}")
    return out


# -- units ----------------------------------------------------------------------------------


def parse_units(text: str, names: Sequence[str], where: str = "the model") -> dict[str, str]:
    """``"Age=years,Annual Income (k$)=thousand dollars"`` -> {feature name: unit}, each name one of
    ``names`` (or its 0-based index) and the unit after the last "=" of its item."""
    units: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, unit = (s.strip() for s in item.rpartition("="))
        if not eq or not name or not unit:
            raise TinyGMMError(f"--units: {item!r} is not NAME=UNIT, as in \"Age=years\"")
        units[names[feature_index(names, name, f"--units: {where}")]] = unit
    return units


def feature_units(model: Model, units: dict[str, str] | None = None) -> dict[str, str]:
    """Each feature's unit where one is known: ``units`` over the model's ``metadata["units"]``."""
    known = model.metadata.get("units")
    merged = {str(k): str(v) for k, v in known.items()} if isinstance(known, dict) else {}
    merged.update(units or {})
    return {n: merged[n] for n in model.feature_names if merged.get(n)}


def axis_label(name: str, unit: str | None) -> str:
    """The column name, with its unit in parentheses unless it is unknown or the name ends with it."""
    if not unit or name.endswith(f"({unit})"):
        return name
    return f"{name} ({unit})"


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


def contour_levels(low: float, high: float) -> np.ndarray:
    """N_LEVELS negative log-likelihood levels above ``low``: excesses geometric from LOWEST_EXCESS to
    ``high - low``, each level rounded to one significant digit of its gap from the one below (so it
    moves by at most half that gap and the order holds; the labels read 7.3, 7.4, 7.6, 7.9, 8.6, 10, ...)."""
    excess = np.geomspace(LOWEST_EXCESS, max(high - low, 4.0 * LOWEST_EXCESS), N_LEVELS)
    gaps = np.diff(excess, prepend=0.0)
    gaps[0] = min(gaps[0], gaps[1:].min(initial=gaps[0]))  # the lowest level must stay below the next one too
    levels: list[float] = []
    for e, gap in zip(excess, gaps):
        digits = -math.floor(math.log10(gap))
        level = round(low + e, digits)
        while (level <= low or (levels and level <= levels[-1])) and digits < 17:  # a tie at a half
            digits += 1
            level = round(low + e, digits)
        levels.append(level)
    return np.array(levels)


def _format_level(value: float) -> str:
    return f"{value:.6g}".replace("-", "\u2212")


def _halo(width: float) -> list[Any]:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground="white", alpha=0.85)]


def _cluster_panel(ax: Any, X2: np.ndarray, labels: np.ndarray, weights: np.ndarray, means2: np.ndarray,
                   covs2: np.ndarray, threshold_nll: float | None = None, label_size: float = 7.5,
                   label_every: int = 1) -> Any:
    """One pair of features: points, NLL contours (dark grey over a white halo, labelled with their
    values), 1- and 2-sigma ellipses, means. Returns the contours."""
    from matplotlib.colors import LinearSegmentedColormap

    K = len(weights)
    xlim, ylim = _limits(X2[:, 0]), _limits(X2[:, 1])
    gx, gy = np.meshgrid(np.linspace(*xlim, GRID_POINTS), np.linspace(*ylim, GRID_POINTS))
    nll = mixture_nll(np.column_stack([gx.ravel(), gy.ravel()]), weights, means2, covs2).reshape(gx.shape)
    levels = contour_levels(float(nll.min()), float(nll.max()))
    greys = LinearSegmentedColormap.from_list("greys", CONTOUR_COLOURS)(np.linspace(0.0, 1.0, len(levels)))
    for k in range(K):
        mine = labels == k
        ax.scatter(X2[mine, 0], X2[mine, 1], s=18, color=_colour(k), alpha=0.7, edgecolors="none", zorder=2,
                   label=f"component {k} (weight {weights[k]:.2f})")
    # over the points, under the ellipses and means: a dark line with a white halo shows on any colour
    contours = ax.contour(gx, gy, nll, levels=levels, colors=greys, linewidths=0.8, zorder=3)
    contours.set(path_effects=_halo(2.2))
    texts = ax.clabel(contours, levels[::label_every], fmt=_format_level, fontsize=label_size, inline=True,
                      inline_spacing=2)
    for text in texts:
        text.set(path_effects=_halo(2.0), zorder=4.5)  # over the ellipses
    if threshold_nll is not None and float(nll.min()) < threshold_nll < float(nll.max()):
        threshold = ax.contour(gx, gy, nll, levels=[threshold_nll], colors="crimson", linestyles="dashdot",
                               linewidths=1.4, zorder=3.5)
        threshold.set(path_effects=_halo(3.0), gid="threshold")
    for k in range(K):
        for radius, style in zip(SIGMAS, ("-", "--")):
            ax.add_patch(_ellipse(means2[k], covs2[k], radius, edgecolor=_colour(k), linestyle=style,
                                  linewidth=1.8, zorder=4, gid=f"sigma-{radius:g}"))
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


def threshold_text(model: Model, nll: float | None = None) -> str:
    """The anomaly threshold's legend entry: its value, in the units it applies to."""
    space = "the scaled input" if model.scaler is not None else "the input"
    text = (f"anomaly threshold: log-likelihood {_format_level(round(model.anomaly_threshold, 3))}\n"
            f"of {space} (flagged below it)")
    if nll is not None and model.scaler is not None:
        text += f";\n{_format_level(round(nll, 2))} on the contours' scale"
    return text


def _legend_handles(model: Model, threshold: str | None = None, intervals: bool = False,
                    contours: bool = False) -> list[Any]:
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
    if contours:
        handles.append(Line2D([], [], color=CONTOUR_COLOURS[0], linewidth=0.8, path_effects=_halo(2.2),
                              label=f"negative log-likelihood ({NLL_UNIT}),\nlabelled contours"))
    if threshold is not None:
        handles.append(Line2D([], [], color="crimson", linestyle="dashdot", label=threshold))
    return handles


def _data_title(model: Model, data: str | None, n_rows: int) -> tuple[str, str]:
    """What was fitted to what, and what is drawn: the title's two parts naming the data sets."""
    fitted_to = model.metadata.get("data")
    heading = f"Gaussian mixture: k={model.n_components}, {model.covariance_type} covariance"
    if fitted_to:
        heading += f", fitted to {fitted_to}"
    if data is None:
        points = f"{n_rows} points"
    elif data == fitted_to:
        points = f"the {n_rows} rows of {data} (the training data)"
    else:
        points = f"the {n_rows} rows of {data}"
    return heading, points


def cluster_figure(model: Model, X: np.ndarray, features: Sequence[str | int] | None = None,
                   title: str | None = None, units: dict[str, str] | None = None, data: str | None = None) -> Any:
    """Data coloured by predicted component over the model, in the data's own (unscaled) units.

    Two features: one panel with labelled negative log-likelihood contours (log-spaced levels), the
    component means, 1- and 2-sigma ellipses and, when the model has an anomaly threshold and
    the panel shows every feature, the threshold's contour (its value in the legend). More features:
    a pair grid of the marginals (histograms on the diagonal). One feature: the histogram and the
    mixture density. ``units`` ({feature: unit}) over the model's ``metadata["units"]`` label the axes;
    ``data`` names the file the rows of ``X`` come from, for the title.
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
    known = feature_units(model, units)
    names = [axis_label(n, known.get(n)) for n in model.feature_names]
    m = len(idx)
    heading, points = _data_title(model, data, len(X))
    notes = [f"points: {points}, by predicted component"]
    if model.scaler is not None:
        notes.append("standardised for the fit, drawn in original units")

    if m == 1:
        fig = _new_figure(CLUSTER_SIZE)
        ax = fig.subplots()
        j = idx[0]
        _histogram_panel(ax, X[:, j], labels, weights, means[:, j], covs[:, j, j])
        ax.set_xlabel(names[j])
        unit = known.get(model.feature_names[j])
        ax.set_ylabel(f"density (per {unit})" if unit else "density")
        ax.legend(handles=_legend_handles(model, intervals=True), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize="small")
    elif m == 2:
        fig = _new_figure(CLUSTER_SIZE)
        ax = fig.subplots()
        i, j = idx
        threshold = None
        if m == model.n_features and model.anomaly_threshold is not None:
            # the density in original units is the scaled one divided by prod(scale)
            shift = float(np.sum(np.log(model.scaler.scale))) if model.scaler is not None else 0.0
            threshold = -float(model.anomaly_threshold) + shift
        _cluster_panel(ax, X[:, [i, j]], labels, weights, means[:, [i, j]], covs[:, [i, j]][:, :, [i, j]], threshold)
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        legend = threshold_text(model, threshold) if threshold is not None else None
        ax.legend(handles=_legend_handles(model, legend, contours=True), loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
        density = "the density" if m == model.n_features else "the marginal density"
        notes.append(f"contours: negative log-likelihood ({NLL_UNIT}) of {density} in these units")
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
                                   covs[:, [j, i]][:, :, [j, i]], label_size=6.5, label_every=2)
                else:
                    ax.set_axis_off()
                if r == m - 1:
                    ax.set_xlabel(names[j])
                if c == 0 and r > 0:
                    ax.set_ylabel(names[i])
        # the empty upper-right panel holds the legend
        axes[0][m - 1].legend(handles=_legend_handles(model, contours=True), loc="upper right", fontsize="small")
        notes.append("pairwise marginals, histograms on the diagonal")
    fig.suptitle((title or heading) + "\n" + "\n".join(_wrap_notes(notes, fig)), fontsize="medium")
    return fig


def _wrap_notes(notes: list[str], fig: Any) -> list[str]:
    """The notes joined by "; " into lines that fit the figure's width, as the title's font measures them."""
    renderer = fig.canvas.get_renderer()
    probe = fig.text(0.0, 0.0, "", fontsize="medium")

    def fits(line: str) -> bool:
        probe.set_text(line)
        return probe.get_window_extent(renderer).width <= 0.97 * fig.bbox.width

    lines: list[str] = []
    for note in notes:
        if lines and fits(lines[-1] + "; " + note):
            lines[-1] += "; " + note
        else:
            lines.append(note)
    probe.remove()
    return lines


# -- selection plot -----------------------------------------------------------------------


def selection_figure(selection: Any, alpha: float = 0.05, title: str | None = None, data: str | None = None,
                     columns: Sequence[str] | None = None) -> Any:
    """BIC and AIC against k with the chosen k marked, and each step's likelihood-ratio statistic
    against its chi-square critical value at ``alpha`` (printed on the panel). ``data`` and
    ``columns`` name what was fitted, for the title."""
    from scipy.stats import chi2

    rows = selection.rows
    ks = [r.k for r in rows]
    best = selection.best_row
    steps = [r for r in rows if r.lrt_statistic is not None]
    fig = _new_figure(SELECTION_SIZE if steps else (SELECTION_SIZE[0] / 2, SELECTION_SIZE[1]))
    axes = fig.subplots(1, 2 if steps else 1, squeeze=False)[0]

    ax = axes[0]
    ax.plot(ks, [r.bic for r in rows], "o-", color="C0", label="BIC = \u22122\u2113 + p ln N")
    ax.plot(ks, [r.aic for r in rows], "s-", color="C1", label="AIC = \u22122\u2113 + 2p")
    ax.axvline(best.k, color="black", linestyle=":", linewidth=1.2)
    if selection.criterion in ("bic", "aic"):
        ax.plot([best.k], [getattr(best, selection.criterion)], marker="*", markersize=18, color="crimson",
                linestyle="none", gid="chosen", label=f"chosen k={best.k} (lowest {selection.criterion.upper()})")
    else:
        ax.plot([], [], color="black", linestyle=":", label=f"chosen k={best.k} (likelihood-ratio test)")
    ax.set_xticks(ks)
    ax.set_xlabel("number of components k")
    ax.set_ylabel("information criterion (lower is better)")
    ax.set_title("BIC and AIC (\u2113: total log-likelihood, p: parameters)", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")

    if steps:
        ax = axes[1]
        x = [r.k for r in steps]
        stat = np.array([r.lrt_statistic for r in steps])
        dfs = [r.lrt_df for r in steps]
        critical = chi2.isf(alpha, dfs)
        significant = stat > critical
        ax.plot(x, stat, "-", color="C2", zorder=2)
        ax.scatter(np.array(x)[significant], stat[significant], s=45, color="C2", zorder=3,
                   label="statistic 2(\u2113(next) \u2212 \u2113(k)), significant")
        ax.scatter(np.array(x)[~significant], stat[~significant], s=45, facecolors="white", edgecolors="C2",
                   linewidths=1.5, zorder=3, label="not significant")
        one_df = len(set(dfs)) == 1
        df_text = f"{critical[0]:.2f} (df={dfs[0]}" if one_df else "(df per step"
        ax.plot(x, critical, "--", color="crimson", drawstyle="default" if one_df else "steps-mid",
                gid="critical", label=f"\u03c7\u00b2 critical value {df_text}, \u03b1={alpha:g})")
        # the critical value printed at the start of each run of steps with the same df
        for n, (k, df, value) in enumerate(zip(x, dfs, critical)):
            if n == 0 or dfs[n - 1] != df:
                ax.annotate(f"\u03c7\u00b2({df}) at \u03b1={alpha:g}: {value:.2f}", (k, value), xytext=(4, 5),
                            textcoords="offset points", ha="left", va="bottom", color="crimson",
                            fontsize="small", gid="critical-value",
                            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.85))
        ax.axhline(0.0, color="grey", linewidth=0.6)
        if selection.criterion == "lrt":
            ax.axvline(best.k, color="black", linestyle=":", linewidth=1.2)
            if best.lrt_statistic is not None:
                ax.plot([best.k], [best.lrt_statistic], marker="*", markersize=18, color="crimson",
                        linestyle="none", gid="chosen", label=f"chosen k={best.k}")
        ax.set_xticks(x)
        ax.set_xlabel("k (tested against the next candidate)")
        ax.set_ylabel("likelihood-ratio statistic")
        ax.set_title("Likelihood-ratio test of k against the next k", fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")

    cov = getattr(selection.model, "covariance_type", "")
    what = ""
    if columns:
        what += " " + ", ".join(columns)
    if data:
        what += (" of " if columns else " ") + data
    heading = title or f"Choosing k for{what}: k={ks[0]}..{ks[-1]}, {cov} covariance; chosen k={best.k}"
    fig.suptitle(f"{heading}\n{selection.rule}", fontsize="medium")
    return fig


# -- verify plot --------------------------------------------------------------------------


def score_error_share(pv: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per vector |device score - host score| / its float32 error bound, and where both sides have a
    score (NaN inputs and error replies have none). An error over a zero bound is infinite."""
    host, device = np.asarray(pv.host_score, dtype=np.float64), np.asarray(pv.device_score, dtype=np.float64)
    scored = np.isfinite(host) & np.isfinite(device)
    from .verify.compare import error_share

    share = error_share(np.where(scored, np.abs(device - host), 0.0), np.asarray(pv.score_bound, dtype=np.float64))
    return np.where(scored, share, np.nan), scored


def _short_check(name: str) -> str:
    return name.split(":", 1)[0]


def _check_table(report: Any) -> tuple[list[str], list[str], np.ndarray, list[list[str]]]:
    """Rows (every vector, then each kind), columns (the status checks together, each value check,
    each other exact check), the worst error/bound per cell (NaN: nothing checked; exact checks 0 when
    they pass, 2 when not) and each cell's text."""
    from .verify.compare import STATUS_CHECK

    def column(c: Any) -> str:
        short = _short_check(c.name)
        return "statuses" if c.name == STATUS_CHECK.format(op=short) else short

    groups = [("all vectors", report.checks)] + list(report.by_kind.items())
    columns = list(dict.fromkeys(column(c) for c in report.checks))
    worst = np.full((len(groups), len(columns)), np.nan)
    texts = [["\u2013"] * len(columns) for _ in groups]
    for r, (_, checks) in enumerate(groups):
        for col in range(len(columns)):
            mine = [c for c in checks if column(c) == columns[col] and c.checked]
            if not mine:
                continue
            failures = sum(c.failures for c in mine)
            if mine[0].worst is None:  # exact checks
                worst[r, col] = 2.0 if failures else 0.0
                texts[r][col] = f"{failures} differ" if failures else "exact"
            else:
                worst[r, col] = max(c.worst for c in mine)
                texts[r][col] = (f"{failures} fail\n" if failures else "") + f"{worst[r, col]:.2g}"
    return [g for g, _ in groups], columns, worst, texts


def verify_figure(report: Any, model: Model | None = None) -> Any:
    """Per test vector, the score's error as a share of its float32 bound (1 = the bound), by kind of
    vector, with failures and certified ties marked; beside it each check's worst error/bound on
    each kind of vector (every output the report compares: predict, log-joint, score, proba, anomaly)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    pv = getattr(report, "per_vector", None)
    if pv is None:
        raise TinyGMMError("this verify report has no per-vector results (a report read back from JSON "
                           "keeps only the summary); plot the report run_suite returns")
    share, scored = score_error_share(pv)
    failed, tie = np.asarray(pv.failed, bool), np.asarray(pv.certified_tie, bool)
    kinds = np.asarray(pv.kinds)
    # each kind of vector its own slot of width 1, its vectors spread evenly across it in order
    kind_names = list(dict.fromkeys(pv.kinds))
    position = np.empty(len(kinds), dtype=np.float64)
    for n, kind in enumerate(kind_names):
        mine = np.flatnonzero(kinds == kind)
        position[mine] = n + 0.05 + 0.9 * (np.arange(len(mine)) + 0.5) / len(mine)
    fig = _new_figure(VERIFY_SIZE)
    ax, table = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    finite = share[scored & np.isfinite(share)]
    top = max(100.0, 30.0 * float(finite.max(initial=0.0)))
    y = np.clip(np.nan_to_num(share, nan=0.0, posinf=top), ERROR_FLOOR, top)
    shown = scored & ~failed
    for n, kind in enumerate(kind_names):
        mine = kinds == kind
        ax.axvspan(n, n + 1, color="0.93" if n % 2 else "white", zorder=0)
        ax.scatter(position[shown & mine], y[shown & mine], s=9, color=f"C{n % 10}", alpha=0.7, edgecolors="none",
                   zorder=2, gid=f"kind-{kind}")
    n_ties = int((scored & tie).sum())
    if n_ties:
        ax.scatter(position[scored & tie], y[scored & tie], s=28, facecolors="none", edgecolors="black",
                   linewidths=0.6, zorder=3, gid="ties", label=f"certified float32 tie ({n_ties})")
    unscored_failures = int((failed & ~scored).sum())
    extra = f"; {unscored_failures} without a score not shown" if unscored_failures else ""
    ax.scatter(position[scored & failed], y[scored & failed], s=80, marker="X", color="crimson",
               edgecolors="black", linewidths=0.6, zorder=5, gid="failures",
               label=f"failed a check ({int((scored & failed).sum())}{extra})")
    ax.axhline(1.0, color="crimson", linestyle="--", linewidth=1.2, zorder=4, gid="bound",
               label="the float32 error bound")
    ax.set_yscale("log")
    ax.set_ylim(ERROR_FLOOR / 1.5, top)
    ax.set_xlim(0, len(kind_names))
    counts = [f"{kind}\n{int((scored & (kinds == kind)).sum())}/{int((kinds == kind).sum())}" for kind in kind_names]
    ax.set_xticks(np.arange(len(kind_names)) + 0.5, counts, fontsize="small")
    ax.tick_params(axis="x", length=0)
    ax.set_xlabel(f"test vectors by kind, scored/sent (errors under {ERROR_FLOOR:g} of the bound drawn at "
                  f"{ERROR_FLOOR:g})", fontsize="small")
    ax.set_ylabel("score: |device \u2212 host| / error bound")
    twin_share = getattr(report, "bit_exact", {}).get("score")
    same = f"; {twin_share:.1%} bit-exact with the float32 twin" if twin_share is not None else ""
    ax.set_title(f"score error against its bound per vector: max {float(finite.max(initial=0.0)):.2g}{same}",
                 fontsize="medium")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper center", ncol=3, framealpha=0.9)

    rows, columns, worst, texts = _check_table(report)
    cmap = ListedColormap(["#e5f5e0", "#c7e9c0", "#a1d99b", "#fdd49e", "#e34a33"])
    norm = BoundaryNorm([0.0, 0.01, 0.1, 0.5, np.nextafter(1.0, 2.0), np.inf], cmap.N)  # 1 itself passes
    table.imshow(np.ma.masked_invalid(worst), cmap=cmap, norm=norm, aspect="auto", gid="worst")
    for r in range(len(rows)):
        for c in range(len(columns)):
            table.text(c, r, texts[r][c], ha="center", va="center", fontsize="x-small",
                       color="white" if worst[r, c] > 1.0 else "black")
    table.set_xticks(range(len(columns)), columns, fontsize="small", rotation=30, ha="right",
                     rotation_mode="anchor")
    table.set_yticks(range(len(rows)), rows, fontsize="small")
    table.tick_params(length=0)
    table.set_title("worst error / bound per check and kind\n(green below 0.5, orange to 1, red: over the bound)",
                    fontsize="medium")

    verdict = "PASS" if report.passed else "FAIL"
    what = ""
    if model is not None:
        what = f" (k={model.n_components}, {model.covariance_type} covariance"
        what += f", fitted to {model.metadata['data']})" if model.metadata.get("data") else ")"
    fig.suptitle(f"{verdict}: model {report.model_id}{what} on {report.target} via {report.transport}, "
                 f"{report.n_vectors} vectors", fontsize="medium")
    return fig
