"""Pictures of a sweep and of a check's errors per entry (matplotlib, the ``plot`` extra;
imported only when asked)."""

from __future__ import annotations

import warnings

import numpy as np

from .errors import GpuCheckError

__all__ = ["plot_sweep", "plot_heatmap", "heatmap_grid"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GpuCheckError("plotting needs matplotlib: pip install matplotlib "
                            "(or pip install 'gpucheck-grad[plot]')") from None
    return plt


def plot_sweep(result, path, *, title=None):
    """Log-log discrepancy against step, with the error model's two lines.

    Parameters
    ----------
    result : SweepResult
    path : str or path-like
        Where to write the PNG.
    title : str, optional

    Returns
    -------
    str
        The path written.
    """
    plt = _pyplot()
    eps = np.asarray(result.eps)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    floor = np.finfo(float).tiny

    def pos(v):
        v = np.asarray(v, dtype=float)
        return np.where(v > 0, v, np.nan)

    ax.loglog(eps, pos(result.discrepancy), "o-", color="black", lw=2, label="observed discrepancy")
    ax.loglog(eps, pos(result.predicted_rounding), "--", color="tab:blue",
              label="predicted rounding  (∝ 1/eps)")
    if np.any(np.asarray(result.predicted_truncation) > floor):
        ax.loglog(eps, pos(result.predicted_truncation), "--", color="tab:orange",
                  label="predicted truncation  (∝ eps^p)")
    total = pos(np.asarray(result.predicted_rounding) + np.asarray(result.predicted_truncation))
    ax.loglog(eps, total, ":", color="gray", label="rounding + truncation")
    ax.axvline(result.best_eps, color="tab:green", alpha=0.5, lw=1)
    at_right = result.best_eps >= float(np.max(eps))
    ax.annotate(f"best eps {result.best_eps:.0e}", (result.best_eps, np.nanmin(pos(result.discrepancy))),
                textcoords="offset points", xytext=(-8 if at_right else 5, 10),
                ha="right" if at_right else "left", color="tab:green")
    ax.set_xlabel("relative step eps")
    ax.set_ylabel("discrepancy  ||n - a|| / (||n|| + ||a||)")
    ax.set_title(title or f"epsilon sweep ({result.dtype}): {result.regime}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


#: A 1-D array longer than this is folded into rows for the heat map.
FOLD_AFTER = 4096
#: Below this share of entries checked, the heat map marks them as points.
SPARSE_SHARE = 0.05


def heatmap_grid(values) -> tuple:
    """A per-entry array as a 2-D grid, and how to read its axes.

    2-D stays as it is; more axes are flattened per leading axis (rows
    ``x[i]``); 1-D is one row, or rows of ``ceil(sqrt(N))`` entries when
    longer than :data:`FOLD_AFTER` (padded with NaN).

    Returns
    -------
    (grid, row_label, column_label)

    Examples
    --------
    >>> heatmap_grid(np.zeros((2, 3, 4)))[0].shape, heatmap_grid(np.zeros(5000))[0].shape
    ((2, 12), (71, 71))
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2:
        return v, "index 0", "index 1"
    if v.ndim > 2:
        return v.reshape(v.shape[0], -1), "index 0", "indices 1.. (flattened)"
    v = v.reshape(-1)
    if v.size <= FOLD_AFTER:
        return v.reshape(1, -1), "", "index"
    width = int(np.ceil(np.sqrt(v.size)))
    rows = -(-v.size // width)
    grid = np.full(rows * width, np.nan)
    grid[:v.size] = v
    return grid.reshape(rows, width), f"index // {width}", f"index % {width}"


#: Cells a heat map panel shows along each axis; larger grids are max-pooled.
MAX_CELLS = 400
#: Failing entries circled on a heat map when there are at most this many.
MARKED_FAILS = 50


def pool_max(grid: np.ndarray, cells: int) -> np.ndarray:
    """``grid`` reduced to at most ``cells`` per axis, each block showing its largest value.

    NaN (not checked) is ignored unless a whole block is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.zeros((6, 4)); g[5, 0] = 1.0; g[0, :2] = np.nan
    >>> pool_max(g, 3)
    array([[0., 0.],
           [0., 0.],
           [1., 0.]])
    """
    fr = -(-grid.shape[0] // cells)
    fc = -(-grid.shape[1] // cells)
    if fr == 1 and fc == 1:
        return grid
    rows, cols = -(-grid.shape[0] // fr), -(-grid.shape[1] // fc)
    padded = np.full((rows * fr, cols * fc), np.nan)
    padded[:grid.shape[0], :grid.shape[1]] = grid
    blocks = padded.reshape(rows, fr, cols, fc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmax(blocks, axis=(1, 3))


def plot_heatmap(result, path, *, title=None):
    """A heat map of |error| / tolerance per entry (log scale; above 1 fails).

    One panel per input.  Entries a sampled check did not check stay grey;
    when few were checked they are drawn as points.  A grid larger than
    :data:`MAX_CELLS` a side is shown block by block, each block at its worst
    entry, and up to :data:`MARKED_FAILS` failing entries are circled, so a
    single wrong entry in a million is visible.

    Parameters
    ----------
    result : GradCheckResult
    path : str or path-like
        Where to write the PNG.
    title : str, optional

    Returns
    -------
    str
        The path written.
    """
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    err = result.split("abs_error")
    tol = result.split("tolerance")
    names = list(err)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names) + 1.0, 4.6), dpi=120,
                             squeeze=False)
    norm = TwoSlopeNorm(vmin=-3.0, vcenter=0.0, vmax=1.0)
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="#d9d9d9")
    image = None
    for ax, name in zip(axes[0], names):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.asarray(err[name], dtype=np.float64) / np.asarray(tol[name], dtype=np.float64)
            ratio = np.where(np.isnan(np.asarray(err[name], dtype=np.float64)), np.nan, ratio)
            level = np.clip(np.log10(ratio), -3.0, 1.0)
        grid, row_label, col_label = heatmap_grid(level)
        checked = np.isfinite(grid)
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        label = name if result.inputs else "x"
        if not checked.any():
            ax.imshow(np.zeros(grid.shape), cmap="Greys", vmin=0, vmax=4, aspect="auto")
            ax.text(0.5, 0.5, "no entry checked on its own", ha="center", va="center",
                    transform=ax.transAxes)
        elif checked.mean() < SPARSE_SHARE:
            ax.imshow(np.zeros(grid.shape), cmap="Greys", vmin=0, vmax=4, aspect="auto")
            r, c = np.nonzero(checked)
            image = ax.scatter(c, r, c=grid[r, c], cmap=cmap, norm=norm, s=12,
                               edgecolors="black", linewidths=0.3)
            ax.set_xlim(-0.5, grid.shape[1] - 0.5)
            ax.set_ylim(grid.shape[0] - 0.5, -0.5)
        else:
            # A panel has a few hundred pixels a side: blocks of entries show
            # their worst, so that one failing entry among 10^6 stays visible.
            shown = pool_max(grid, MAX_CELLS)
            image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, norm=norm, aspect="auto",
                              interpolation="nearest",
                              extent=(-0.5, grid.shape[1] - 0.5, grid.shape[0] - 0.5, -0.5))
        with np.errstate(invalid="ignore"):
            fr, fc = np.nonzero(grid > 0)
        if 0 < fr.size <= MARKED_FAILS:
            ax.scatter(fc, fr, s=90, facecolors="none", edgecolors="black", linewidths=1.0,
                       clip_on=False)
        ax.set_title(f"{label} {tuple(np.shape(err[name]))}: {int(checked.sum()):,} checked",
                     fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9)
        bar.set_label("log10 |error| / tolerance  (> 0 fails)")
    fig.suptitle(title or f"gradient check {result.status.upper()} ({result.mode}, {result.dtype})",
                 fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
