"""Build steps pyproject.toml cannot say: French catalogs and top-level data inside the package.

The developers' guide keeps ``templates/emails/`` and ``migrations/`` at the top of the tree; an
installed package must still carry them, and the compiled ``*.mo`` catalogs (gitignored), or an
install serves English and cannot send mail nor create its schema (issue 16). So:

- ``build_py`` compiles every ``messages.po`` into ``messages.mo`` beside it in the build tree
  (in the checkout itself for an editable install) and copies the two top-level folders into
  ``newsletter/_data/`` in the build tree; ``newsletter.config`` looks there first.
- ``sdist`` puts the compiled catalogs into the archive too, so an sdist built elsewhere without
  Babel still installs in French.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
TRANSLATIONS = Path("newsletter") / "translations"
# Top-level folders shipped inside the package (source in the checkout -> package path).
SHIPPED_DATA = {
    Path("templates") / "emails": Path("newsletter") / "_data" / "templates" / "emails",
    Path("migrations"): Path("newsletter") / "_data" / "migrations",
}


def compile_catalogs(translations_dir: Path) -> list[Path]:
    """Compile each ``*.po`` under ``translations_dir`` into the ``*.mo`` beside it."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(translations_dir.glob("*/LC_MESSAGES/*.po")):
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        mo_path = po_path.with_suffix(".mo")
        # sdist may hard-link the checkout's files into its tree: never write through a link.
        mo_path.unlink(missing_ok=True)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        written.append(mo_path)
    return written


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(
        source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


class BuildPyWithData(build_py):
    """build_py, plus compiled catalogs and the top-level email templates and migrations."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # An editable install reads the checkout: compile there, config falls back to it.
            compile_catalogs(HERE / TRANSLATIONS)
            return
        build_lib = Path(self.build_lib)
        compile_catalogs(build_lib / TRANSLATIONS)
        for source, target in SHIPPED_DATA.items():
            _copy_tree(HERE / source, build_lib / target)


class SdistWithCatalogs(sdist):
    """sdist, with the compiled catalogs in the archive."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        compile_catalogs(Path(base_dir) / TRANSLATIONS)


setup(cmdclass={"build_py": BuildPyWithData, "sdist": SdistWithCatalogs})
