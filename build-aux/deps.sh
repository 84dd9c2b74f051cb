#!/bin/sh
# Installs the Debian packages sertools needs, only those that are missing.
# Usage: build-aux/deps.sh [build|check|demo]
#   build: compilers' libraries (headers, pkg-config files) and man tools
#   check: build + the Python references and tools the test suite runs
#   demo:  check + what the study pipelines use (espeak-ng, gnuplot, ...)
set -eu
level=${1:-build}

build_pkgs="gcc make pkg-config libsox-dev libsox-fmt-all sox libfftw3-dev libopenblas-dev libmsgpack-dev mandoc"
check_pkgs="python3 python3-numpy python3-scipy python3-torch python3-torchaudio python3-msgpack python3-msgpack-numpy python3-sklearn espeak-ng parallel sonic-pi-samples gnuplot-nox"
demo_pkgs="parallel espeak-ng gnuplot-nox sonic-pi-samples"

case $level in
build) want=$build_pkgs ;;
check) want="$build_pkgs $check_pkgs" ;;
demo) want="$build_pkgs $check_pkgs $demo_pkgs" ;;
*) echo "deps.sh: unknown level '$level' (build, check or demo)" >&2; exit 1 ;;
esac

missing=
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "deps.sh: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 2
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update only when the package lists are older than a day or absent
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	$sudo apt-get update -q >&2
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >&2
