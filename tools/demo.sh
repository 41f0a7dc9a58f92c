#!/usr/bin/env bash
# The README's first command: install what is missing, build the demo in Release and run it.
# Arguments are passed on to the demo program.
set -euo pipefail

# The demo program (a CMake target); switch it here when a better demo lands.
DEMO_TARGET=example_noisy_preferences

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target "$DEMO_TARGET" -j2
demo=$(find build/release -type f -name "$DEMO_TARGET" -perm -u+x -print -quit)
if [[ -z "$demo" ]]; then
    echo "demo.sh: built $DEMO_TARGET but found no executable of that name under build/release" >&2
    exit 1
fi
echo "demo.sh: running $demo"
"$demo" "$@"
