#!/usr/bin/env bash
# Fails when a file listed in tools/formatted_files.txt is not formatted as .clang-format
# says (110 columns, Google style with 4-space indentation). Not every file is listed yet:
# a file joins the list once it has been formatted, so the check only ever grows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang-format >/dev/null || { echo "check_format.sh: clang-format not found (bash tools/setup.sh)" >&2; exit 1; }
mapfile -t files < <(grep -v '^#' tools/formatted_files.txt | grep -v '^$')
clang-format --dry-run --Werror "${files[@]}"
echo "check_format.sh: ${#files[@]} files formatted as .clang-format says"
