"""The README stands on its own: it cites no document outside the repository, and its
recipes need only what a fresh clone has (Python, make, curl)."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_cites_no_design_document():
    assert re.findall(r".{0,40}DESIGN.{0,40}", README) == []


def test_the_readme_recipes_need_no_jq():
    assert re.findall(r".{0,40}\| *jq\b.{0,40}", README) == []
