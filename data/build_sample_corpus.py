"""Build the sample corpus: docstrings of the Python standard library on this machine.

    python data/build_sample_corpus.py  # writes appliance/sample/python-stdlib.jsonl

One document per module, public function and public class: the first paragraph of its
docstring, with metadata {"module", "kind", "name"}. Nothing is downloaded.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path

MODULES = """
abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections
colorsys concurrent.futures configparser contextlib copy csv ctypes dataclasses datetime
decimal difflib dis email enum filecmp fileinput fnmatch fractions ftplib functools gc
getopt getpass gettext glob graphlib gzip hashlib heapq hmac html html.parser http
http.client http.server imaplib importlib inspect io ipaddress itertools json keyword
linecache locale logging lzma mailbox math mimetypes multiprocessing netrc numbers
operator os os.path pathlib pickle pkgutil platform plistlib poplib pprint profile pstats
queue quopri random re reprlib sched secrets select selectors shelve shlex shutil signal
smtplib socket socketserver sqlite3 ssl stat statistics string stringprep struct
subprocess symtable sys sysconfig tarfile tempfile textwrap threading time timeit token
tokenize trace traceback tracemalloc types typing unicodedata unittest urllib.parse
urllib.request uuid venv warnings wave weakref webbrowser xml.dom xml.etree.ElementTree
xml.sax zipfile zipimport zlib zoneinfo
""".split()  # noqa: SIM905

MAX_CHARS = 700


def first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n")[0]
    return " ".join(paragraph.split())[:MAX_CHARS]


def documents() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    for module_name in MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
        entries = [(module_name, "module", module)]
        for name, member in sorted(vars(module).items()):
            if name.startswith("_"):
                continue
            if getattr(member, "__module__", None) not in (module_name, module.__name__):
                continue
            if inspect.isclass(member):
                entries.append((f"{module_name}.{name}", "class", member))
            elif inspect.isfunction(member) or inspect.isbuiltin(member):
                entries.append((f"{module_name}.{name}", "function", member))
        for qualified, kind, obj in entries:
            text = first_paragraph(inspect.getdoc(obj))
            if len(text) < 40 or qualified in seen:
                continue
            seen.add(qualified)
            out.append(
                {
                    "id": qualified,
                    "text": f"{qualified}: {text}",
                    "metadata": {
                        "module": module_name.split(".")[0],
                        "kind": kind,
                        "name": qualified,
                        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                    },
                }
            )
    return out


def main() -> None:
    target = Path(__file__).resolve().parents[1] / "appliance" / "sample" / "python-stdlib.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    docs = documents()
    with target.open("w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"wrote {len(docs)} documents to {target}")


if __name__ == "__main__":
    main()
