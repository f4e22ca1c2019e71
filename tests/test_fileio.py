"""File writing and figure saving: a file appears under its final name only when complete."""
from __future__ import annotations

import pytest

from noisevision.errors import UserError
from noisevision.fileio import atomic_path, atomic_write_text
from noisevision.plotting import pyplot, save_png


def test_atomic_path_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("under", ["", "deeper/"])
def test_a_file_in_the_way_of_the_folder_is_named(tmp_path, under):
    """mkdir said "File exists" (or "Not a directory"), which sent users looking for the target file."""
    (tmp_path / "notes").write_text("mine")
    target = tmp_path / "notes" / under / "out.json"
    with pytest.raises(UserError, match=f"^cannot write {target}: {tmp_path / 'notes'} is a file, not a folder$"):
        atomic_write_text(target, "{}")
    assert (tmp_path / "notes").read_text() == "mine"


def test_save_png_writes_a_png_and_closes_the_figure(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_png(fig, tmp_path / "sub" / "fig.png", dpi=20)
    assert (tmp_path / "sub" / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()


def test_save_png_closes_the_figure_and_keeps_no_partial_file_when_saving_fails(tmp_path):
    plt = pyplot()
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        save_png(fig, tmp_path / "fig.png", dpi=-1)  # matplotlib rejects a negative resolution
    assert fig.number not in plt.get_fignums()
    assert list(tmp_path.iterdir()) == []
