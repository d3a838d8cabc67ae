"""Matplotlib figures for notebooks: image grids with titles and axis labels, and the check that
every figure has them.

genflow itself does not need matplotlib; the notebooks do (`pip install -e '.[notebooks]'`, which
`make install` includes). The test suite runs every notebook with `figure_problems` hooked into
matplotlib's drawing, so a figure without a title, or a plot whose axes are shown without labels,
fails it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor
from torchvision.utils import make_grid

try:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
except ModuleNotFoundError as error:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "genflow.plots draws with matplotlib, which is not installed. Install the notebook "
        "extras: pip install -e '.[notebooks]' (make install does)."
    ) from error


def image_grid(images: Tensor, nrow: int | None = None, padding: int = 1) -> Tensor:
    """(H, W, C) array-ready grid of a batch (N, C, h, w) of images in [0, 1], `nrow` per row
    (default: a square), separated by white lines."""
    if images.dim() != 4:
        raise ValueError(
            f"image_grid takes a batch of images (N, C, H, W), got shape {tuple(images.shape)}."
        )
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    grid = make_grid(
        images.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=padding, pad_value=1.0
    )
    return grid.permute(1, 2, 0)


def show_images(
    images: Tensor,
    title: str,
    nrow: int | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    ax: Axes | None = None,
    width: float = 4.0,
) -> Axes:
    """Draw a batch of images in [0, 1] as one grid with a title, on `ax` or a new figure.

    Without axis labels the grid is a picture (no frame). With them the frame stays, without
    ticks, and the labels say what runs along the rows and columns (e.g. "interpolation step").
    """
    grid = image_grid(images, nrow)
    if ax is None:
        height = width * grid.shape[0] / grid.shape[1]
        _, ax = plt.subplots(figsize=(width, max(height, 0.6)))
    return _draw_grid(ax, grid, title, xlabel, ylabel)


def _draw_grid(
    ax: Axes, grid: Tensor, title: str, xlabel: str | None = None, ylabel: str | None = None
) -> Axes:
    if not title:
        raise ValueError("Give the figure a title: what the images are.")
    ax.imshow(grid)  # make_grid gives RGB even for one channel
    ax.set_title(title)
    if xlabel or ylabel:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(xlabel or "")
        ax.set_ylabel(ylabel or "")
    else:
        ax.set_axis_off()
    return ax


def rows_of_images(
    rows: Sequence[Tensor],
    row_titles: Sequence[str],
    title: str,
    xlabel: str | None = None,
    width: float = 8.0,
) -> Figure:
    """One figure of several image strips stacked vertically, each (N, C, H, W) in [0, 1] and
    titled, under a common title; `xlabel` says what runs along the strips (e.g. "t")."""
    if len(rows) != len(row_titles):
        raise ValueError(f"Give one title per row: {len(rows)} rows, {len(row_titles)} titles.")
    strips = [image_grid(row, nrow=row.shape[0]) for row in rows]
    heights = [s.shape[0] / s.shape[1] * width for s in strips]
    size = (width, sum(heights) + 0.5 * len(rows) + 0.4)
    fig, axes = plt.subplots(len(rows), 1, figsize=size, squeeze=False)
    for ax, strip, row_title in zip(axes[:, 0], strips, row_titles, strict=True):
        _draw_grid(ax, strip, row_title)
    fig.suptitle(title)
    if xlabel:
        fig.supxlabel(xlabel)
    fig.tight_layout()
    return fig


def _is_colorbar(ax: Axes) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def figure_problems(fig: Figure) -> list[str]:
    """What a reader would miss in `fig`: a visible axes with no title (its own or the figure's
    suptitle), or an axes drawn with its frame on but no x or y label (its own or the figure's
    supxlabel / supylabel). Colorbars need a label only. An empty list means the figure is fit
    to be looked at."""
    suptitle, supxlabel, supylabel = (
        text.get_text() if text else "" for text in (fig._suptitle, fig._supxlabel, fig._supylabel)
    )
    name = suptitle or next((ax.get_title() for ax in fig.axes if ax.get_title()), "untitled")
    problems = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"figure {name!r}, axes {i}"
        if _is_colorbar(ax):
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"{where}: a colorbar without a label")
            continue
        if not (suptitle or ax.get_title() or ax.get_title("left") or ax.get_title("right")):
            problems.append(f"{where}: no title")
        if ax.axison and not (ax.get_xlabel() or supxlabel):
            problems.append(f"{where}: no x-axis label")
        if ax.axison and not (ax.get_ylabel() or supylabel):
            problems.append(f"{where}: no y-axis label")
    return problems
