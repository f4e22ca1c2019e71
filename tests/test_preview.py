"""Contact sheets: argument checks, the file format the name asks for, no half-written output."""
from __future__ import annotations

import pytest
import yaml
from PIL import Image

from noisevision.cli import main
from noisevision.errors import UserError
from noisevision.sheets import preview, render_sheet, sheet_format

pytestmark = pytest.mark.usefixtures("toy_plugin")  # conftest.py: registers test/toy


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and "\n" not in err
    return err


@pytest.mark.parametrize("flag, value, message", [
    ("--rows", "0", "--rows x --cols"),
    ("--cols", "0", "--rows x --cols"),
    ("--size", "0", "too small"),
    ("--rows", "-3", "--rows x --cols"),
])
def test_zero_is_an_error_not_the_default(tmp_path, capsys, flag, value, message):
    out = tmp_path / "s.png"
    assert message in _error(["preview", "test/toy", "--out", str(out), flag, value], capsys)
    assert not out.exists()
    assert message in _error(["preview", "--all", "--pattern", "test/*", "--out", str(tmp_path / "all"), flag, value],
                             capsys)
    assert not (tmp_path / "all").exists()


@pytest.mark.parametrize("name, fmt", [("s.jpg", "JPEG"), ("s.JPEG", "JPEG"), ("s.png", "PNG")])
def test_sheet_is_written_in_the_format_its_suffix_names(tmp_path, name, fmt):
    path = render_sheet("test/toy", tmp_path / name, rows=1, cols=2, size=16)
    with Image.open(path) as im:
        assert im.format == fmt


def test_unknown_suffix_is_refused_before_rendering(tmp_path, capsys):
    err = _error(["preview", "test/toy", "--out", str(tmp_path / "s.gif")], capsys)
    assert "end --out with .png, .jpg, .jpeg" in err
    assert not (tmp_path / "s.gif").exists()
    with pytest.raises(UserError, match="cannot tell which image format"):
        sheet_format(tmp_path / "sheet")


def test_cuda_without_cuda_is_refused(tmp_path, capsys, no_cuda):
    err = _error(["preview", "test/toy", "--out", str(tmp_path / "s.png"), "--device", "cuda"], capsys)
    assert "CUDA is not available" in err
    assert not (tmp_path / "s.png").exists()


def test_all_into_an_existing_file_is_refused(tmp_path, capsys):
    target = tmp_path / "sheets"
    target.write_text("mine")
    assert "existing file" in _error(["preview", "--all", "--pattern", "test/*", "--out", str(target)], capsys)
    assert target.read_text() == "mine"


def test_preview_is_a_verb_over_a_config_like_the_others(tmp_path, capsys):
    """The API call, a YAML config with flags on top, and the one-line errors of an impossible config."""
    assert preview(generator="test/toy", out=tmp_path / "api.png", rows=1, cols=2, size=16) == [tmp_path / "api.png"]
    config = tmp_path / "sheet.yaml"
    config.write_text(yaml.safe_dump({"generator": "test/toy", "rows": 1, "size": 16, "params": {"noise": 5}}))
    assert main(["preview", "--config", str(config), "--out", str(tmp_path / "cli.png")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'cli.png'}"
    with Image.open(tmp_path / "cli.png") as im:
        assert im.width > 8 * 16
    assert "not both" in _error(["preview", "test/toy", "--all", "--out", str(tmp_path / "d")], capsys)
    assert "on its own" in _error(["preview", "--all", "-p", "noise=5", "--out", str(tmp_path / "d")], capsys)
    assert "name a generator" in _error(["preview", "--out", str(tmp_path / "d.png")], capsys)
    assert not (tmp_path / "d").exists()
