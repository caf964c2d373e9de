"""The documentation in docs/: the Sphinx site builds with warnings as errors and runs its
gallery; every pointer to the theory page names one of its sections; no pointer to the
project's outside specification is left.

The build needs the ``docs`` extra (also in the ``test`` extra); without it that test is
skipped.  It builds a copy of docs/ in a temporary folder (the source tree is left
untouched) against the exactbilevel this test session imports.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import exactbilevel

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = ("_build", "generated", "auto_examples", "sg_execution_times.rst")
TEXT = (".py", ".md", ".rst", ".toml", ".cff", ".txt")
SKIP_DIRS = {".git", "__pycache__", ".hypothesis", ".pytest_cache", "build", "dist", "results", *GENERATED}


def _text_files():
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if path.is_file() and path.suffix in TEXT and not SKIP_DIRS.intersection(rel.parts) \
                and not rel.parts[0].endswith(".egg-info"):
            yield rel, path.read_text(encoding="utf-8", errors="replace")


def _theory_titles():
    lines = (DOCS / "theory.rst").read_text().splitlines()
    return [lines[i].replace("**", "").strip() for i in range(len(lines) - 1)
            if lines[i].strip() and re.fullmatch(r"([=\-~^])\1+", lines[i + 1].strip())
            and len(lines[i + 1].strip()) >= len(lines[i].strip())]


def test_pointers_to_the_theory_page_name_its_sections():
    titles = _theory_titles()
    assert "The algorithm" in titles and "Rates and verdicts" in titles
    pointer = re.compile(r'docs/theory\.rst, \\?"([^"\\]+)\\?"')
    found = 0
    for rel, text in _text_files():
        for name in pointer.findall(text):
            found += 1
            assert any(t == name or t.startswith(name + " (choice)") for t in titles), \
                f"{rel}: docs/theory.rst has no section {name!r}"
    assert found >= 50


def test_no_pointer_to_the_outside_specification():
    outside = re.compile(r"\bspec(\s+sections?\b|\s+\d|'s\b)|shared/spec|spec\.md", re.IGNORECASE)
    hits = [f"{rel}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
            for rel, text in _text_files() if rel != Path("tests/test_docs.py") for m in outside.finditer(text)]
    assert not hits, "references to the outside specification:\n" + "\n".join(hits)


def test_docs_build_with_warnings_as_errors(tmp_path):
    for module in ("sphinx", "numpydoc", "pydata_sphinx_theme", "sphinx_gallery"):
        pytest.importorskip(module)
    src, out = tmp_path / "docs", tmp_path / "html"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns(*GENERATED))
    package_root = str(Path(exactbilevel.__file__).resolve().parents[1])  # the package under test
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    for page in ("index", "install", "theory", "api", "performance", "auto_examples/index"):
        assert (out / f"{page}.html").is_file(), page
    theory = (out / "theory.html").read_text()
    for label in ("theory-objects", "theory-lower-level", "theory-hypergradient", "theory-penalty",
                  "theory-algorithm", "theory-defaults", "theory-measured", "theory-experiments", "theory-rates"):
        assert f'id="{label}"' in theory, label
    examples = sorted(p.stem for p in (DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 3
    for name in examples:  # each example ran and drew its figure
        assert (out / "auto_examples" / f"{name}.html").is_file(), name
        assert (src / "auto_examples" / "images" / f"sphx_glr_{name}_001.png").is_file(), name
    assert (out / "generated" / "exactbilevel.hypergradient.html").is_file()
