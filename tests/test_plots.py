"""Plots: each function returns a Figure whose drawn data are checked against independent numpy values."""

import os
import re

import numpy as np
import pytest
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.figure import Figure

from exactbilevel import plots
from exactbilevel.rates import fit_rate
from exactbilevel.trace import Trace


def make_trace(k, **cols):
    k = np.asarray(k)
    base = {"k": k, "samples": 10 * k, "x": np.zeros((k.size, 2))}
    base.update(cols)
    return Trace(base, meta={})


def seed_group(n_seeds, k, seed):
    rng = np.random.default_rng(seed)
    return [make_trace(k, phi0=rng.normal(size=k.size) + 1.0 / (1 + k)) for _ in range(n_seeds)]


def main_lines(ax):
    """Lines carrying a label (the per-method data lines; helpers and proxies have none)."""
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def legend_titles(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [leg.get_title().get_text() for leg in legends]


GRID_X = np.linspace(0.0, 4.0, 5)
GRID_Y = np.linspace(-1.0, 1.0, 3)


# ----------------------------------------------------------------------------- landscape(s)

def test_landscape_orientation_colorbar_and_paths():
    values = np.add.outer(10 * GRID_Y, GRID_X)  # values[i, j] = 10 ys[i] + xs[j]
    paths = {"a": np.array([[0.0, -1.0], [2.0, 0.0], [4.0, 1.0]]), "b": np.array([[1.0, 1.0], [3.0, -1.0]])}
    fig = plots.landscape(GRID_X, GRID_Y, values, paths=paths, title="T", label="Phi")
    assert isinstance(fig, Figure)
    ax, cax = fig.axes  # the landscape and its color bar
    assert ax.get_title() == "T" and cax.get_ylabel() == "Phi"
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(GRID_Y.size, GRID_X.size), values)
    # the cell at (xs[j], ys[i]) is centred there: the mesh covers [xs[0] - 0.5, xs[-1] + 0.5] horizontally
    coords = mesh.get_coordinates()
    assert coords.shape == (GRID_Y.size + 1, GRID_X.size + 1, 2)
    np.testing.assert_allclose(coords[0, :, 0], np.r_[GRID_X - 0.5, GRID_X[-1] + 0.5])
    np.testing.assert_allclose(coords[:, 0, 1], np.r_[GRID_Y - 0.5, GRID_Y[-1] + 0.5])
    assert mesh.norm.vmin == values.min() and mesh.norm.vmax == values.max()
    # three lines per path (path, start, end), start and end at the first and last point, one color per path
    lines = ax.get_lines()
    assert len(lines) == 3 * len(paths)
    for i, (name, p) in enumerate(paths.items()):
        path, start, end = lines[3 * i: 3 * i + 3]
        assert path.get_label() == name
        np.testing.assert_array_equal(np.c_[path.get_xdata(), path.get_ydata()], p)
        np.testing.assert_array_equal(np.c_[start.get_xdata(), start.get_ydata()], p[:1])
        np.testing.assert_array_equal(np.c_[end.get_xdata(), end.get_ydata()], p[-1:])
        assert path.get_color() == start.get_markeredgecolor() == end.get_markerfacecolor()
    assert lines[0].get_color() != lines[3].get_color()
    assert {"a", "b", "start", "end"} <= set(legend_texts(fig))


def test_landscape_y_down_and_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plots.landscape(GRID_X, GRID_Y, np.zeros((3, 5)), ax=ax, y_down=True)
    assert out is fig and len(fig.axes) == 2
    assert ax.yaxis_inverted()
    assert len(ax.get_lines()) == 0


def test_landscapes_share_one_color_scale():
    a = np.arange(15.0).reshape(3, 5)
    b = -a
    b[1, 1] = np.nan  # NaN is left blank and ignored by the scale
    fig = plots.landscapes(GRID_X, GRID_Y, {"Phi_0": a, "Phi_tau": b}, paths={"m": np.zeros((4, 2))}, label="obj")
    assert len(fig.axes) == 3  # two panels and one shared color bar
    panels = fig.axes[:2]
    assert [ax.get_title() for ax in panels] == ["Phi_0", "Phi_tau"]
    meshes = [next(c for c in ax.collections if isinstance(c, QuadMesh)) for ax in panels]
    for m in meshes:
        assert (m.norm.vmin, m.norm.vmax) == (-14.0, 14.0)
    assert all(len(ax.get_lines()) == 3 for ax in panels)
    assert fig.axes[2].get_ylabel() == "obj"
    assert fig.get_figwidth() == pytest.approx(plots.PAGE_WIDTH)


@pytest.mark.parametrize("bad, match", [
    ({"values": np.zeros((5, 3))}, r"values must have shape \(len\(ys\), len\(xs\)\)"),
    ({"xs": np.array([0.0, 2.0, 1.0, 3.0, 4.0])}, "xs must be strictly monotone"),
    ({"paths": {"p": np.zeros((3, 3))}}, r"paths\['p'\] must have shape \(n, 2\)"),
])
def test_landscape_bad_input(bad, match):
    kw = {"xs": GRID_X, "ys": GRID_Y, "values": np.zeros((3, 5))}
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        plots.landscape(**kw)


def test_landscapes_bad_input():
    with pytest.raises(ValueError, match=r"panels\['B'\] must have shape"):
        plots.landscapes(GRID_X, GRID_Y, {"A": np.zeros((3, 5)), "B": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="panels must be a non-empty dict"):
        plots.landscapes(GRID_X, GRID_Y, {})


# ----------------------------------------------------------------------------- curves

def test_curves_median_and_quantile_band():
    k = np.arange(12)
    groups = {"A": seed_group(7, k, 0), "B": seed_group(4, k, 1), "C": seed_group(7, k, 3),
              "single": seed_group(1, k, 2)}
    fig = plots.curves(groups, x="samples", y="phi0")
    (ax,) = fig.axes
    lines = main_lines(ax)
    # the usual seed count goes in the legend title, other counts beside their method
    assert [ln.get_label() for ln in lines] == ["A", "B, 4 seeds", "C", "single, 1 seed"]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3  # no band for a single seed
    for line, band, (name, traces) in zip(lines, bands, groups.items()):
        Y = np.stack([np.asarray(t["phi0"]) for t in traces])
        np.testing.assert_array_equal(line.get_xdata(), 10 * k)
        np.testing.assert_allclose(line.get_ydata(), np.median(Y, axis=0), rtol=0, atol=1e-14)
        verts = band.get_paths()[0].vertices
        lo, hi = np.quantile(Y, [0.1, 0.9], axis=0)
        assert verts[:, 1].min() == pytest.approx(lo.min()) and verts[:, 1].max() == pytest.approx(hi.max())
    assert any("median" in t and "10-90%" in t and "7 seeds" in t for t in legend_titles(fig))


def test_curves_std_band_ignores_nan_and_logx_drops_zero():
    k = np.arange(6)
    Y = np.array([[1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
                  [3.0, 2.0, 5.0, np.nan, 7.0, 6.0],
                  [2.0, 5.0, 3.0, 2.0, np.nan, 9.0]])
    traces = [make_trace(k, phi0=y) for y in Y]
    fig = plots.curves({"m": traces}, x="samples", y="phi0", band="std", logx=True)
    (ax,) = fig.axes
    (line,) = main_lines(ax)
    np.testing.assert_array_equal(line.get_xdata(), 10 * k[1:])  # samples = 0 dropped on a log axis
    expected = [np.mean([v for v in col if not np.isnan(v)]) for col in Y.T[1:]]
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert ax.get_xscale() == "log"
    assert any("mean" in t and "std" in t for t in legend_titles(fig))


def test_curves_interpolates_onto_first_trace():
    t1 = Trace({"samples": np.array([0.0, 10.0, 20.0, 30.0]), "phi0": np.array([0.0, 1.0, 2.0, 3.0])})
    t2 = Trace({"samples": np.array([0.0, 20.0, 40.0]), "phi0": np.array([0.0, 4.0, 8.0])})  # phi0 = samples / 5
    fig = plots.curves({"m": [t1, t2]}, x="samples", y="phi0")
    (line,) = main_lines(fig.axes[0])
    np.testing.assert_allclose(line.get_ydata(), np.median([[0, 1, 2, 3], [0, 2, 4, 6]], axis=0))


@pytest.mark.parametrize("kw, match", [
    ({"groups": {}}, "groups must be a non-empty dict"),
    ({"groups": {"m": []}}, r"groups\['m'\] is empty"),
    ({"y": "nope"}, "y='nope' is not a column"),
    ({"x": "nope"}, "x='nope' is not a column"),
    ({"y": "x"}, "y='x' must name a 1-D column"),
    ({"band": "iqr"}, "band must be"),
    ({"legend": "top"}, "legend must be"),
])
def test_curves_bad_input(kw, match):
    args = {"groups": {"m": seed_group(2, np.arange(5), 0)}}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        plots.curves(**args)


# ----------------------------------------------------------------------------- rates

def power_law_groups(p, n_seeds=3, drop_row=False):
    k = np.arange(0, 41)  # k = 0 is skipped by rates()
    traces = []
    for s in range(n_seeds):
        v = (2.0 + s) * np.maximum(k, 1).astype(float) ** p
        if drop_row:
            v[5] = 0.0 if s == 1 else v[5]
        traces.append(make_trace(k, residual_phi=v))
    return {"exact": traces}


def test_rates_slope_in_legend_equals_fit_rate():
    p = -0.5
    groups = power_law_groups(p)
    # the second half of 40 points spans 0.3 decades: below fit_rate's 1.5-decade minimum, so lowered
    fig = plots.rates(groups, "residual_phi", window=(0.5, 1.0), theory=-1 / 3, min_decades=0.0)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    k = np.arange(1, 41)
    V = np.stack([np.asarray(t["residual_phi"])[1:] for t in groups["exact"]])
    fit = fit_rate(k, V, (0.5, 1.0), min_decades=0.0)
    assert fit.slope == pytest.approx(p, abs=1e-12)
    (entry,) = [t for t in legend_texts(fig) if t.startswith("exact:")]
    shown = re.match(r"exact: slope (\S+) \[(\S+), (\S+)\]", entry)
    assert shown, entry
    assert [float(g) for g in shown.groups()] == pytest.approx([fit.slope, *fit.ci], abs=5e-3)
    assert shown.group(1) == f"{fit.slope:.3g}"
    assert fig.rate_fits["exact"].slope == fit.slope and fig.rate_fits["exact"].ci == fit.ci
    # data line (median over seeds), dashed fit line and dotted theory line
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_xdata(), k)
    np.testing.assert_allclose(lines[0].get_ydata(), np.median(V, axis=0))
    fit_line = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(fit_line) == 1
    kx, vy = fit_line[0].get_xdata(), fit_line[0].get_ydata()
    assert kx[0] == pytest.approx(fit.k_range[0]) and kx[-1] == pytest.approx(fit.k_range[1])
    np.testing.assert_allclose(np.diff(np.log(vy)) / np.diff(np.log(kx)), p, atol=1e-9)
    (theory,) = [ln for ln in lines if ln.get_linestyle() == ":"]
    np.testing.assert_allclose(np.diff(np.log(theory.get_ydata())) / np.diff(np.log(theory.get_xdata())), -1 / 3)
    assert any(t.startswith("theory") for t in legend_texts(fig))


def test_rates_drops_nonpositive_rows_with_note():
    fig = plots.rates(power_law_groups(-1.0, drop_row=True), "residual_phi")
    (entry,) = [t for t in legend_texts(fig) if t.startswith("exact:")]
    assert "1 pts not > 0 dropped" in entry
    assert fig.rate_fits["exact"].slope == pytest.approx(-1.0, abs=1e-12)
    assert 5 not in main_lines(fig.axes[0])[0].get_xdata()


@pytest.mark.parametrize("kw, match", [
    ({"groups": {}}, "groups must be a non-empty dict"),
    ({"y": "nope"}, "y='nope' is not a column"),
    ({"x": "time"}, "x='time' is not a column"),
])
def test_rates_bad_input(kw, match):
    args = {"groups": power_law_groups(-1.0), "y": "residual_phi"}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        plots.rates(**args)


def test_rates_needs_shared_k():
    g = power_law_groups(-1.0)["exact"]
    other = make_trace(np.arange(0, 82, 2), residual_phi=np.ones(41))
    with pytest.raises(ValueError, match=r"groups\['exact'\] must share"):
        plots.rates({"exact": g + [other]}, "residual_phi")


# ----------------------------------------------------------------------------- save

def test_save_writes_png_and_pdf_atomically(tmp_path):
    fig = plots.curves({"m": seed_group(3, np.arange(5), 0)})
    stem = tmp_path / "sub" / "dir" / "fig"
    png, pdf = plots.save(fig, stem)
    assert (png, pdf) == (stem.with_name("fig.png"), stem.with_name("fig.pdf"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
    assert sorted(os.listdir(stem.parent)) == ["fig.pdf", "fig.png"]  # no temporary file left


def test_save_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    fig = plots.curves({"m": seed_group(2, np.arange(5), 0)})

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save(fig, tmp_path / "fig")
    assert os.listdir(tmp_path) == []


def test_paper_style_sizes():
    assert 8 <= plots.PAPER_RC["font.size"] <= 9
    assert plots.PAPER_RC["axes.spines.top"] is False and plots.PAPER_RC["axes.spines.right"] is False
    fig = plots.curves({"m": seed_group(2, np.arange(5), 0)})
    assert fig.get_figwidth() == pytest.approx(plots.COLUMN_WIDTH)
    ax = fig.axes[0]
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    assert ax.xaxis.label.get_fontsize() == pytest.approx(8)


def test_tradeoff_draws_the_lines_and_the_points_with_their_bars():
    lines = {"exact A": ([0.0, 1.0, 2.0], [0.1, 0.5, 0.6]), "exact B": ([0.5, 1.5], [0.2, 0.7])}
    points = {"A measured": (1.2, 0.45, (0.9, 1.6), (0.3, 0.5)), "C measured": (0.7, 0.3, (0.6, 0.8), (0.25, 0.35))}
    fig = plots.tradeoff(lines, points, xlabel="KL", ylabel="happiness", same_color={"A measured": "exact A"})
    ax = fig.axes[0]
    drawn = {ln.get_label(): ln for ln in main_lines(ax)}
    for label, (x, y) in lines.items():
        np.testing.assert_array_equal(drawn[label].get_xdata(), x)
        np.testing.assert_array_equal(drawn[label].get_ydata(), y)
    containers = {c.get_label(): c for c in ax.containers}
    marker, caps, (xbar, ybar) = containers["A measured"]
    assert marker.get_xdata()[0] == 1.2 and marker.get_ydata()[0] == 0.45
    np.testing.assert_allclose(xbar.get_segments()[0], [[0.9, 0.45], [1.6, 0.45]])
    np.testing.assert_allclose(ybar.get_segments()[0], [[1.2, 0.3], [1.2, 0.5]])
    assert marker.get_color() == drawn["exact A"].get_color()  # the measured counterpart
    assert containers["C measured"][0].get_color() not in (drawn["exact A"].get_color(),
                                                           drawn["exact B"].get_color())
    assert ax.get_xlabel() == "KL" and ax.get_ylabel() == "happiness"


def test_tradeoff_bad_input():
    with pytest.raises(TypeError, match="lines must be a non-empty dict"):
        plots.tradeoff({}, xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="1-d arrays of one length"):
        plots.tradeoff({"a": ([0, 1], [0])}, xlabel="x", ylabel="y")
    with pytest.raises(TypeError, match="points must be a dict"):
        plots.tradeoff({"a": ([0, 1], [0, 1])}, points=[1], xlabel="x", ylabel="y")
