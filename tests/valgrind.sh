#!/usr/bin/env bash
# valgrind memcheck of the C extension: the codec loops of tests/codec/test_leaks.py
# (decode, encode, mask, UTF-8, error paths included) in a short run. Fails on
# any memory error or definite leak in wsframe's code (see below for
# CPython's own noise); Python's allocations that live until exit are
# "possibly lost"/"still reachable" and are not errors. Run from the project root after
# `python setup.py build_ext --inplace`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
PY=$("${PYTHON:-python3}" -c "import sys; print(sys.executable)")  # not a shim script
"$PY" -c "import wsframe._codec_c" || { echo "the C extension is not built"; exit 1; }
log=${VALGRIND_LOG:-$(mktemp)}
[ -n "${VALGRIND_LOG:-}" ] || trap 'rm -f "$log"' EXIT
export PYTHONUNBUFFERED=1
status=0
PYTHONMALLOC=malloc PYTHONPATH=".:tests:tests/codec" valgrind --tool=memcheck --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --num-callers=30 --log-file="$log" \
    "$PY" - <<'PYEOF' || status=$?
import conftest
import test_leaks

codec = conftest.require_c()
for name, (func, count) in test_leaks.cases(codec).items():
    for _ in range(max(count // 200, 200)):
        func()
    print("ok", name)
PYEOF

# CPython itself reports a few dozen "uninitialised value" contexts at startup
# (int.from_bytes during imports, the GC): noise. What counts is any error
# or definite leak whose stack passes through wsframe's code.
grep -E "ERROR SUMMARY|definitely lost:|indirectly lost:" "$log" || true
"$PY" - "$log" <<'PYEOF' || status=1
import re
import sys

text = open(sys.argv[1]).read()
pid = re.search(r"^==(\d+)==", text, re.M).group(1)
blocks = text.split(f"=={pid}== \n")
ours = [b for b in blocks if re.search(r"_codec_c|csrc/|mask\.c|utf8\.c", b)]
print(f"valgrind: {len(blocks)} log blocks, {len(ours)} involving wsframe's code")
for block in ours:
    print(block)
sys.exit(1 if ours else 0)
PYEOF
exit $status
