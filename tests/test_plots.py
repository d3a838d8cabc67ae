"""genflow.plots: image grids with titles, and the figure check the notebook tests rely on."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from genflow.plots import figure_problems, image_grid, rows_of_images, show_images  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_a_titled_and_labelled_plot_has_no_problems():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set(title="loss", xlabel="step", ylabel="nats")
    assert figure_problems(fig) == []


@pytest.mark.parametrize(
    "missing, expected",
    [("title", "no title"), ("xlabel", "no x-axis label"), ("ylabel", "no y-axis label")],
)
def test_a_plot_missing_a_title_or_a_label_is_reported(missing, expected):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set(**{k: v for k, v in dict(title="t", xlabel="x", ylabel="y").items() if k != missing})
    problems = figure_problems(fig)
    assert len(problems) == 1 and expected in problems[0]


def test_a_suptitle_titles_every_panel_but_each_framed_panel_needs_labels():
    fig, axes = plt.subplots(1, 2)
    fig.suptitle("two panels")
    axes[0].set(xlabel="x", ylabel="y")
    axes[1].set(xlabel="x")
    problems = figure_problems(fig)
    assert problems == ["figure 'two panels', axes 1: no y-axis label"]
    fig.supylabel("y")  # one label for the row of panels
    assert figure_problems(fig) == []


def test_a_colorbar_needs_a_label():
    fig, ax = plt.subplots()
    image = ax.imshow(torch.rand(4, 4).numpy())
    ax.set(title="density", xlabel="x1", ylabel="x2")
    bar = fig.colorbar(image)
    assert any("colorbar without a label" in p for p in figure_problems(fig))
    bar.set_label("p(x)")
    assert figure_problems(fig) == []


def test_show_images_is_a_titled_picture_or_a_labelled_frame():
    images = torch.rand(6, 1, 8, 8)
    ax = show_images(images, "samples", nrow=3)
    assert not ax.axison and ax.get_title() == "samples"
    assert figure_problems(ax.figure) == []
    ax = show_images(images, "a path", nrow=6, xlabel="interpolation step t")
    assert ax.axison and ax.get_xlabel() == "interpolation step t"
    assert figure_problems(ax.figure) == ["figure 'a path', axes 0: no y-axis label"]
    with pytest.raises(ValueError, match="title"):
        show_images(images, "")


def test_image_grid_lays_out_rows_with_white_separators():
    images = torch.zeros(6, 1, 8, 8)
    grid = image_grid(images, nrow=3)  # 2 rows of 3, 1-pixel padding around every image
    assert grid.shape == (2 * 9 + 1, 3 * 9 + 1, 3)
    assert grid[0].eq(1).all() and grid[1:9, 1:9].eq(0).all()
    assert grid[3, 3].tolist() == [0.0, 0.0, 0.0] and grid[9, 3].eq(1).all()
    with pytest.raises(ValueError, match="N, C, H, W"):
        image_grid(torch.zeros(8, 8))


def test_rows_of_images_titles_each_strip_under_a_common_title():
    rows = [torch.rand(5, 1, 8, 8), torch.rand(5, 3, 8, 8)]
    fig = rows_of_images(rows, ["lerp", "slerp"], "paths", xlabel="t from 0 to 1")
    assert [ax.get_title() for ax in fig.axes] == ["lerp", "slerp"]
    assert fig._supxlabel.get_text() == "t from 0 to 1" and figure_problems(fig) == []
    with pytest.raises(ValueError, match="one title per row"):
        rows_of_images(rows, ["one"], "paths")
