"""Figures for papers (two-column format) from landscapes and :class:`~exactbilevel.trace.Trace` runs.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot,
so no global figure state and no GUI backend is ever needed) and returns it;
nothing calls ``plt.show``.  Write it with :func:`save` (PNG and PDF,
atomically).

Style (:data:`PAPER_RC`, applied by :func:`paper_style` while a figure is built
and saved): 8-9 pt text, thin lines, no top/right spines, TrueType fonts in the
PDF, constrained layout; figures are one column wide (:data:`COLUMN_WIDTH`,
3.3 in) or, for side-by-side panels, two columns (:data:`PAGE_WIDTH`, 6.9 in).

Seed bands: a line is the median over seeds at each logging point and the band
the 10%-90% quantiles (``band="quantile"``), or the mean and mean +- one
standard deviation (``band="std"``); the legend title says which.  A method
keeps its color in every figure as long as the groups are given in the same
order (the i-th name gets the i-th color of the cycle).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .rates import fit_rate
from .trace import Trace

__all__ = [
    "COLUMN_WIDTH",
    "PAGE_WIDTH",
    "PAPER_RC",
    "curves",
    "landscape",
    "landscapes",
    "paper_style",
    "plot_slope_stability",
    "rates",
    "save",
    "tradeoff",
]

COLUMN_WIDTH = 3.3  #: inches, one column of a two-column paper
PAGE_WIDTH = 6.9  #: inches, both columns

#: rc parameters of every figure of this module (see :func:`paper_style`).
PAPER_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "0.8",
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.4,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 4.0,
    "lines.linewidth": 1.0,
    "lines.markersize": 4.0,
    "patch.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.8,
    "ytick.minor.size": 1.8,
    "grid.linewidth": 0.4,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,  # TrueType in the PDF: editable text, accepted by conference checkers
    "ps.fonttype": 42,
    "axes.prop_cycle": matplotlib.cycler(color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]),
}

# Default axis labels (with units) for the known columns; other names are used as they are.
_LABELS = {
    "k": "step $k$",
    "samples": "environment samples",
    "time": "wall-clock time (s)",
    "phi0": r"$\Phi_0(x_k)$",
    "phi_tau": r"$\Phi_{\tau_k}(x_k)$",
    "tau": r"entropy weight $\tau_k$",
    "lam": r"penalty weight $\lambda_k$",
    "residual_phi": r"$J^*_{\tau}(x_k) - J_{\tau}(x_k, \pi_{\phi_k})$",
    "residual_theta": r"$G(x_k, \theta_k) - \min_\theta G(x_k, \theta)$",
    "grad_phi_norm2": r"$\|\nabla \Phi_{\tau_k}(x_k)\|^2$",
    "grad_ell_norm2": r"$\|\nabla \ell_{\lambda_k,\tau_k}(x_k)\|^2$",
    "min_pi": r"$\min_{s,a} \pi_{\phi_k}(a|s)$",
}

_BAND_TEXT = {"quantile": "line: median, band: 10-90%",
              "std": "line: mean, band: $\\pm$ 1 std"}


def paper_style():
    """Context manager applying :data:`PAPER_RC` (``with paper_style(): ...``); the functions here use it."""
    return matplotlib.rc_context(PAPER_RC)


def _colors():
    return PAPER_RC["axes.prop_cycle"].by_key()["color"]


def _color(i):
    c = _colors()
    return c[i % len(c)]


def _width(width):
    if width == "column":
        return COLUMN_WIDTH
    if width == "page":
        return PAGE_WIDTH
    if isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0:
        return float(width)
    raise ValueError(f"width must be 'column', 'page' or a positive number of inches, got {width!r}")


def _single_axes(width, height):
    """A one-panel figure, ``width`` ("column", "page" or inches) by ``height`` (None: 0.72 width)."""
    w = _width(width)
    fig = Figure(figsize=(w, height or 0.72 * w), layout="constrained")
    return fig, fig.add_subplot()


# ----------------------------------------------------------------------------- landscapes

def _grid(name, value):
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array of coordinates, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if arr.size > 1 and not (np.all(np.diff(arr) > 0) or np.all(np.diff(arr) < 0)):
        raise ValueError(f"{name} must be strictly monotone")
    return arr


def _values(name, value, xs, ys):
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric 2-D array: {exc}") from None
    if arr.shape != (ys.size, xs.size):
        raise ValueError(f"{name} must have shape (len(ys), len(xs)) = ({ys.size}, {xs.size}) "
                         f"(values[i, j] is at (xs[j], ys[i])), got shape {arr.shape}")
    return arr


def _paths(paths):
    if paths is None:
        return {}
    if not isinstance(paths, Mapping):
        raise TypeError(f"paths must be a dict name -> (n, 2) array, got {type(paths).__name__}")
    out = {}
    for name, p in paths.items():
        arr = np.asarray(p, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
            raise ValueError(f"paths[{name!r}] must have shape (n, 2) with n >= 1 "
                             f"(columns: horizontal, vertical coordinate), got shape {arr.shape}")
        out[str(name)] = arr
    return out


def _draw_paths(ax, paths):
    halo = [patheffects.withStroke(linewidth=2.6, foreground="white")]
    for i, (name, p) in enumerate(paths.items()):
        c = _color(i)
        ax.plot(p[:, 0], p[:, 1], color=c, lw=1.1, path_effects=halo, label=name, zorder=3)
        ax.plot(p[:1, 0], p[:1, 1], ls="none", marker="o", ms=4.5, mfc="white", mec=c, mew=1.2, zorder=4)
        ax.plot(p[-1:, 0], p[-1:, 1], ls="none", marker="s", ms=4.5, mfc=c, mec="white", mew=0.7, zorder=4)


def _path_handles(paths):
    handles = [Line2D([], [], color=_color(i), lw=1.1, label=name) for i, name in enumerate(paths)]
    handles.append(Line2D([], [], ls="none", marker="o", ms=4.5, mfc="white", mec="0.3", mew=1.2, label="start"))
    handles.append(Line2D([], [], ls="none", marker="s", ms=4.5, mfc="0.3", mec="white", label="end"))
    return handles


def _image(ax, xs, ys, values, vmin, vmax, cmap, y_down):
    mesh = ax.pcolormesh(xs, ys, np.ma.masked_invalid(values), shading="nearest", cmap=cmap,
                         vmin=vmin, vmax=vmax, rasterized=True)
    ax.set_aspect("equal" if _uniform_aspect(xs, ys) else "auto")
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    if y_down:
        ax.invert_yaxis()
    return mesh


def _uniform_aspect(xs, ys):
    dx = np.ptp(xs) if xs.size > 1 else 1.0
    dy = np.ptp(ys) if ys.size > 1 else 1.0
    return 0.25 <= dy / dx <= 4.0


def _limits(arrays):
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(a.min() for a in finite), max(a.max() for a in finite)
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def landscape(xs, ys, values, paths=None, title=None, label=r"$\Phi_0(x)$", ax=None, *,
              xlabel=r"$x_1$", ylabel=r"$x_2$", y_down=False, cmap="viridis", width="column"):
    """A 2-D landscape as a color map with a color bar, optionally with x_k paths on top.

    Orientation (the matplotlib convention): ``values[i, j]`` is the value at the
    point with horizontal coordinate ``xs[j]`` and vertical coordinate ``ys[i]``,
    so ``values`` has shape ``(len(ys), len(xs))``; each cell is drawn centred on
    its point.  The vertical axis points up, or down with ``y_down=True`` (grid
    rows counted downwards).  NaN values are left blank.

    ``paths``: dict name -> (n, 2) array of points (horizontal, vertical), each
    drawn as a line in the name's color (the i-th name the i-th color) with an
    open circle at its start and a filled square at its end; the legend sits
    below the axes so that it hides no part of the landscape.  ``label`` names
    the color bar (the plotted quantity).  With ``ax`` the landscape is drawn on
    that axes (its figure gets the color bar and legend) and the axes' figure is
    returned; otherwise a new one-column figure.
    """
    xs, ys = _grid("xs", xs), _grid("ys", ys)
    values = _values("values", values, xs, ys)
    paths = _paths(paths)
    with paper_style():
        own = ax is None
        if own:
            w = _width(width)
            aspect = (np.ptp(ys) / np.ptp(xs)) if xs.size > 1 and ys.size > 1 and _uniform_aspect(xs, ys) else 0.8
            fig = Figure(figsize=(w, min(1.0, aspect) * (w - 1.0) + 0.6 + (0.2 + 0.17 * ((len(paths) + 2 + 2) // 3)
                                                                          if paths else 0.0)),
                         layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        vmin, vmax = _limits([values])
        mesh = _image(ax, xs, ys, values, vmin, vmax, cmap, y_down)
        _draw_paths(ax, paths)
        cbar = fig.colorbar(mesh, ax=ax, shrink=0.95, pad=0.02)
        cbar.set_label(label)
        cbar.outline.set_linewidth(0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title is not None:
            ax.set_title(title)
        if paths:
            kw = {"handles": _path_handles(paths), "ncols": 3 if fig.get_figwidth() < 5 else len(paths) + 2,
                      "frameon": False, "handlelength": 1.4, "columnspacing": 1.0}
            if own:
                fig.legend(loc="outside lower center", **kw)
            else:  # below the given axes, clear of the landscape
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), **kw)
    return fig


def landscapes(xs, ys, panels, paths=None, *, label=None, xlabel=r"$x_1$", ylabel=r"$x_2$", y_down=False,
               cmap="viridis", width="page"):
    """Side-by-side landscapes (``panels``: dict title -> values) sharing one color scale and color bar.

    Every panel follows :func:`landscape` (``values[i, j]`` at ``(xs[j], ys[i])``,
    shape ``(len(ys), len(xs))``); the color scale spans the finite values of
    all panels, so equal colors mean equal values across panels (e.g. Phi_0
    beside Phi_tau).  ``paths`` are drawn on every panel, in the same colors,
    with one legend below the panels.  ``label`` names the shared color bar.
    Two or more panels fill the page width (6.9 in), one panel a column.
    """
    xs, ys = _grid("xs", xs), _grid("ys", ys)
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError("panels must be a non-empty dict title -> values (shape (len(ys), len(xs)))")
    arrays = {str(t): _values(f"panels[{t!r}]", v, xs, ys) for t, v in panels.items()}
    paths = _paths(paths)
    n = len(arrays)
    with paper_style():
        w = _width(width if n > 1 else "column") if width == "page" else _width(width)
        aspect = (np.ptp(ys) / np.ptp(xs)) if xs.size > 1 and ys.size > 1 and _uniform_aspect(xs, ys) else 0.8
        panel = (w - 0.9 - 0.35 * (n - 1)) / n
        fig = Figure(figsize=(w, min(1.2, aspect) * panel + 0.65 + (0.35 if paths else 0.0)),
                     layout="constrained")
        axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)[0]
        vmin, vmax = _limits(list(arrays.values()))
        for k, (ax, (title, values)) in enumerate(zip(axes, arrays.items())):
            mesh = _image(ax, xs, ys, values, vmin, vmax, cmap, y_down and k == 0)  # shared y: invert once
            _draw_paths(ax, paths)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            if k == 0:
                ax.set_ylabel(ylabel)
            else:
                ax.tick_params(labelleft=False)
        cbar = fig.colorbar(mesh, ax=list(axes), shrink=0.95, pad=0.015, aspect=25)
        cbar.outline.set_linewidth(0.5)
        if label is not None:
            cbar.set_label(label)
        if paths:
            # at most 4 entries a row, so long method lists wrap instead of running off the page
            fig.legend(handles=_path_handles(paths), loc="outside lower center", ncols=min(4, len(paths) + 2),
                       frameon=False, handlelength=1.4, columnspacing=1.2)
    return fig


# ----------------------------------------------------------------------------- curves over seeds

def _check_curve_args(groups, band, x, y, legend):
    """The checks :func:`curves` and :func:`rates` share; returns the checked groups."""
    groups = _check_groups(groups)
    if band not in _BAND_TEXT:
        raise ValueError(f"band must be 'quantile' (median, 10-90%) or 'std' (mean +- std), got {band!r}")
    if not isinstance(x, str) or not isinstance(y, str):
        raise TypeError("x and y must be column names (str)")
    _check_legend(legend)
    return groups


def _check_groups(groups):
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict method name -> list of Trace (one per seed)")
    out = {}
    for name, traces in groups.items():
        if isinstance(traces, Trace):
            traces = [traces]
        traces = list(traces)
        if not traces:
            raise ValueError(f"groups[{name!r}] is empty: give at least one Trace")
        for t in traces:
            if not isinstance(t, Trace):
                raise TypeError(f"groups[{name!r}] must hold Trace objects, got {type(t).__name__}")
        out[str(name)] = traces
    return out


def _column(traces, name, argname, group):
    cols = []
    for s, t in enumerate(traces):
        if name not in t:
            raise ValueError(f"{argname}={name!r} is not a column of groups[{group!r}][{s}]; "
                             f"available: {', '.join(t.columns) or '(none)'}")
        c = np.asarray(t[name], dtype=float)
        if c.ndim != 1:
            raise ValueError(f"{argname}={name!r} must name a 1-D column, but it has shape {c.shape} "
                             f"in groups[{group!r}][{s}]")
        cols.append(c)
    return cols


def _stack(group, xcols, ycols, interpolate):
    """(x, Y (n_seeds, n)) on the first trace's x values."""
    x0 = xcols[0]
    rows = []
    for s, (x, y) in enumerate(zip(xcols, ycols)):
        if x.shape == x0.shape and np.array_equal(x, x0, equal_nan=True):
            rows.append(y)
            continue
        if not interpolate:
            raise ValueError(f"the traces of groups[{group!r}] must share their x values: seed {s} differs from "
                             "seed 0")
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 2 or np.any(np.diff(x[np.isfinite(x)]) < 0) or np.any(np.diff(x0[np.isfinite(x0)]) < 0):
            raise ValueError(f"cannot interpolate groups[{group!r}][{s}] onto seed 0's x values: x must be "
                             "non-decreasing with at least 2 finite points")
        rows.append(np.interp(x0, x[ok], y[ok], left=np.nan, right=np.nan))
    return x0, np.vstack(rows)


def _seeds(n):
    return f"{n} seed" + ("s" if n != 1 else "")


def _common_count(groups):
    counts = [len(t) for t in groups.values()]
    return max(sorted(set(counts)), key=lambda n: (counts.count(n), n)), max(counts)  # ties: the larger


def _band_title(band, common, most):
    """The legend title saying what line and band are (and the usual number of seeds)."""
    if most == 1:
        return "one seed per method"
    return _BAND_TEXT[band] + "\n" + ("over seeds" if common == 1 else f"over {_seeds(common)}")


def _tidy_log(ax, logx, logy):
    """Readable log ticks: below 2.5 decades label 1, 2, 5 x 10^j in plain numbers, else powers of ten."""
    for on, axis, lim in ((logx, ax.xaxis, ax.get_xlim()), (logy, ax.yaxis, ax.get_ylim())):
        if not on:
            continue
        lo, hi = sorted(lim)
        axis.set_minor_formatter(NullFormatter())
        if lo > 0 and np.log10(hi / lo) < 2.5 and 1e-3 <= lo and hi <= 1e4:
            axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _center_band(Y, band):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN logging points give NaN, silently
        if band == "quantile":
            mid = np.nanmedian(Y, axis=0)
            lo, hi = np.nanquantile(Y, [0.1, 0.9], axis=0)
        else:
            mid = np.nanmean(Y, axis=0)
            sd = np.nanstd(Y, axis=0)
            lo, hi = mid - sd, mid + sd
    return mid, lo, hi


def _check_legend(where):
    if where not in ("auto", "best", "outside", None):
        raise ValueError(f"legend must be 'auto', 'best', 'outside' or None, got {where!r}")


def _legend(ax, handles, title, where, n_auto, ncols, height):
    """Place the legend; with height None grow the figure by the rows of a legend placed outside."""
    fig = ax.figure
    if where == "auto":
        where = "best" if len(handles) <= n_auto else "outside"
    if where == "best":
        ax.legend(handles=handles, title=title, loc="best", alignment="left")
    elif where == "outside":
        fig.legend(handles=handles, title=title.replace("\n", " "), loc="outside lower center", ncols=ncols, frameon=False,
                   alignment="center", columnspacing=1.2)
        if height is None:
            rows = -(-len(handles) // ncols) + 1
            fig.set_size_inches(fig.get_figwidth(), fig.get_figheight() + 0.1 + 0.16 * rows)


def curves(groups, x="samples", y="phi0", logx=False, logy=False, band="quantile", xlabel=None, ylabel=None, *,
           legend="auto", width="column", height=None):
    """Each method's median (or mean) curve over its seeds with a shaded seed band.

    ``groups``: dict method name -> list of :class:`Trace` (one per seed).  For
    each method the line is, at each of its logging points, the median over
    seeds of column ``y`` and the band the 10%-90% quantiles (``band="quantile"``),
    or the mean and mean +- one standard deviation (``band="std"``); NaN values
    are ignored point by point (a point where every seed is NaN is not drawn).
    A single seed gives a line without band.

    The traces of a method should share their ``x`` column values; a trace
    whose ``x`` values differ is linearly interpolated onto the first trace's ``x``
    values (NaN outside its own range), which needs non-decreasing ``x``.
    Methods may have different ``x`` values from one another.

    With ``logx`` the points with ``x <= 0`` are left out (e.g. samples = 0 at k
    = 0); with ``logy`` the band is clipped to positive values by matplotlib.
    ``legend``: "best" (inside, where it covers least data), "outside" (below the
    axes), "auto" (inside up to 3 methods) or None.
    """
    groups = _check_curve_args(groups, band, x, y, legend)
    with paper_style():
        fig, ax = _single_axes(width, height)
        handles = []
        common, most = _common_count(groups)
        for i, (name, traces) in enumerate(groups.items()):
            xv, Y = _stack(name, _column(traces, x, "x", name), _column(traces, y, "y", name), interpolate=True)
            if logx:
                xv, Y = xv[xv > 0], Y[:, xv > 0]
            mid, lo, hi = _center_band(Y, band)
            c = _color(i)
            label = name if len(traces) == common else f"{name}, {_seeds(len(traces))}"
            (line,) = ax.plot(xv, mid, color=c, lw=1.1, label=label, zorder=3)
            if len(traces) > 1:
                ax.fill_between(xv, lo, hi, color=c, alpha=0.2, lw=0, zorder=2)
            handles.append(line)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel if xlabel is not None else _LABELS.get(x, x))
        ax.set_ylabel(ylabel if ylabel is not None else _LABELS.get(y, y))
        ax.grid(True, which="major", alpha=0.3)
        _tidy_log(ax, logx, logy)
        wide = max(len(h.get_label()) for h in handles) > 22
        _legend(ax, handles, _band_title(band, common, most), legend, n_auto=3, ncols=1 if wide else 2, height=height)
    return fig


# ----------------------------------------------------------------------------- rates

def tradeoff(lines, points=None, *, xlabel, ylabel, same_color=None, colors=None, legend="auto", width="column",
             height=None):
    """A trade-off plane (e.g. happiness against KL): exact curves and measured points.

    ``lines``: dict label -> ``(x, y)`` arrays, each drawn as a line with markers (in
    the order given).  ``points``: dict label -> ``(x, y, (x_lo, x_hi), (y_lo, y_hi))``,
    each drawn as a marker with its error bars (e.g. the median and the 10%-90%
    quantiles of final values over seeds).  ``same_color``: dict point label -> line
    label whose color the point takes (the measured counterpart of an exact curve).
    ``colors``: dict label -> index into the color cycle, so that a method keeps the color
    it has in other figures (labels not in it take the cycle in order, as without it).
    """
    if not isinstance(lines, Mapping) or not lines:
        raise TypeError("lines must be a non-empty dict label -> (x, y)")
    points = {} if points is None else points
    if not isinstance(points, Mapping):
        raise TypeError("points must be a dict label -> (x, y, (x_lo, x_hi), (y_lo, y_hi))")
    _check_legend(legend)
    same_color = {} if same_color is None else dict(same_color)
    names = list(dict.fromkeys([*lines, *(p for p in points if p not in same_color)]))
    colors = {} if colors is None else dict(colors)

    def color(label):
        return _color(colors[label]) if label in colors else _color(names.index(label))

    with paper_style():
        fig, ax = _single_axes(width, height)
        handles = []
        for label, (xv, yv) in lines.items():
            xv, yv = np.asarray(xv, dtype=float), np.asarray(yv, dtype=float)
            if xv.shape != yv.shape or xv.ndim != 1:
                raise ValueError(f"lines[{label!r}]: x and y must be 1-d arrays of one length")
            (h,) = ax.plot(xv, yv, color=color(label), lw=1.0, marker="o", ms=2.5, label=label,
                           zorder=2)
            handles.append(h)
        for label, (xm, ym, (xl, xh), (yl, yh)) in points.items():
            c = color(same_color.get(label, label))
            h = ax.errorbar([xm], [ym], xerr=[[xm - xl], [xh - xm]], yerr=[[ym - yl], [yh - ym]], color=c,
                            marker="D", ms=4, lw=0.8, capsize=2, ls="none", label=label, zorder=3)
            handles.append(h)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _legend(ax, handles, "", legend, 3, 1, height)
    return fig


def _fmt(v):
    return f"{v:.3g}"


def rates(groups, y, window=None, theory=None, *, x="k", level=0.95, decades=1.5, min_decades=1.5,
          deterministic=False, n_boot=None, seed=None,
          band="quantile", xlabel=None, ylabel=None, legend="auto", width="column", height=None):
    """Column ``y`` against ``x`` (default the step k) on log-log axes, with fitted slopes.

    For each method (``groups``: dict name -> list of :class:`Trace`, whose ``x``
    columns must be equal) the logging points with ``x <= 0`` (k = 0) are
    skipped, and so are the points where any seed's value is not finite or
    ``<= 0`` (the legend entry says how many were dropped).  The remaining
    points are drawn as the median over seeds with the 10-90% band
    (``band="std"``: mean +- std), and :func:`exactbilevel.rates.fit_rate`
    fits the slope of log y on log x over ``window`` (fractions of the
    remaining points; default the last ``decades`` decades or more, refused if
    shorter than ``min_decades``) with a ``level`` Student-t interval over
    seeds; the fitted power law is drawn dashed over the window and the legend
    gives ``slope s [lo, hi]`` (``slope s, no interval`` for one seed;
    ``deterministic=True``: one noise-free curve per method, whose legend gives
    the fit's max |log residual|).  ``n_boot`` and ``seed`` are ignored (see
    :func:`exactbilevel.rates.fit_rate`).

    ``theory``: the theory's exponent (a number), drawn as a dotted black
    reference line over the first method's window, starting a factor 2 below
    its fit (so that neither hides the other), or a dict name -> exponent,
    drawn the same way in each method's color beside its own fit.  The fits are also stored as ``fig.rate_fits`` (name -> RateFit).
    """
    groups = _check_curve_args(groups, band, x, y, legend)
    if theory is not None and not isinstance(theory, Mapping):
        theory = float(theory)
    elif isinstance(theory, Mapping):
        unknown = set(map(str, theory)) - set(groups)
        if unknown:
            raise ValueError(f"theory names {sorted(unknown)} that are not in groups")
        theory = {str(k): float(v) for k, v in theory.items()}
    fits = {}
    with paper_style():
        fig, ax = _single_axes(width, height)
        handles = []
        for i, (name, traces) in enumerate(groups.items()):
            kv, Y = _stack(name, _column(traces, x, "x", name), _column(traces, y, "y", name), interpolate=False)
            keep = np.isfinite(kv) & (kv > 0)
            kv, Y = kv[keep], Y[:, keep]
            good = np.all(np.isfinite(Y) & (Y > 0), axis=0)
            dropped = int((~good).sum())
            kv, Y = kv[good], Y[:, good]
            try:
                fit = fit_rate(kv, Y, window, level=level, decades=decades, min_decades=min_decades,
                               deterministic=deterministic, n_boot=n_boot, seed=seed,
                               theory=theory.get(name) if isinstance(theory, dict) else theory)
            except ValueError as exc:
                raise ValueError(f"groups[{name!r}]: cannot fit the rate of {y!r}: {exc}") from None
            fits[name] = fit
            mid, lo, hi = _center_band(Y, band)
            c = _color(i)
            note = f" ({dropped} pts not > 0 dropped)" if dropped else ""
            (line,) = ax.plot(kv, mid, color=c, lw=0.9, alpha=0.85, zorder=3,
                              label=f"{name}: slope {_fmt(fit.slope)} {_interval_text(fit)}{note}")
            if len(traces) > 1:
                ax.fill_between(kv, lo, hi, color=c, alpha=0.2, lw=0, zorder=2)
            kw = np.geomspace(*fit.k_range, 50)
            ax.plot(kw, np.exp(fit.intercept) * kw**fit.slope, color=_darker(c), ls=(0, (4, 2)), lw=1.6, zorder=4)
            handles.append(line)
            if isinstance(theory, dict) and name in theory:
                handles.append(_theory_line(ax, fit, theory[name], c, f"theory ({name}): {_fmt(theory[name])}"))
        if isinstance(theory, float):
            handles.append(_theory_line(ax, next(iter(fits.values())), theory, "black", f"theory: slope {_fmt(theory)}"))
        handles.append(Line2D([], [], color="0.25", ls=(0, (4, 2)), lw=1.6,
                              label="fit on window" if deterministic else f"fit on window, slope [{level * 100:g}% CI]"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel if xlabel is not None else _LABELS.get(x, x))
        ax.set_ylabel(ylabel if ylabel is not None else _LABELS.get(y, y))
        ax.grid(True, which="major", alpha=0.3)
        _tidy_log(ax, True, True)
        _legend(ax, handles, _band_title(band, *_common_count(groups)), legend, n_auto=3, ncols=1, height=height)
    fig.rate_fits = fits
    return fig


def _interval_text(fit):
    if fit.max_residual is not None:
        return f"(max |log res| {fit.max_residual:.2g})"
    if not fit.has_interval:
        return "(no interval)"
    return f"[{_fmt(fit.ci[0])}, {_fmt(fit.ci[1])}]"


def plot_slope_stability(ax, result, theory=None, *, color=None, label=None):
    """Draw a :class:`~exactbilevel.rates.SlopeStability` on ``ax``: fitted slope against the window's end.

    The slopes over [k_end / 10^decades, k_end] are drawn against k_end (log x
    axis) as a line with markers, their intervals as a band (where they exist),
    the theory's exponent (``theory``, default ``result.theory``; pass
    ``theory=False`` for none) as a dotted black line and 0 as a thin grey one.
    A slope that has stabilized is flat at the right.  ``color`` defaults to the
    first color of the cycle; ``label`` to ``"slope over <decades> decades"``.
    Returns the legend handles (the slope line, and the theory line if drawn).
    The axes labels are set only where still empty.
    """
    from matplotlib.axes import Axes

    from .rates import SlopeStability

    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    if not isinstance(result, SlopeStability):
        raise TypeError(f"result must be a SlopeStability (from exactbilevel.rates.slope_stability), "
                        f"got {type(result).__name__}")
    if theory is None:
        theory = result.theory
    elif theory is False:
        theory = None
    elif isinstance(theory, bool) or not isinstance(theory, (int, float, np.floating, np.integer)):
        raise TypeError(f"theory must be a number (the theory's exponent), None or False, got {type(theory).__name__}")
    c = _color(0) if color is None else color
    text = label if label is not None else f"slope over {result.decades:g} decades"
    (line,) = ax.plot(result.ends, result.slopes, color=c, lw=0.9, marker="o", ms=2.0, zorder=3, label=text)
    handles = [line]
    lo, hi = result.intervals[:, 0], result.intervals[:, 1]
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(result.ends, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=c, alpha=0.2, lw=0,
                        zorder=2, label=f"{result.level * 100:g}% interval")
    ax.axhline(0.0, color="0.6", lw=0.6, zorder=1)
    if theory is not None:
        theory = float(theory)
        handles.append(ax.axhline(theory, color="black", ls=":", lw=1.3, zorder=4, label=f"theory: {_fmt(theory)}"))
    ax.set_xscale("log")
    if not ax.get_xlabel():
        ax.set_xlabel("window end k")
    if not ax.get_ylabel():
        ax.set_ylabel("fitted slope")
    return handles


def _darker(color, f=0.65):
    r, g, b = matplotlib.colors.to_rgb(color)
    return (r * f, g * f, b * f)


def _theory_line(ax, fit, slope, color, label):
    """k^slope over the fit's window, starting a factor 2 below the fit so that it hides neither."""
    k0, k1 = fit.k_range
    k = np.geomspace(k0, k1, 50)
    anchor = 0.5 * np.exp(fit.intercept) * k0**fit.slope
    (line,) = ax.plot(k, anchor * (k / k0) ** slope, color=color, ls=":", lw=1.3, zorder=4, label=label)
    return line


# ----------------------------------------------------------------------------- saving

def save(fig, path_stem):
    """Write ``path_stem.png`` (200 dpi) and ``path_stem.pdf``; return the two paths.

    Parent folders are created.  Each file is written to a temporary file in its
    folder and moved into place with ``os.replace``, so a reader never sees a
    half-written figure and a failure leaves no temporary file behind.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    stem = Path(path_stem)
    if not stem.name:
        raise ValueError(f"path_stem must name a file, got {str(path_stem)!r}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with paper_style():
        for ext, kw in (("png", {"dpi": 200}), ("pdf", {})):
            target = stem.with_name(stem.name + "." + ext)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fig.savefig(fh, format=ext, **kw)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            out.append(target)
    return tuple(out)
