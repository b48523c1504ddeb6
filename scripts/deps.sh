#!/bin/sh
# deps.sh -- installs the Debian packages a make target needs, if missing.
# Usage: scripts/deps.sh test|bench.  Idempotent; as non-root it prints the
# exact apt-get line and fails.
set -eu

case "${1:-}" in
test) pkgs="make gcc clang clang-format pkg-config libcmocka-dev libssl-dev openssl python3 python3-pytest valgrind netcat-openbsd socat systemd prometheus util-linux mandoc haproxy clang-tools libclang-rt-14-dev strace" ;;
bench) pkgs="gcc pkg-config python3 socat libuv1-dev liburing-dev libssl-dev openssl nodejs util-linux" ;;
*) echo "usage: scripts/deps.sh test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	# nodejs may come from outside Debian: a working node is enough.
	if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run as root: apt-get update && $line" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
