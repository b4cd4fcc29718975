"""The argparse types of scratchvae.cli.types: what each accepts, and the one-line reason it refuses the rest."""

from __future__ import annotations

import argparse
import re

import pytest

from scratchvae.cli import types as t


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (
            t.positive_int,
            {"1": 1, "40": 40},
            {
                "0": "must be a positive integer, got 0",
                "-5": "positive integer",
                "2.5": "'2.5' is not a whole number",
                "x": "not a whole number",
            },
        ),
        (t.non_negative_int, {"0": 0, "7": 7}, {"-1": "must be a whole number >= 0, got -1"}),
        (t.int_at_least(2), {"2": 2}, {"1": "must be a whole number >= 2, got 1"}),
        (
            t.positive_float,
            {"1e-3": 1e-3, "5": 5.0},
            {
                "0": "must be a positive number, got 0",
                "-1": "positive number",
                "nan": "must be a finite number, got nan",
                "inf": "finite",
            },
        ),
        (t.non_negative_float, {"0": 0.0, "0.5": 0.5}, {"-0.1": "must be a number >= 0, got -0.1", "nan": "finite"}),
        (t.fraction, {"0": 0.0, "0.99": 0.99}, {"1": "must be in [0, 1), got 1", "-0.5": "[0, 1)"}),
        (t.share, {"1": 1.0, "0.5": 0.5}, {"0": "must be in (0, 1], got 0", "2": "(0, 1]"}),
        (t.decay_factor, {"1": 1.0}, {"1.5": "must be in (0, 1], got 1.5 (1 keeps the rate constant)"}),
    ],
)
def test_number_types(kind, good, bad):
    for text, value in good.items():
        assert kind(text) == value
    for text, message in bad.items():
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            kind(text)


def test_an_image_path_is_checked_without_making_anything(tmp_path):
    deep = tmp_path / "a" / "b" / "curves.svg"
    assert t.image_file(str(deep)) == str(deep) and not (tmp_path / "a").exists()  # made when written
    (tmp_path / "f").write_text("x")
    for path, message in (
        (tmp_path / "f" / "c.png", "is a file, not a folder"),
        (tmp_path / "c.xyz", "is not an image file name"),
        (tmp_path, "is a folder; name a file"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            t.image_file(str(path))


def test_an_output_folder_is_a_folder_or_can_be_made(tmp_path):
    assert t.output_folder(str(tmp_path / "new" / "figures")) == str(tmp_path / "new" / "figures")
    assert not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("x")
    for path in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a folder"):
            t.output_folder(str(path))
