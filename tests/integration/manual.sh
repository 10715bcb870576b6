#!/bin/sh
# man/libhandoff.3 matches include/handoff.h and the built library:
# every function the library exports and every function, typedef, enum
# value and macro the header names is in the manual's SYNOPSIS and its
# text (functions in NAME too, and with a man3 link in Makefile.am);
# every handoff_* or HANDOFF_* name the manual uses is in the header (no
# stale one); the SYNOPSIS compiles after the header (so each prototype
# is the header's) and lists the enum values in the header's order;
# groff (and mandoc, if installed) finds nothing to warn about and no
# line is wider than 80 columns; and the EXAMPLES program builds with
# the project's warnings and is upgraded: the first process hands over
# and exits 0, the second stops on SIGTERM with exit 0.
# MANUAL=FILE and HEADER=FILE check other files (to see it fail).
. "$(dirname "$0")/../lib.sh"

MANUAL=${MANUAL:-$top_srcdir/man/libhandoff.3}
HEADER=${HEADER:-$top_srcdir/include/handoff.h}
MAKEFILE_AM=$top_srcdir/Makefile.am
[ -f "$MANUAL" ] || fail "no manual at $MANUAL"
[ -f "$HEADER" ] || fail "no header at $HEADER"
command -v nm >/dev/null || skip "nm is not installed (binutils)"
command -v groff >/dev/null || skip "groff is not installed"

: >"$T/problems"
problem() { printf '%s\n' "$*" >>"$T/problems"; }

# What configure chose, from the Makefile it wrote.
mkvar() { sed -n "s/^$1 = //p" "$top_builddir/Makefile" | head -n 1; }
CC=$(mkvar CC)

# --- the library's exported functions
so=$top_builddir/.libs/libhandoff.so
if [ -f "$so" ]; then
	nm -D --defined-only "$so"
else	# configure --disable-shared
	nm -g --defined-only "$top_builddir/.libs/libhandoff.a"
fi 2>/dev/null | awk '$3 ~ /^handoff_/ { print $3 }' | sort -u >"$T/exported"
[ -s "$T/exported" ] || fail "no handoff_* symbol in $top_builddir/.libs (build first)"

# --- the Debian symbols file names them all, and no other (the package
# build fails on a difference); a release tarball has no debian/
SYMBOLS=$top_srcdir/debian/libhandoff0.symbols
if [ -f "$SYMBOLS" ]; then
	sed -n 's/^ \(handoff_[A-Za-z0-9_]*\)@Base .*/\1/p' "$SYMBOLS" |
	    sort -u >"$T/symbols"
	cmp -s "$T/exported" "$T/symbols" ||
	    fail "$SYMBOLS differs from the library's exports:" \
	    "$(diff "$T/exported" "$T/symbols" | grep '^[<>]' | tr '\n' ' ')"
fi

# --- the header's names, from its text without comments
awk '{
	line = $0; out = ""
	while (line != "") {
		if (c) {
			i = index(line, "*/")
			if (i == 0) { line = ""; break }
			line = substr(line, i + 2); c = 0
		} else {
			i = index(line, "/*")
			if (i == 0) { out = out line; line = "" }
			else { out = out substr(line, 1, i - 1) " "; line = substr(line, i + 2); c = 1 }
		}
	}
	print out
}' "$HEADER" >"$T/header.c"
# Functions: a name and "(" (a typedef's name is followed by ")").
grep -o '\bhandoff_[a-z0-9_]*[[:space:]]*(' "$T/header.c" |
    sed 's/[[:space:]]*($//' | sort -u >"$T/h.functions"
grep -o '(\*handoff_[a-z0-9_]*)' "$T/header.c" | tr -d '(*)' |
    sort -u >"$T/h.typedefs"
sed -n 's/^#[[:space:]]*define[[:space:]]\{1,\}\(HANDOFF_[A-Z0-9_]*\).*/\1/p' \
    "$T/header.c" | grep -v '^HANDOFF_H$' | sort -u >"$T/h.macros"
# enum values in their order, per enum
enum_values() {
	awk '/enum[[:space:]]+handoff_[a-z0-9_]+[[:space:]]*\{/ { on = 1 }
	    on { print } on && /\}/ { on = 0 }' "$1" |
	    grep -o '\bHANDOFF_[A-Z0-9_]*\b'
}
enum_values "$T/header.c" >"$T/h.enum"
grep -o 'enum[[:space:]]\{1,\}handoff_[a-z0-9_]*' "$T/header.c" |
    awk '{ print $2 }' | sort -u >"$T/h.enums"
cat "$T/h.functions" "$T/h.typedefs" "$T/h.macros" "$T/h.enum" \
    "$T/h.enums" | sort -u >"$T/h.names"
[ -s "$T/h.functions" ] || fail "no function found in $HEADER"

# --- the manual, as C text (SYNOPSIS) and as lines of roff
# roff_c SECTION: the C that a section of a man(7) page shows in no-fill
# mode (.nf to .fi). Alternating font macros (.BI, .BR...) join their
# arguments, .B and .I put a space between them, plain lines stay, other
# requests are dropped.
roff_c() {
	awk -v want="$1" '
	function unescape(s) {
		gsub(/\\f\(../, "", s); gsub(/\\f[BIRP1-4]/, "", s)
		gsub(/\\-/, "-", s); gsub(/\\&/, "", s)
		gsub(/\\\(aq/, "\047", s); gsub(/\\\(dq/, "\"", s)
		gsub(/\\e/, "\\", s)
		return s
	}
	function split_args(s,    n, i, ch, q, cur, inarg) {
		n = 0; cur = ""; q = 0; inarg = 0
		for (i = 1; i <= length(s); i++) {
			ch = substr(s, i, 1)
			if (q) {
				if (ch == "\"" && substr(s, i + 1, 1) == "\"") {
					cur = cur "\""; i++
				} else if (ch == "\"")
					q = 0
				else
					cur = cur ch
			} else if (ch == " " || ch == "\t") {
				if (inarg) { A[++n] = cur; cur = ""; inarg = 0 }
			} else if (ch == "\"" && !inarg) {
				q = 1; inarg = 1
			} else {
				cur = cur ch; inarg = 1
			}
		}
		if (inarg) A[++n] = cur
		return n
	}
	/^\.SH/ { sec = $0; sub(/^\.SH[[:space:]]*"?/, "", sec); sub(/"$/, "", sec); nf = 0; next }
	sec != want { next }
	/^\.nf/ { nf = 1; next }
	/^\.fi/ { nf = 0; next }
	!nf || /^\.\\"/ { next }
	/^\.(B|I|SM)[[:space:]]/ || /^\.(BI|BR|IB|IR|RB|RI)[[:space:]]/ {
		m = $0; sub(/[[:space:]].*/, "", m)
		rest = $0; sub(/^\.[A-Z]+[[:space:]]+/, "", rest)
		n = split_args(rest); out = ""
		for (i = 1; i <= n; i++)
			out = out (i > 1 && length(m) == 2 ? " " : "") unescape(A[i])
		print out
		next
	}
	substr($0, 1, 1) == "." || substr($0, 1, 1) == "\047" { print ""; next }
	{ print unescape($0) }
	' "$MANUAL"
}
roff_c SYNOPSIS >"$T/synopsis.c"
[ -s "$T/synopsis.c" ] || fail "no SYNOPSIS in $MANUAL"
# Its declarations: functions, typedefs, macros, enum values in order.
grep -o '\bhandoff_[a-z0-9_]*[[:space:]]*(' "$T/synopsis.c" |
    sed 's/[[:space:]]*($//' | sort -u >"$T/m.functions"
grep -o '(\*handoff_[a-z0-9_]*)' "$T/synopsis.c" | tr -d '(*)' |
    sort -u >"$T/m.typedefs"
sed -n 's/^#[[:space:]]*define[[:space:]]\{1,\}\(HANDOFF_[A-Z0-9_]*\).*/\1/p' \
    "$T/synopsis.c" | sort -u >"$T/m.macros"
enum_values "$T/synopsis.c" >"$T/m.enum"
# The text: formatted mentions (.B, .BR, .BI ...) outside NAME and SYNOPSIS.
awk '/^\.SH/ { sec = $0; sub(/^\.SH[[:space:]]*"?/, "", sec); next }
    sec != "NAME" && sec != "SYNOPSIS" && /^\.(B|BI|BR|IB|RB|TP|IP)[[:space:]]/' \
    "$MANUAL" >"$T/text"
# NAME: the names before "\-".
awk '/^\.SH/ { on = ($0 ~ /^\.SH[[:space:]]+"?NAME/); next } on' "$MANUAL" |
    sed 's/\\-.*//' | tr ', ' '\n\n' | grep . | sort -u >"$T/m.name"

mentioned() { grep -q "\\b$1\\b" "$T/text"; }

while read -r f; do
	grep -qx "$f" "$T/h.functions" ||
	    problem "$f: exported by the library, not declared in $HEADER"
	grep -qx "$f" "$T/m.functions" ||
	    problem "$f: exported by the library, not in the manual's SYNOPSIS"
	mentioned "$f" ||
	    problem "$f: exported by the library, not described in the manual"
done <"$T/exported"
while read -r f; do
	grep -qx "$f" "$T/m.functions" ||
	    problem "function $f: not in the manual's SYNOPSIS"
	mentioned "$f" || problem "function $f: not described in the manual"
	grep -qx "$f" "$T/m.name" || problem "function $f: not in the manual's NAME"
	grep -qx "$f" "$T/exported" ||
	    problem "function $f: declared in $HEADER, not exported by the library"
done <"$T/h.functions"
while read -r t; do
	grep -qx "$t" "$T/m.typedefs" ||
	    problem "typedef $t: not in the manual's SYNOPSIS"
	mentioned "$t" || problem "typedef $t: not described in the manual"
done <"$T/h.typedefs"
while read -r d; do
	grep -qx "$d" "$T/m.macros" || problem "macro $d: not in the manual's SYNOPSIS"
	mentioned "$d" || problem "macro $d: not described in the manual"
done <"$T/h.macros"
while read -r e; do
	mentioned "$e" || problem "enum value $e: not described in the manual"
done <"$T/h.enum"
cmp -s "$T/h.enum" "$T/m.enum" ||
    problem "enum values: the SYNOPSIS has $(echo $(cat "$T/m.enum")), the header $(echo $(cat "$T/h.enum"))"

# No stale name: each one the manual uses is the header's.
grep -o '\b\(handoff_[a-z0-9_]*\|HANDOFF_[A-Z0-9_]*\)\b' "$MANUAL" | sort -u |
    while read -r n; do
	grep -qx "$n" "$T/h.names" ||
	    problem "$n: in the manual, not in $HEADER (stale?)"
done
while read -r n; do
	[ "$n" = libhandoff ] || grep -qx "$n" "$T/h.functions" ||
	    problem "$n: in the manual's NAME, not a function of $HEADER"
done <"$T/m.name"

# One man3 link for each function, no more (Makefile.am: LIBHANDOFF_MLINKS).
sed -n '/^LIBHANDOFF_MLINKS[[:space:]]*=/,/[^\\]$/p' "$MAKEFILE_AM" |
    sed 's/^LIBHANDOFF_MLINKS[[:space:]]*=//; s/\\$//' | tr ' \t' '\n\n' |
    grep . | sort >"$T/mlinks"
[ -s "$T/mlinks" ] || problem "no LIBHANDOFF_MLINKS in $MAKEFILE_AM"
cmp -s "$T/mlinks" "$T/h.functions" ||
    problem "LIBHANDOFF_MLINKS in Makefile.am differs from the header's functions: $(diff "$T/h.functions" "$T/mlinks" | grep '^[<>]' | tr '\n' ' ')"

# The SYNOPSIS after the header: a prototype, typedef or macro that
# differs from the header's does not compile. The enum is compared above.
awk '/enum[[:space:]]+handoff_[a-z0-9_]+[[:space:]]*\{/ { on = 1 }
    !on { print } on && /\}/ { on = 0 }' "$T/synopsis.c" >"$T/synopsis-check.c"
grep -q '#include <handoff.h>' "$T/synopsis-check.c" ||
    problem "the SYNOPSIS does not say #include <handoff.h>"
mkdir "$T/include" && cp "$HEADER" "$T/include/handoff.h" ||
    fail "cannot copy $HEADER"
if ! ${CC:-cc} -std=gnu11 -fsyntax-only -Wall -Werror \
    -I"$T/include" -x c "$T/synopsis-check.c" >"$T/cc.out" 2>&1; then
	problem "the SYNOPSIS does not match the header:"
	sed 's/^/    /' "$T/cc.out" >>"$T/problems"
fi

# --- formatting: no warning, 80 columns
groff -man -ww -z -Tutf8 "$MANUAL" >"$T/groff.out" 2>&1
[ ! -s "$T/groff.out" ] || { problem "groff -man -ww warns:"; sed 's/^/    /' "$T/groff.out" >>"$T/problems"; }
if command -v man >/dev/null; then
	MANWIDTH=80 man --warnings -l "$MANUAL" 2>"$T/man.err" >"$T/man.out" ||
	    problem "man -l $MANUAL failed"
	[ ! -s "$T/man.err" ] || { problem "man --warnings:"; sed 's/^/    /' "$T/man.err" >>"$T/problems"; }
fi
if command -v mandoc >/dev/null; then
	mandoc -Tlint -Wwarning "$MANUAL" >"$T/mandoc.out" 2>&1 ||
	    { problem "mandoc -Tlint:"; sed 's/^/    /' "$T/mandoc.out" >>"$T/problems"; }
fi
groff -man -Tascii -P-cbou -rLL=80n "$MANUAL" 2>/dev/null |
    awk 'length > 80 { print "    " $0 }' >"$T/wide"
[ ! -s "$T/wide" ] || { problem "lines wider than 80 columns:"; cat "$T/wide" >>"$T/problems"; }

if [ -s "$T/problems" ]; then
	cat "$T/problems"
	fail "$(wc -l <"$T/problems") problem line(s) in $MANUAL"
fi
log "$(wc -l <"$T/h.functions") functions, $(wc -l <"$T/h.typedefs") typedefs, $(wc -l <"$T/h.enum") enum values, $(wc -l <"$T/h.macros") macro(s): all in the manual"

# --- the EXAMPLES program: built with the project's warnings, upgraded once
awk '/^\.SH/ { sec = $0; next } sec ~ /EXAMPLES/ && /^\.EX/ { on = 1; next }
    on && /^\.EE/ { exit } on' "$MANUAL" |
    sed -e 's/\\-/-/g' -e 's/\\&//g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g' >"$T/greet.c"
[ -s "$T/greet.c" ] || fail "no .EX block in the manual's EXAMPLES"
# shellcheck disable=SC2046
"$top_builddir/libtool" --quiet --tag=CC --mode=link $CC $(mkvar CFLAGS) \
    $(mkvar WARN_CFLAGS) -Werror $(mkvar SAN_CFLAGS) \
    -I"$top_srcdir/include" $(mkvar LIBEVENT_CFLAGS) $(mkvar LDFLAGS) \
    $(mkvar SAN_LDFLAGS) -o "$T/greet" "$T/greet.c" \
    "$top_builddir/libhandoff.la" $(mkvar LIBEVENT_LIBS) >"$T/build.out" 2>&1 ||
    { cat "$T/build.out"; fail "the EXAMPLES program does not build"; }

port=$(free_port)
greet_line() {
	python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(5)
print(s.makefile().readline().strip())' "$port"
}
says_generation() { greet_line | grep -q "^pid $1 generation $2\$"; }

"$T/greet" "$CONTROL" "tcp://127.0.0.1:$port" >"$T/greet1.log" 2>&1 &
g1=$!
PIDS="$PIDS $g1"
wait_for 20 says_generation "$g1" 1 || fail "the example never answered as generation 1"
"$T/greet" "$CONTROL" "tcp://127.0.0.1:$port" >"$T/greet2.log" 2>&1 &
g2=$!
PIDS="$PIDS $g2"
wait_for 20 says_generation "$g2" 2 || fail "the example's second process never answered as generation 2"
wait_exit "$g1"
[ "$STATUS" = 0 ] || fail "the example's first process exited $STATUS after the handoff"
logged greet1 "released to pid $g2" || fail "the first process did not log its release to pid $g2"
kill -TERM "$g2"
wait_exit "$g2"
[ "$STATUS" = 0 ] || fail "the example's second process exited $STATUS on SIGTERM"
logged greet2 "stopping" || fail "the second process did not log its stop"
log "the EXAMPLES program: generation 1 handed over to 2 and exited 0; 2 stopped on SIGTERM, exit 0"
pass
