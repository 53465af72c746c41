"""Top functions of a py-spy profile (``py-spy record --format raw``: one
collapsed stack a line, then the sample count): by own time and by time
spent inside them, as % of the samples.

    python bench/profile_report.py profile.txt [--top 25] [--filter router]
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--filter", default="", help="only frames whose text holds this")
    args = p.parse_args()
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in args.file.read_text().splitlines():
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
    print(f"{total} samples")
    for title, table in (("own time", own), ("inside (inclusive)", inside)):
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
