#!/bin/sh
# Makes sure what sertools needs is there, and installs only what is missing.
# Usage: build-aux/deps.sh [build|check|demo]
#   build: the compiler, the libraries (asked of pkg-config), sox, mandoc
#   check: build + the Python references (asked of /usr/bin/python3) and the
#          tools the test suite runs (clang, GNU parallel, sshd, ...)
#   demo:  check + what the study pipelines use
#
# Every requirement is probed first, whatever the system: a library through
# pkg-config, a Python module by importing it, a program on PATH, a data
# directory by its path.  Only the missing ones are looked up in the table
# below and installed with apt-get (as root, or through sudo).  On a system
# without apt-get, the missing pieces are listed and the script exits 2, so
# they can be installed by other means (then they are found by the probes).
set -eu
level=${1:-build}

# requirement (kind:name) and the Debian package that provides it
build_reqs="
cmd:cc gcc
cmd:make make
cmd:pkg-config pkg-config
pkg:sox libsox-dev
pkg:fftw3f libfftw3-dev
pkg:fftw3 libfftw3-dev
pkg:openblas libopenblas-dev
cmd:sox sox
file:/usr/lib/x86_64-linux-gnu/sox/libsox_fmt_mp3.so libsox-fmt-all
cmd:mandoc mandoc
"
check_reqs="
cmd:/usr/bin/python3 python3
py:numpy python3-numpy
py:scipy python3-scipy
py:torch python3-torch
py:torchaudio python3-torchaudio
py:msgpack python3-msgpack
py:msgpack_numpy python3-msgpack-numpy
py:sklearn python3-sklearn
cmd:clang clang
file:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a libclang-rt-14-dev
cmd:espeak-ng espeak-ng
cmd:parallel parallel
cmd:gnuplot gnuplot-nox
cmd:/usr/sbin/sshd openssh-server
cmd:ssh openssh-client
cmd:ssh-keygen openssh-client
"
demo_reqs=

case $level in
build) reqs=$build_reqs ;;
check) reqs="$build_reqs $check_reqs" ;;
demo) reqs="$build_reqs $check_reqs $demo_reqs" ;;
*) echo "deps.sh: unknown level '$level' (build, check or demo)" >&2; exit 1 ;;
esac

# The Python modules are imported in one interpreter (torch alone takes a second).
py_mods=$(printf '%s\n' "$reqs" | sed -n 's/^py:\([^ ]*\) .*/\1/p')
py_missing=
if [ -n "$py_mods" ] && [ -x /usr/bin/python3 ]; then
	py_missing=$(/usr/bin/python3 - $py_mods <<'EOF' 2>/dev/null || true
import importlib, sys
for m in sys.argv[1:]:
    try:
        importlib.import_module(m)
    except Exception:
        print(m)
EOF
)
elif [ -n "$py_mods" ]; then
	py_missing=$py_mods
fi

have() {   # have KIND:NAME
	kind=${1%%:*} name=${1#*:}
	case $kind in
	cmd) command -v "$name" >/dev/null 2>&1 ;;
	pkg) command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$name" ;;
	file) [ -e "$name" ] ;;
	py) ! printf '%s\n' $py_missing | grep -qx "$name" ;;
	esac
}

missing_reqs= missing_pkgs=
while read -r req pkg; do
	[ -n "$req" ] || continue
	have "$req" && continue
	missing_reqs="$missing_reqs $req"
	case " $missing_pkgs " in *" $pkg "*) ;; *) missing_pkgs="$missing_pkgs $pkg" ;; esac
done <<EOF
$reqs
EOF
[ -z "$missing_reqs" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing:$missing_reqs" >&2
	echo "deps.sh: no apt-get here: install them by other means (Debian's names:$missing_pkgs)" >&2
	exit 2
fi
if [ "$(id -u)" -eq 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "deps.sh: missing:$missing_reqs" >&2
	echo "deps.sh: run as root, or install the Debian packages:$missing_pkgs" >&2
	exit 2
fi
echo "deps.sh: missing:$missing_reqs; installing:$missing_pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
# apt-get update only when the package lists are older than a day or absent
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	$sudo apt-get update -q >&2
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing_pkgs >&2
