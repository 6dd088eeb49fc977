#!/bin/sh
# build.sh: real libFuzzer binaries for long fuzzing runs.
#
#   t/fuzz/build.sh                 build build/libfuzzer/fuzz_* (clang, ASan, UBSan)
#   t/fuzz/build.sh run [SECONDS]   build, then fuzz each target for SECONDS (60)
#
# `make check` does not need this: it links each target with standalone.c and
# replays the corpus with plain cc. New inputs a run finds go to
# build/libfuzzer/corpus/<name>; crashes to build/libfuzzer/crash-*. Keep a
# crash as a named seed in t/fuzz/corpus/<name>/ once it is fixed.
set -eu

cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
OUT=build/libfuzzer

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "build.sh: $CLANG is not installed; libFuzzer needs clang (Debian: apt-get install clang)." >&2
    echo "build.sh: the corpus replay in 'make check' works without it." >&2
    exit 1
fi
# clang without its compiler-rt fuzzer runtime fails at link time with an
# obscure message; say what is missing instead
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer -o "$probe/p" "$probe/p.c" >/dev/null 2>&1; then
    echo "build.sh: $CLANG cannot link -fsanitize=fuzzer: the libFuzzer runtime" \
         "(libclang_rt.fuzzer, Debian: libclang-rt-dev or clang's compiler-rt) is missing." >&2
    exit 1
fi

APR_CFLAGS=$(apr-1-config --cflags --cppflags --includes)
APR_LIBS="$(apr-1-config --link-ld --libs) $(apu-1-config --link-ld)"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -Wno-missing-field-initializers"
# the PURE sources, as apxs.mk lists them (make expands the variables)
# shellcheck disable=SC2016
PURE=$(printf 'include apxs.mk\nprint-pure:\n\t@echo $(CG_PURE) $(CS_PURE)\n' | make -s -f - print-pure)

mkdir -p "$OUT"
# the generated OTLP messages (protoc-c) are among the PURE sources
# shellcheck disable=SC2086
make -s $(echo "$PURE" | tr ' ' '\n' | grep '\.pb-c\.c$')
targets=""
for src in t/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    # shellcheck disable=SC2086
    "$CLANG" $CFLAGS $APR_CFLAGS -Imod_claude_gateway -Imod_claude_gateway/otlp -Imod_claude_spend \
        -o "$OUT/fuzz_$name" "$src" $PURE $APR_LIBS -ljansson -lyaml -lcrypto -lprotobuf-c -lz -lm
    echo "built $OUT/fuzz_$name"
    targets="$targets $name"
done

if [ "${1:-}" = run ]; then
    secs=${2:-60}
    for name in $targets; do
        mkdir -p "$OUT/corpus/$name"
        dict=""
        [ -f "t/fuzz/dict/$name.dict" ] && dict="-dict=t/fuzz/dict/$name.dict"
        echo "fuzzing $name for ${secs}s"
        # shellcheck disable=SC2086
        "$OUT/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
            -artifact_prefix="$OUT/$name-" $dict "$OUT/corpus/$name" "t/fuzz/corpus/$name"
    done
fi
