"""Top functions of a profile taken by ``bench/load.py``:

- ``--profile`` (py-spy ``record --format raw``: one collapsed stack a line,
  then the sample count; wall time): by own time and by time spent inside
  them, as % of the samples;
- ``--cpu-profile`` (``perf script`` text: one sample a paragraph, innermost
  frame first; CPU time): each sample charged to its innermost Python
  function (whatever it called that has no Python frame of its own -- the
  kernel's part of a socket write, a C extension -- is charged to it), by
  that function's file (``aiohttp/web_protocol.py``, ``router/pipeline.py``)
  and by the binary the sample was in (the interpreter, the kernel, pydantic's
  core, the driver...). perf cannot unwind through the interpreter, so there
  is no inclusive table for these.

    python bench/profile_report.py profile.txt [--top 25] [--filter router]
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

#: a Python function's frame in perf's output (Python 3.12+, PYTHONPERFSUPPORT)
_PY_FRAME = re.compile(r"py::(?P<name>[^:]+):(?P<file>[^ ]*?)\+0x[0-9a-f]+ ")
#: a frame's binary: "... (/path/to/libpython3.12.so.1.0)"
_BINARY = re.compile(r"\(([^()]*)\)\s*$")


def _short(path: str) -> str:
    """A file or binary's name without its folders (and site-packages)."""
    return path.rsplit("/", 1)[-1] or path


def _collapsed(text: str) -> tuple[int, list[tuple[str, collections.Counter[str]]]]:
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        # the frames' own text: "function (file:line)" -> "function (file)"
        names = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") and ":" in f else f for f in frames]
        own[names[-1]] += n
        for name in set(names):
            inside[name] += n
    return total, [("own time", own), ("inside (inclusive)", inside)]


#: where a module's path starts: a package's folder, the standard library's, the project's
_MODULE = re.compile(
    r"(?:site-packages/|/python3\.\d+/|/(?=(?:router|adapters|bench)/))(?P<module>.+)$"
)


def _module(path: str) -> str:
    """A Python file's path from its package (``aiohttp/web_protocol.py``,
    ``router/outbound/client.py``, ``asyncio/runners.py``)."""
    m = _MODULE.search(path)
    return m["module"].removeprefix("site-packages/") if m else _short(path)


def _perf(text: str) -> tuple[int, list[tuple[str, collections.Counter[str]]]]:
    by_function: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    by_binary: collections.Counter[str] = collections.Counter()
    total = 0
    for sample in text.split("\n\n"):
        frames = [f.strip() for f in sample.strip().splitlines()[1:] if f.strip()]
        if not frames:
            continue
        total += 1
        # the innermost frame with a binary of its own (inlined code is in its caller's)
        leaf = next(
            (m for f in frames if not f.endswith("(inlined)") and (m := _BINARY.search(f))), None
        )
        by_binary[_short(leaf.group(1)) if leaf else "?"] += 1
        for frame in frames:
            m = _PY_FRAME.search(frame + " ")
            if m:
                by_function[f"{m['name']} ({_short(m['file'])})"] += 1
                by_file[_module(m["file"])] += 1
                break
        else:
            outside = "(no Python frame: " + (_short(leaf.group(1)) if leaf else "?") + ")"
            by_function[outside] += 1
            by_file[outside] += 1
    return total, [
        ("CPU by innermost Python function", by_function),
        ("CPU by the innermost Python function's file", by_file),
        ("CPU by binary", by_binary),
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--filter", default="", help="only frames whose text holds this")
    args = p.parse_args()
    text = args.file.read_text(errors="replace")
    total, tables = _perf(text) if "cpu-clock" in text[:4000] else _collapsed(text)
    print(f"{total} samples")
    for title, table in tables:
        print(f"\n-- {title} --")
        shown = 0
        for name, n in table.most_common():
            if args.filter and args.filter not in name:
                continue
            print(f"{100 * n / total:6.1f}%  {name}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
