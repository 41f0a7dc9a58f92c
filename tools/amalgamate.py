#!/usr/bin/env python3
"""Builds single_include/sams/sams.hpp from the umbrella include/sams/sams.hpp.

Every `#include <sams/...>` is replaced by the file's text the first time it is seen
(depth-first, in include order) and dropped afterwards; `#pragma once` of inlined files is
removed, system includes stay as they are. Each inlined file is framed by
`// ---- begin sams/<path> ----` / `// ---- end sams/<path> ----` lines, which the CMake
single-header build reads to know what the file contains.

    python3 tools/amalgamate.py            regenerate the file
    python3 tools/amalgamate.py --ref HEAD read the headers as committed at HEAD instead of
                                           the working tree (others' uncommitted edits stay out)
    python3 tools/amalgamate.py --check    exit 1 if the committed file is stale
    ... --strict                           also exit 1 (else: warn) when a public header is
                                           neither reachable from the umbrella nor excluded
                                           from it (UMBRELLA_EXCLUDE, or an opt-out line)

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UMBRELLA = "sams/sams.hpp"
OUTPUT = Path("single_include/sams/sams.hpp")

# Headers that must stay out of the umbrella (they need nvcc, thrust, xtensor or LibTorch).
# A header can also opt out with a line "// sams-umbrella: exclude (<reason>)".
UMBRELLA_EXCLUDE = [
    r"^sams/backend/cuda/",
    r"^sams/backend/thrust/",
    r"^sams/adapters/",
    r"torch",
]
OPT_OUT = re.compile(r"^\s*//\s*sams-umbrella:\s*exclude\b")

SAMS_INCLUDE = re.compile(r"^\s*#\s*include\s*<(sams/[^>]+)>")
QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\b")
IF_OPEN = re.compile(r"^\s*#\s*if(n?def)?\b")
IF_CLOSE = re.compile(r"^\s*#\s*endif\b")


class AmalgamationError(Exception):
    pass


class Sources:
    """The headers under include/: from the working tree, or as committed at a git revision."""

    def __init__(self, root: Path, ref: str | None) -> None:
        self.root = root
        self.ref = ref
        self.git_files: set[str] = set()
        if ref is not None:
            listing = self._git("ls-tree", "-r", "--name-only", ref, "--", "include/sams")
            self.git_files = {line[len("include/"):] for line in listing.splitlines() if line.endswith(".hpp")}

    def _git(self, *args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(self.root), *args], check=True, capture_output=True,
                                  text=True, encoding="utf-8").stdout
        except (OSError, subprocess.CalledProcessError) as e:
            detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
            raise AmalgamationError(f"git {' '.join(args)}: {detail}") from e

    def exists(self, header: str) -> bool:
        if self.ref is not None:
            return header in self.git_files
        return (self.root / "include" / header).is_file()

    def read(self, header: str) -> str:
        if self.ref is not None:
            return self._git("show", f"{self.ref}:include/{header}")
        return (self.root / "include" / header).read_text(encoding="utf-8")

    def headers(self) -> list[str]:
        if self.ref is not None:
            return sorted(self.git_files)
        include_dir = self.root / "include"
        return sorted(p.relative_to(include_dir).as_posix() for p in include_dir.glob("sams/**/*.hpp"))


def read_version(sources: Sources) -> str:
    text = sources.read("sams/version.hpp")
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define\s+SAMS_VERSION_{name}\s+(\d+)", text)
        if not m:
            raise AmalgamationError(f"include/sams/version.hpp: SAMS_VERSION_{name} not found")
        parts.append(m.group(1))
    return ".".join(parts)


class Amalgamator:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.seen: set[str] = set()
        self.out: list[str] = []

    def inline(self, header: str, stack: list[str]) -> None:
        if not self.sources.exists(header):
            where = f" (included from {stack[-1]})" if stack else ""
            raise AmalgamationError(f"{header}: no such header under include/{where}")
        self.seen.add(header)
        is_root = not stack
        if not is_root:
            self.out.append(f"// ---- begin {header} ----\n")
        depth = 0  # preprocessor-conditional nesting: a sams include inside #if cannot be inlined once
        lines = self.sources.read(header).splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            if PRAGMA_ONCE.match(line):
                continue
            if IF_OPEN.match(line):
                depth += 1
            elif IF_CLOSE.match(line):
                depth -= 1
            quoted = QUOTED_INCLUDE.match(line)
            if quoted:
                raise AmalgamationError(
                    f"include/{header}:{number}: quoted include \"{quoted.group(1)}\"; "
                    "library headers include each other as <sams/...>"
                )
            m = SAMS_INCLUDE.match(line)
            if not m:
                self.out.append(line if line.endswith("\n") else line + "\n")
                continue
            target = m.group(1)
            if depth > 0:
                raise AmalgamationError(
                    f"include/{header}:{number}: <{target}> is included inside a preprocessor "
                    "conditional, which the single header cannot reproduce"
                )
            if target in self.seen:
                continue
            self.inline(target, stack + [header])
        if not is_root:
            self.out.append(f"// ---- end {header} ----\n")


def amalgamate(sources: Sources) -> tuple[str, set[str]]:
    version = read_version(sources)
    amalgamator = Amalgamator(sources)
    amalgamator.inline(UMBRELLA, [])
    head = (
        f"// sams {version}, single-header edition: SamS adaptive batch-wise sample scheduling for DPO.\n"
        "// Generated by tools/amalgamate.py from include/sams/sams.hpp: do not edit. Change the headers\n"
        "// under include/sams/ and run `python3 tools/amalgamate.py`.\n"
        "// SPDX-License-Identifier: MIT\n"
        "#pragma once\n"
        "\n"
    )
    return head + "".join(amalgamator.out), amalgamator.seen


def umbrella_gaps(sources: Sources, reached: set[str]) -> list[str]:
    """Public headers that the umbrella neither reaches nor deliberately leaves out."""
    gaps = []
    for header in sources.headers():
        if header in reached or any(re.search(p, header) for p in UMBRELLA_EXCLUDE):
            continue
        if any(OPT_OUT.match(line) for line in sources.read(header).splitlines()):
            continue
        gaps.append(header)
    return gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when the committed single header is stale")
    parser.add_argument("--strict", action="store_true",
                        help="fail when a public header is missing from the umbrella")
    parser.add_argument("--ref", metavar="REV",
                        help="read include/ as committed at this git revision (e.g. HEAD)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: %(default)s)")
    args = parser.parse_args()

    root = args.root.resolve()
    try:
        sources = Sources(root, args.ref)
        text, reached = amalgamate(sources)
        gaps = umbrella_gaps(sources, reached)
    except AmalgamationError as e:
        print(f"amalgamate.py: error: {e}", file=sys.stderr)
        return 2

    gap_message = (
        "headers not reachable from include/sams/sams.hpp (add them to the umbrella, or mark them "
        "'// sams-umbrella: exclude (<reason>)'):\n  " + "\n  ".join(gaps)
    )
    output = root / OUTPUT

    if args.check:
        status = 0
        current = output.read_text(encoding="utf-8") if output.is_file() else ""
        if current != text:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(),
                                             f"{OUTPUT} (committed)", f"{OUTPUT} (regenerated)", lineterm=""))
            shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
            print(f"amalgamate.py: {OUTPUT} is stale; run `python3 tools/amalgamate.py` and commit it.\n{shown}",
                  file=sys.stderr)
            status = 1
        if gaps:
            print(f"amalgamate.py: {'error' if args.strict else 'warning'}: {gap_message}", file=sys.stderr)
            status = 1 if args.strict else status
        if status == 0:
            print(f"amalgamate.py: {OUTPUT} is up to date ({len(reached) - 1} headers)")
        return status

    output.parent.mkdir(parents=True, exist_ok=True)
    if not output.is_file() or output.read_text(encoding="utf-8") != text:
        output.write_text(text, encoding="utf-8")
        print(f"amalgamate.py: wrote {OUTPUT} ({len(reached) - 1} headers)")
    else:
        print(f"amalgamate.py: {OUTPUT} already up to date")
    if gaps:
        print(f"amalgamate.py: {'error' if args.strict else 'warning'}: {gap_message}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
