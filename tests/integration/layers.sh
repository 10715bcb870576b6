#!/bin/sh
# The modules of libhandoff only call downward: from the symbols each
# object defines and uses (nm), file-to-file edges, which must have no
# cycle; and no file of src/ grows past LINES_MAX lines. Prints the
# layers, lowest first, with each file's callees.
. "$(dirname "$0")/../lib.sh"

LINES_MAX=650
command -v nm >/dev/null || skip "nm is not installed (binutils)"
command -v tsort >/dev/null || skip "tsort is not installed (coreutils)"

objs=$(ls "$top_builddir"/src/.libs/libhandoff_la-*.o 2>/dev/null)
[ -n "$objs" ] || objs=$(ls "$top_builddir"/src/libhandoff_la-*.o 2>/dev/null)
[ -n "$objs" ] || fail "no objects of libhandoff under $top_builddir/src (build first)"

# "D file symbol" and "U file symbol" for every object.
for o in $objs; do
	f=${o##*libhandoff_la-}
	f=${f%.o}
	nm --defined-only -g "$o" | awk -v f="$f" 'NF == 3 { print "D", f, $3 }'
	nm --undefined-only -g "$o" | awk -v f="$f" '{ print "U", f, $NF }'
done >"$T/symbols" || fail "nm failed"
n=$(awk '$1 == "D"' "$T/symbols" | wc -l)
[ "$n" -gt 50 ] || fail "nm found only $n defined symbols: cannot judge"

# "caller callee" for every call between two files, and every file once
# (a pair with itself) so that tsort lists the leaves too.
awk '$1 == "D" { def[$3] = $2; files[$2] = 1 }
     $1 == "U" { use[NR] = $2 " " $3 }
     END {
	for (f in files) print f, f
	for (i in use) {
		split(use[i], a, " ")
		if ((a[2] in def) && def[a[2]] != a[1])
			print a[1], def[a[2]]
	}
     }' "$T/symbols" | sort -u >"$T/edges"
grep -c . "$T/edges" >/dev/null || fail "no edges"

# tsort prints callers first; a loop is a cycle in the call graph.
if ! tsort "$T/edges" >"$T/order" 2>"$T/tsort.err"; then
	cat "$T/tsort.err"
	fail "the files of src/ call each other in a circle (tsort above names it)"
fi
log "layers, lowest first, each with the files it calls:"
tac "$T/order" | while read -r f; do
	callees=$(awk -v f="$f" '$1 == f && $2 != f { print $2 }' "$T/edges" |
	    tr '\n' ' ')
	printf '  %-10s %5d lines  -> %s\n' "$f" \
	    "$(wc -l <"$top_srcdir/src/$f.c")" "${callees:-(leaf)}"
done

# A deliberate cycle must be seen, or the check proves nothing.
printf 'a b\nb c\nc a\n' | tsort >/dev/null 2>&1 &&
    fail "tsort does not report a cycle: the check cannot fail"

big=$(wc -l "$top_srcdir"/src/*.c | awk -v m=$LINES_MAX \
    '$2 != "total" && $1 > m { print $2 " (" $1 " lines)" }')
[ -z "$big" ] || fail "over $LINES_MAX lines: $big"
pass
