#!/bin/bash
# tests/package/check-debs.sh: the Debian packages, built and used.
#
#  1. build: `dpkg-buildpackage -us -uc -b` in a copy of the tree (it
#     writes ../*.deb), with the tests (debian/rules) unless --nocheck;
#  2. lintian on the .changes: an error or warning that no
#     debian/*.lintian-overrides justifies fails;
#  3. a clean root: Debian's minbase for the host's release (mmdebstrap,
#     or debootstrap where mmdebstrap is missing), in a private mount
#     namespace, so nothing it mounts outlives it;
#  4. install there: dpkg -i of libhandoff0, libhandoff-dev and handoff,
#     then apt-get -f install for their dependencies; all three must end
#     "install ok installed";
#  5. one takeover with the installed programs inside that root
#     (tests/package/takeover-in-root.sh, in its own pid, mount and
#     network namespaces, under a time limit).
#
# As root on Debian, with debian/control's Build-Depends installed
# (`apt-get build-dep ./` does it) and mmdebstrap or debootstrap,
# lintian, unshare and ip; the root is downloaded from
# $HANDOFF_DEB_MIRROR (default http://deb.debian.org/debian) and
# $HANDOFF_DEB_SECURITY (http://deb.debian.org/debian-security).
# --keep keeps the work directory. Prints the time of each step; exit 0
# only if every step passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
nocheck=0 keep=0
for a in "$@"; do
	case $a in
	--nocheck) nocheck=1 ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--nocheck] [--keep]" >&2; exit 2 ;;
	esac
done

say() { printf 'check-debs: %s\n' "$*"; }
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (chroot, namespaces, dpkg in the root)"
for c in dpkg-buildpackage dpkg-parsechangelog lintian git tar unshare chroot ip timeout; do
	command -v "$c" >/dev/null || die "$c is not installed"
done
if command -v mmdebstrap >/dev/null; then
	bootstrap=mmdebstrap
elif command -v debootstrap >/dev/null; then
	bootstrap=debootstrap
else
	die "neither mmdebstrap nor debootstrap is installed"
fi
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 ||
    die "$top is not a git checkout: the copy to build is its tracked files"

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || die "no VERSION_CODENAME in /etc/os-release"
mirror=${HANDOFF_DEB_MIRROR:-http://deb.debian.org/debian}
security=${HANDOFF_DEB_SECURITY:-http://deb.debian.org/debian-security}

W=$(mktemp -d "${TMPDIR:-/tmp}/handoff-debs.XXXXXX") || die "mktemp failed"
# Readable by all: tests/integration/peer-uid.sh runs a peer as nobody
# from the source tree.
chmod 755 "$W" || die "chmod $W failed"
cleanup() {
	if [ "$keep" = 1 ]; then
		say "kept $W"
		return
	fi
	# Nothing is mounted under $W outside the namespaces that end with
	# their commands; never remove through a mount that is still there.
	if grep -q " $W/" /proc/self/mounts; then
		say "something is still mounted under $W: not removed"
		return
	fi
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t_start=$(date +%s)
lap=$t_start
# took STEP: how long since the previous step ended, and mark the end.
took() {
	local now
	now=$(date +%s)
	say "$1: $(( now - lap )) s"
	lap=$now
}

# --- 1. build, in a copy of the files git knows (tracked, and untracked
# that .gitignore does not exclude), as handoff-UPSTREAM_VERSION.
version=$(cd "$top" && dpkg-parsechangelog -S Version) ||
    die "dpkg-parsechangelog failed on $top/debian/changelog"
upstream=${version%-*}
src=$W/handoff-$upstream
mkdir -p "$src" || die "mkdir $src failed"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf -) | tar -C "$src" -xf - ||
    die "copying the tree to $src failed"

opts="${DEB_BUILD_OPTIONS:-} parallel=2"
[ "$nocheck" = 0 ] || opts="$opts nocheck"
say "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=\"${opts# }\"), log in $W/build.log"
(cd "$src" && DEB_BUILD_OPTIONS="${opts# }" dpkg-buildpackage -us -uc -b) \
    >"$W/build.log" 2>&1
rc=$?
if [ "$rc" != 0 ]; then
	tail -n 80 "$W/build.log"
	die "dpkg-buildpackage exited $rc (last lines above)"
fi
grep -E '^(# (TOTAL|PASS|SKIP|FAIL|XFAIL|XPASS|ERROR):|SKIP: )' "$W/build.log" |
    sed 's/^/  make check: /'
debs=""
for p in libhandoff0 libhandoff-dev handoff; do
	f=$W/${p}_${version}_$(dpkg --print-architecture).deb
	[ -f "$f" ] || die "dpkg-buildpackage made no $f"
	debs="$debs $f"
done
# The library's manual is libhandoff-dev's once the source has it.
if [ -f "$top/man/libhandoff.3" ]; then
	dpkg-deb -c "$W/libhandoff-dev_${version}_$(dpkg --print-architecture).deb" |
	    grep -q '/usr/share/man/man3/libhandoff\.3\.gz$' ||
	    die "man/libhandoff.3 is in the source but not in libhandoff-dev"
fi
took "build"

# --- 2. lintian: overridden tags are not shown; info tags are shown
# (-I) but do not fail.
lintian -I --fail-on error,warning "$W"/handoff_"${version}"_*.changes \
    >"$W/lintian.out" 2>&1
rc=$?
grep -v '^running with root privileges' "$W/lintian.out" | sed 's/^/  lintian: /'
[ "$rc" = 0 ] || die "lintian exited $rc: an error or warning above needs a fix or a justified override"
took "lintian"

# --- 3. a clean root, with the release's updates and security archives
# as a user's machine has them.
root=$W/root
sources="deb $mirror $suite main"
case $suite in
sid|unstable) ;;
*) sources="$sources
deb $mirror $suite-updates main
deb $security $suite-security main" ;;
esac
say "$bootstrap --variant=minbase $suite, log in $W/bootstrap.log"
if [ "$bootstrap" = mmdebstrap ]; then
	printf '%s\n' "$sources" |
	    timeout 900 unshare --mount --fork -- mmdebstrap --variant=minbase \
	    --mode=root "$suite" "$root" - >"$W/bootstrap.log" 2>&1
else
	timeout 900 unshare --mount --fork -- debootstrap --variant=minbase \
	    "$suite" "$root" "$mirror" >"$W/bootstrap.log" 2>&1 &&
	    printf '%s\n' "$sources" >"$root/etc/apt/sources.list"
fi
rc=$?
if [ "$rc" != 0 ]; then
	tail -n 20 "$W/bootstrap.log"
	die "$bootstrap exited $rc (last lines above)"
fi
took "clean root ($bootstrap)"

# --- 4. install: dpkg -i leaves the packages unconfigured for want of
# their dependencies; apt-get -f install brings exactly those.
mkdir -p "$root/tmp/debs" && cp $debs "$root/tmp/debs/" ||
    die "copying the packages into $root failed"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
# in_root TIMEOUT COMMAND: COMMAND by /bin/sh in the root, with /proc,
# in a mount namespace of its own.
in_root() {
	timeout "$1" unshare --mount --fork -- /bin/sh -c \
	    'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh -c "$2"' \
	    sh "$root" "$2"
}
in_root 600 'export DEBIAN_FRONTEND=noninteractive
	dpkg -i /tmp/debs/*.deb
	apt-get update && apt-get -f install -y --no-install-recommends' \
    >"$W/install.log" 2>&1
rc=$?
in_root 30 "dpkg-query -W -f '\${Package} \${Status}\n' libhandoff0 libhandoff-dev handoff" \
    >"$W/installed.out" 2>&1
sed 's/^/  /' "$W/installed.out"
if [ "$rc" != 0 ] || [ "$(grep -c ' install ok installed$' "$W/installed.out")" != 3 ]; then
	tail -n 30 "$W/install.log"
	die "installing the packages in the clean root failed (apt-get exited $rc)"
fi
grep '^Setting up ' "$W/install.log" | sed 's/^/  /'
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in "usr/lib/$multiarch/libhandoff.so" "usr/lib/$multiarch/pkgconfig/handoff.pc" \
    usr/include/handoff.h; do
	[ -e "$root/$f" ] || die "/$f is missing (or a dangling link) in the root"
done
took "install (dpkg -i, apt-get -f install)"

# --- 5. one takeover, in namespaces that end with it: its own loopback,
# /proc, and pid 1, so every process it started dies with it.
cp "$here/takeover-in-root.sh" "$root/tmp/" || die "copying the script failed"
timeout 120 unshare --pid --mount --net --fork --kill-child -- /bin/sh -c \
    'ip link set lo up && mount -t proc proc "$1/proc" &&
     exec chroot "$1" /bin/bash /tmp/takeover-in-root.sh' sh "$root"
rc=$?
[ "$rc" = 0 ] || die "the takeover in the clean root failed (exit $rc)"
took "takeover in the clean root"

say "PASS in $(( $(date +%s) - t_start )) s: built $version, lintian clean, installed in a clean $suite root, one takeover"
