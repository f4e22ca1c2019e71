"""File writing and reading, and figure saving: a file appears under its final name only when complete."""
from __future__ import annotations

import pytest

from noisevision.errors import UserError
from noisevision.fileio import atomic_path, atomic_write_text, read_json_lines, read_json_object
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


def test_json_lines_skip_a_line_cut_short_and_a_damaged_object_is_named(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n[2]\n{"step": 3}\n{"step": 4, "lo')  # a kill mid-append leaves the last
    assert read_json_lines(metrics) == [{"step": 1}, {"step": 3}]
    assert read_json_lines(tmp_path / "missing.jsonl") == []
    (tmp_path / "r.json").write_text('{"metrics": {}}')
    assert read_json_object(tmp_path / "r.json", required=("metrics",)) == {"metrics": {}}
    with pytest.raises(UserError, match=r"r.json is damaged \(no 'summary'\); delete it to compute it again"):
        read_json_object(tmp_path / "r.json", required=("summary",))
