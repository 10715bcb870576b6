#!/bin/sh
# cppcheck and clang-tidy over src/*.c and tools/*.c: any new finding
# fails. The clang-tidy checks are in .clang-tidy; what is judged wrong or
# meant is listed, with its reason, in tests/analysis/cppcheck.supp and
# tests/analysis/clang-tidy.known, and an entry that no longer matches
# fails too. A canary first shows that each tool, so configured, reports.
# Skipped, saying why, without cppcheck or clang-tidy, and in a sanitizer
# build (the plain build analyses the same sources).
. "$(dirname "$0")/../lib.sh"

command -v cppcheck >/dev/null ||
    skip "cppcheck is not installed (apt-get install cppcheck)"
command -v clang-tidy >/dev/null ||
    skip "clang-tidy is not installed (apt-get install clang-tidy)"
sanitized && skip "built with -fsanitize: the plain build analyses the same sources"

A="$top_srcdir/tests/analysis"
cd "$top_srcdir" || fail "cannot cd to $top_srcdir"
pc=$(pkg-config --cflags libevent_core jansson) ||
    fail "pkg-config does not know libevent or jansson"
# The build's preprocessor flags (AM_CPPFLAGS, and config.h).
cppflags="-D_GNU_SOURCE -I$top_builddir -Iinclude -Isrc $pc"
# cppcheck reads the system headers too: without them it cannot expand
# sys/queue.h or jansson's foreach macros, and skips those files.
sysinc="-I/usr/include"
multiarch=$(${CC:-cc} -print-multiarch 2>/dev/null)
[ -n "$multiarch" ] && [ -d "/usr/include/$multiarch" ] &&
    sysinc="$sysinc -I/usr/include/$multiarch"

# Not --library=gnu: its accept4 wrongly wants a non-null addrlen, and it
# finds nothing more here.
run_cppcheck() {
	# shellcheck disable=SC2086
	cppcheck --quiet --std=c11 --library=posix --inline-suppr \
	    --enable=warning,style,performance,portability,information \
	    --suppressions-list="$A/cppcheck.supp" $cppflags $sysinc \
	    --template='{file}:{line}: {severity} [{id}] {message}' "$@" 2>&1
}

run_tidy() {
	# shellcheck disable=SC2086
	clang-tidy --quiet --config-file="$top_srcdir/.clang-tidy" "$@" -- \
	    $cppflags 2>&1
}

cat >"$T/canary.c" <<'EOF'
#include <stdlib.h>

int	canary_freed(const char *);
int	canary_bounds(int);

/* A use after free and an unchecked atoi, for clang-tidy. */
int
canary_freed(const char *s)
{
	int	*p;

	if ((p = malloc(sizeof(*p))) == NULL)
		return -1;
	*p = atoi(s);
	free(p);
	return *p;
}

/* A write past the end, for cppcheck. */
int
canary_bounds(int n)
{
	char	buf[4];

	buf[n > 0 ? 4 : 0] = 'x';
	return buf[0];
}
EOF
run_cppcheck "$T/canary.c" >"$T/canary-cppcheck.out"
grep -q '\[arrayIndexOutOfBounds\]' "$T/canary-cppcheck.out" ||
    fail "cppcheck missed the canary's write past the end:" \
    "$(cat "$T/canary-cppcheck.out")"
run_tidy "$T/canary.c" >"$T/canary-tidy.out"
for check in clang-analyzer-unix.Malloc cert-err34-c; do
	grep -q "\[$check\]\$" "$T/canary-tidy.out" ||
	    fail "clang-tidy with .clang-tidy did not report $check in the" \
	    "canary: $(grep 'warning:' "$T/canary-tidy.out")"
done

set -- src/*.c tools/*.c
nfiles=$#
run_cppcheck "$@" >"$T/cppcheck.out" ||
    fail "cppcheck failed: $(tail -n 5 "$T/cppcheck.out")"
if [ -s "$T/cppcheck.out" ]; then
	cat "$T/cppcheck.out"
	fail "cppcheck: $(wc -l <"$T/cppcheck.out") new findings (above);" \
	    "fix them, or justify them in tests/analysis/cppcheck.supp"
fi
log "cppcheck: $nfiles files, no finding"

# One process: make -j2 check runs another test beside this one.
run_tidy "$@" >"$T/tidy.out" ||
    fail "clang-tidy failed: $(grep 'error' "$T/tidy.out" | head -n 5)"

# Each finding not in clang-tidy.known, as "new: ...", and each entry of
# it that matched nothing, as "stale: ...".
awk -v top="$(pwd)/" -v ptop="$(pwd -P)/" '
function squeeze(s) {
	gsub(/[ \t]+/, " ", s)
	sub(/^ /, "", s)
	sub(/ $/, "", s)
	return s
}
function source_line(file, n,    l, i) {
	i = 0
	while (i < n && (getline l <file) > 0)
		i++
	close(file)
	return i == n ? l : ""
}
FNR == NR {
	if ($0 ~ /^#/ || $0 ~ /^[ \t]*$/)
		next
	split($0, f, "|")
	t = $0
	for (j = 1; j <= 3; j++)
		sub(/^[^|]*\|/, "", t)
	n++
	kfile[n] = f[1]
	kcheck[n] = f[2]
	ktext[n] = squeeze(t)
	next
}
/^[^ :]+:[0-9]+:[0-9]+: (warning|error): / {
	split($0, f, ":")
	file = f[1]
	if (index(file, top) == 1)
		file = substr(file, length(top) + 1)
	else if (index(file, ptop) == 1)
		file = substr(file, length(ptop) + 1)
	check = $0
	sub(/.*\[/, "", check)
	sub(/\]$/, "", check)
	text = squeeze(source_line(f[1], f[2]))
	found = 0
	for (j = 1; j <= n; j++)
		if (kfile[j] == file && kcheck[j] == check && ktext[j] == text) {
			used[j] = 1
			found = 1
		}
	if (!found)
		print "new: " $0 "\n    " text
}
END {
	for (j = 1; j <= n; j++)
		if (!used[j])
			print "stale: " kfile[j] "|" kcheck[j] "|" ktext[j]
}' "$A/clang-tidy.known" "$T/tidy.out" >"$T/tidy-new.out"
if [ -s "$T/tidy-new.out" ]; then
	cat "$T/tidy-new.out"
	fail "clang-tidy: $(grep -c '^new: ' "$T/tidy-new.out") new findings," \
	    "$(grep -c '^stale: ' "$T/tidy-new.out") stale entries (above): fix" \
	    "the code, or justify the finding (or remove the stale entry) in" \
	    "tests/analysis/clang-tidy.known"
fi
known=$(grep -cE '^[^ :]+:[0-9]+:[0-9]+: (warning|error): ' "$T/tidy.out")
log "clang-tidy: $nfiles files, $known findings, all in" \
    "tests/analysis/clang-tidy.known"
pass
