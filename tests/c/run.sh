#!/bin/sh
# Builds and runs the C kernel tests (tests/c/test_kernels.c) with every
# compiler found (gcc, clang, and $CC if set), first optimised with warnings as
# errors, then with AddressSanitizer + UndefinedBehaviorSanitizer. If an
# aarch64 cross compiler and qemu-aarch64 are installed, the NEON build is
# cross-compiled and run too. Exits non-zero on any failure.
#
#   sh tests/c/run.sh
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=$(mktemp -d "${TMPDIR:-/tmp}/wsf-ctest.XXXXXX")
trap 'rm -rf "$out"' EXIT

srcs="tests/c/test_kernels.c csrc/mask.c csrc/utf8.c"
warn="-std=c99 -Wall -Wextra -Werror -pedantic -Icsrc"
san="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
status=0
ran=0

compilers=""
for c in ${CC:-} gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then
        case " $compilers " in *" $c "*) ;; *) compilers="$compilers $c" ;; esac
    fi
done

run() { # name command...
    echo "== $1"
    shift
    if "$@"; then ran=$((ran + 1)); else echo "!! $1 FAILED"; status=1; fi
}

for c in $compilers; do
    exe="$out/test-$(basename "$c")"
    if $c $warn -O2 $srcs -o "$exe"; then
        run "$c -O2" "$exe"
    else
        echo "!! $c -O2: build failed"; status=1
    fi
    # The sanitizer runtimes may be missing for some compiler; that is a
    # skip, not a failure, unless the compiler is gcc.
    if echo 'int main(void){return 0;}' > "$out/probe.c" &&
       $c $san "$out/probe.c" -o "$out/probe" 2>/dev/null && "$out/probe"; then
        if $c $warn $san $srcs -o "$exe-san"; then
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                run "$c sanitizers" "$exe-san"
        else
            echo "!! $c sanitizers: build failed"; status=1
        fi
    elif [ "$c" = gcc ]; then
        echo "!! gcc: sanitizer runtime unavailable"; status=1
    else
        echo "-- $c: sanitizer runtime unavailable, skipped"
    fi
done

# Optional: NEON path on aarch64 under qemu.
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
   command -v qemu-aarch64 >/dev/null 2>&1; then
    if aarch64-linux-gnu-gcc $warn -O2 -static $srcs -o "$out/test-aarch64"; then
        run "aarch64-linux-gnu-gcc -O2 (qemu)" qemu-aarch64 "$out/test-aarch64"
    else
        echo "!! aarch64 build failed"; status=1
    fi
fi

if [ "$ran" -eq 0 ]; then
    echo "!! no test binary ran"; status=1
fi
if [ "$status" -eq 0 ]; then echo "ALL C KERNEL TEST RUNS PASSED ($ran runs)"; else echo "SOME C KERNEL TEST RUNS FAILED"; fi
exit "$status"
