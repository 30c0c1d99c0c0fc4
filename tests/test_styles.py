"""styles.csv: reading A1111's file, applying styles with and without {prompt}, saving and deleting."""

from __future__ import annotations

import pytest

from modules.errors import UserError
from modules.styles import PromptStyle, StyleDatabase, merge

A1111_FILE = (
    "name,prompt,negative_prompt\n"
    '"Cinematic","cinematic still of {prompt}, film grain","cartoon, drawing"\n'
    'Sharp,"highly detailed, sharp focus",\n'
    ',"no name: skipped",\n'
)


def test_merge_places_the_prompt_or_appends():
    assert merge("photo of {prompt}, 35mm", "a cat") == "photo of a cat, 35mm"
    assert merge("sharp focus", "a cat") == "a cat, sharp focus"
    assert merge("sharp focus", "") == "sharp focus"
    assert merge("", "a cat") == "a cat"


def test_reads_a1111s_file_and_applies_styles_in_order(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text(A1111_FILE, encoding="utf-8")
    db = StyleDatabase(path)
    assert db.names() == ["Cinematic", "Sharp"]
    assert (
        db.apply_to_prompt("a cat", ["Cinematic", "Sharp"])
        == "cinematic still of a cat, film grain, highly detailed, sharp focus"
    )
    assert db.apply_to_negative_prompt("blurry", ["Cinematic", "Sharp"]) == "blurry, cartoon, drawing"
    with pytest.raises(UserError, match="No style named 'Missing'"):
        db.apply_to_prompt("a cat", ["Missing"])


def test_save_replace_and_delete_write_the_file(tmp_path):
    path = tmp_path / "styles.csv"
    db = StyleDatabase(path)
    assert db.names() == [] and db.notice is None
    db.save_style(PromptStyle("Moody", 'dark, "quoted", {prompt}', "bright"))
    db.save_style(PromptStyle("Moody", "dark {prompt}", "bright"))
    db.save_style(PromptStyle("Plain", "plain"))
    again = StyleDatabase(path)
    assert again.names() == ["Moody", "Plain"] and again.styles["Moody"].prompt == "dark {prompt}"
    again.delete_style("Moody")
    assert StyleDatabase(path).names() == ["Plain"]
    assert not list(tmp_path.glob(".styles.csv.*"))  # no temporary files left behind
    with pytest.raises(UserError, match="needs a name"):
        again.save_style(PromptStyle("  "))
    with pytest.raises(UserError, match="No style named"):
        again.delete_style("Moody")


def test_an_unreadable_file_is_reported_and_empty(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(b"name,prompt\n\xff\xfe\xfa broken")
    db = StyleDatabase(path)
    assert db.names() == [] and "Could not read styles.csv" in db.notice
