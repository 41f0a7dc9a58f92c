#!/usr/bin/env python3
"""Checks that every code block of a Markdown page that follows a marker line
    <!-- snippet: path/relative/to/the/repository -->
appears in that file line for line (leading indentation ignored), so the page cannot quote
code that the build no longer compiles. Usage: check_snippets.py docs/integration.md"""
import pathlib
import re
import sys


def main(doc_path: str) -> int:
    doc = pathlib.Path(doc_path).resolve()
    root = doc.parent.parent
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(r"<!-- snippet: (\S+) -->\s*\n```[a-z+]*\n(.*?)\n```", re.S)
    failures, checked = [], 0
    for match in pattern.finditer(text):
        source = root / match.group(1)
        if not source.is_file():
            failures.append(f"{match.group(1)}: no such file")
            continue
        wanted = [line.strip() for line in match.group(2).splitlines()]
        have = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
        n = len(wanted)
        if not any(have[i:i + n] == wanted for i in range(len(have) - n + 1)):
            failures.append(f"{match.group(1)}: the block starting '{wanted[0]}' is not in the file")
        checked += 1
    if checked == 0:
        failures.append("no <!-- snippet: ... --> blocks found")
    for f in failures:
        print(f"{doc.name}: {f}", file=sys.stderr)
    print(f"{checked} snippet(s) checked, {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
