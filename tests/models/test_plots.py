"""Training curves: phases with different losses are drawn on their own axes, never joined."""

import matplotlib.pyplot as plt


def test_two_losses_get_two_axes_and_no_line_joins_them(tmp_path, monkeypatch):
    from dlapps.plots import plot_history

    files = []
    for name, losses in (("warmup", (15.0, 12.0, 9.0)), ("fine_tune", (0.13, 0.05))):
        path = tmp_path / f"history_{name}.csv"
        lines = ["epoch,loss,val_pair_accuracy"] + [f"{i},{loss},0.{7 + i}" for i, loss in enumerate(losses)]
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    assert plot_history(files, tmp_path / "curves.png", monitor="val_pair_accuracy", keys=("loss", "pair_accuracy"),
                        mode="max", loss_names=["CosFace", "triplet"]) == tmp_path / "curves.png"  # fmt: skip
    assert (tmp_path / "curves.png").is_file()
    loss_axis, accuracy_axis, twin = figures[0].axes
    drawn = {line.get_label(): line.get_xydata().tolist() for axis in (loss_axis, twin) for line in axis.get_lines()}
    assert drawn["train (CosFace)"] == [[1, 15.0], [2, 12.0], [3, 9.0]]
    assert drawn["train (triplet)"] == [[4, 0.13], [5, 0.05]]
    assert twin.get_ylabel() == "triplet loss" and loss_axis.get_ylabel() == "CosFace loss"
    # Each phase named where it starts; the best epoch counted overall and within its phase (as metrics.json does).
    assert [text.get_text() for text in accuracy_axis.texts] == ["warmup", "fine_tune"]
    assert "best epoch (3: warmup 3)" in [line.get_label() for line in accuracy_axis.get_lines()]
    # One loss (the fine-tuner's phases): one axis, one line through every epoch.
    plot_history(files, tmp_path / "one.png", monitor="val_pair_accuracy", keys=("loss", "pair_accuracy"), mode="max")
    assert len(figures[1].axes) == 2
    assert [line.get_label() for line in figures[1].axes[0].get_lines()][0] == "train"
    assert len(figures[1].axes[0].get_lines()[0].get_xydata()) == 5
