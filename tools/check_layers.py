#!/usr/bin/env python3
"""Checks that no header of include/sams/ includes one from a layer above it.

Each folder may include itself and the folders listed for it below; anything else is an
arrow running back up (or sideways) and fails the check. A folder not listed here is a top
layer: it may include any listed folder, and no listed folder may include it.
Usage: python3 tools/check_layers.py [include-root]   (default: include/ of this repository)
"""
import pathlib
import re
import sys

ALLOWED = {
    "core": set(),
    "loss": {"core"},
    "backend": {"core"},
    "context": {"core", "backend"},  # mean_pool projects with backend/eigen/gemm.hpp
    "reward": {"core", "loss"},
    "nn": {"core", "backend"},
    "scheduler": {"core", "loss", "backend", "nn", "reward"},
    "adapters": {"core", "backend", "context"},
    "guided": {"core", "loss", "backend", "nn", "reward", "scheduler"},
    "distributed": {"core", "loss", "backend", "nn", "reward", "scheduler", "guided"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*<sams/([^>]+)>', re.M)


def folder(rel: str) -> str:
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else ""  # "" = the umbrella headers at include/sams/


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1] / "include")
    sams = root / "sams"
    bad = []
    for path in sorted(sams.rglob("*")):
        if path.suffix not in {".hpp", ".cuh", ".h"}:
            continue
        src = folder(path.relative_to(sams).as_posix())
        if src == "":
            continue  # sams.hpp and version.hpp may include everything
        for target in INCLUDE.findall(path.read_text(encoding="utf-8")):
            dst = folder(target)
            if dst in ("", src):
                if dst == "" and target != "version.hpp":
                    bad.append(f"{path.relative_to(root)} includes the umbrella header <sams/{target}>")
                continue
            if src in ALLOWED:
                if dst not in ALLOWED[src]:
                    bad.append(f"{path.relative_to(root)} ({src}/) includes <sams/{target}> ({dst}/)")
            elif dst not in ALLOWED:
                bad.append(f"{path.relative_to(root)} ({src}/) includes <sams/{target}> from another unlisted folder")
    for line in bad:
        print("layering:", line)
    if bad:
        print(f"layering: {len(bad)} include(s) run against the layers of tools/check_layers.py")
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
