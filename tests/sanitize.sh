#!/usr/bin/env bash
# Builds the C extension with AddressSanitizer + UBSan in a scratch copy of the
# tree and runs the tests that drive the extension (codec, connection,
# in-memory interop) against it. Browser and subprocess tests are left out:
# LD_PRELOAD=libasan would be inherited by Chromium and other programs.
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
    python -m pytest -q -p no:cacheprovider -x "$@" \
      tests/codec/test_mask.py tests/codec/test_encode.py tests/codec/test_decode.py tests/codec/test_utf8.py \
      tests/codec/test_buffers.py tests/codec/test_frame.py tests/codec/test_differential.py \
      tests/codec/test_selection.py tests/sansio/test_connection.py tests/sansio/test_deflate.py \
      tests/interop/test_interop_sansio.py
