"""Sphinx configuration of the sb3-tutorial-sac documentation (organised as Stable-Baselines3's).

Build (warnings are errors, nothing is fetched from the network):
    python -m sphinx -W -b html docs docs/_build/html
"""

import pathlib
import sys
from typing import Any

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
# The package from this checkout, also when it is not installed
sys.path.insert(0, str(ROOT))

import sb3_tutorial_sac  # noqa: E402

project = "sb3-tutorial-sac"
author = "sb3-tutorial-sac contributors"
copyright = "sb3-tutorial-sac contributors"
version = release = sb3_tutorial_sac.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "myst_parser",
    "sphinx_rtd_theme",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown pages: anchors for headings (links such as guide/zoo.md#tuning), ::: fences, $ maths
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "dollarmath"]

# Parameters from the docstrings (SB3's reST style); the class signature as SB3's pages show it
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autoclass_content = "class"
autosummary_generate = False

# SB3's look
html_theme = "sphinx_rtd_theme"
html_title = f"sb3-tutorial-sac {release}"
html_show_sourcelink = False
# No intersphinx: nothing at build time needs the network

# Pages written on other branches, listed in the guides' toctree once they are in the tree (a toctree entry
# without its file, or a file without an entry, would fail the -W build)
OPTIONAL_GUIDES = ["files_and_safety"]


def _optional_guides(app: object, docname: str, source: list[str]) -> None:
    if docname == "index":
        present = "\n".join(name for name in OPTIONAL_GUIDES if (DOCS / f"{name}.md").is_file())
        source[0] = source[0].replace("<!-- optional-guides -->", present)


def setup(app: Any) -> None:
    app.connect("source-read", _optional_guides)
