"""Pictures of a sweep (matplotlib, the ``plot`` extra; imported only when asked)."""

from __future__ import annotations

import numpy as np

from .errors import GpuCheckError

__all__ = ["plot_sweep"]


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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GpuCheckError("plotting needs matplotlib: pip install matplotlib "
                            "(or pip install 'gpucheck-grad[plot]')") from None
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
