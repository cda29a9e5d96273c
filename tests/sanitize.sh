#!/usr/bin/env bash
# Builds the C extension with AddressSanitizer + UBSan in a scratch copy of the
# tree and runs the codec tests against it (both codecs, as always).
# Usage: bash tests/sanitize.sh [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$work"/
cd "$work"
WSFRAME_SANITIZE=1 WSFRAME_REQUIRE_EXTENSIONS=1 python setup.py -q build_ext --inplace >build.log 2>&1 \
  || { cat build.log; exit 1; }
asan=$(${CC:-gcc} -print-file-name=libasan.so)
# The sanitized build in this scratch tree must be the one imported.
env LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0 python -c "
import sys, wsframe._codec_c as m
print('sanitized extension:', m.__file__)
sys.exit(not m.__file__.startswith('$work'))"
# PYTHONMALLOC=malloc: every object goes through malloc, so ASan sees overflows
# of payload bytes objects too. Leaks of the interpreter itself are not ours.
env LD_PRELOAD="$asan" PYTHONMALLOC=malloc \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    python -m pytest -q -p no:cacheprovider -x "$@" tests
