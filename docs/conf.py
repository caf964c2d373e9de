"""Sphinx configuration of the exactbilevel documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here needs the network: no intersphinx, no remote images.
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "exactbilevel" / "__init__.py").is_file():  # a checkout: document its sources, not an installed copy
    sys.path.insert(0, str(_ROOT))

import exactbilevel  # noqa: E402

project = "exactbilevel"
author = "The exactbilevel developers"
copyright = "The exactbilevel developers (MIT licence)"
release = version = exactbilevel.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
root_doc = "index"
pygments_style = "sphinx"

# -- API reference ------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the docstrings state types; signatures stay readable
autodoc_member_order = "bysource"
# The docstrings follow the package's own plain style (formulas in literal blocks, shapes in
# prose), not every numpydoc section: render them, validate nothing, list members through
# the autosummary templates (``_templates/autosummary``) rather than numpydoc's tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False

# -- Gallery ------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,  # an example that raises fails the build
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "show_memory": False,
}

# -- HTML ---------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"exactbilevel {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"install": [], "performance": []}
html_static_path = []
html_show_sourcelink = False
os.environ.setdefault("MPLBACKEND", "Agg")
