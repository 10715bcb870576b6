#!/bin/sh
# build.sh [OUTDIR]: builds the libFuzzer targets fuzz_message and fuzz_recv
# with clang (ASan and UBSan) straight from src/message.c, src/schema.c,
# src/field.c, src/b64.c, src/jtext.c and src/wire.c and the system
# jansson, into OUTDIR (default tests/fuzz/build). A minimal config.h is
# written to OUTDIR; the tree's own config.h is not used.
# CC, CFLAGS and FUZZ_SAN override the compiler, extra flags and sanitizers.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$here/build}
CC=${CC:-clang}
FUZZ_SAN=${FUZZ_SAN:-fuzzer,address,undefined}

command -v "$CC" >/dev/null 2>&1 || { echo "build.sh: $CC not found" >&2; exit 1; }
pkg-config --exists jansson ||
    { echo "build.sh: pkg-config cannot find jansson (install libjansson-dev)" >&2; exit 1; }

mkdir -p "$out"
cat >"$out/config.h" <<'EOH'
/* Minimal config.h for the fuzz targets, written by tests/fuzz/build.sh. */
#define PACKAGE "handoff"
#define PACKAGE_NAME "handoff"
#define PACKAGE_VERSION "fuzz"
#define VERSION "fuzz"
EOH

# -I "$out" first: src/*.c include "config.h", found there (src/ has none).
# UBSan findings abort instead of printing and going on.
# shellcheck disable=SC2046,SC2086
for t in fuzz_message fuzz_recv; do
	$CC -g -O1 -fsanitize="$FUZZ_SAN" -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter \
	    -I "$out" -I "$top/include" -I "$top/src" -D_GNU_SOURCE \
	    ${CFLAGS:-} $(pkg-config --cflags jansson) \
	    -o "$out/$t" "$here/$t.c" "$top/src/message.c" \
	    "$top/src/schema.c" "$top/src/wire.c" "$top/src/b64.c" \
	    "$top/src/field.c" "$top/src/jtext.c" \
	    $(pkg-config --libs jansson)
	echo "built $out/$t"
done
