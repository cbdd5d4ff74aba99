"""Keep the French catalog in step with the code.

    python scripts/i18n.py                 # extract, update fr catalog, list untranslated
    python scripts/i18n.py fr.json         # ... and fill msgstr from {"English msgid": "French"}

Compile with ``make translations`` (tests compile too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "newsletter" / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
POT = ROOT / "messages.pot"


def main(argv: list[str]) -> int:
    pybabel = str(Path(sys.executable).parent / "pybabel")
    subprocess.run(
        [
            pybabel,
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-k",
            "translatable",
            "-o",
            str(POT),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [
            pybabel,
            "-q",
            "update",
            "-i",
            str(POT),
            "-d",
            "newsletter/translations",
            "--no-fuzzy-matching",
            "-w",
            "100",
        ],
        cwd=ROOT,
        check=True,
    )
    POT.unlink()
    given: dict[str, str] = {}
    for path in argv:
        given.update(json.loads(Path(path).read_text(encoding="utf-8")))
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle)
    missing = []
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        if key in given:
            message.string = given[key]
        if not message.string:
            missing.append(key)
        message.flags.discard("fuzzy")
    catalog.obsolete.clear()
    with CATALOG.open("wb") as handle:
        write_po(handle, catalog, width=100)
    for key in missing:
        print("untranslated:", key)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
