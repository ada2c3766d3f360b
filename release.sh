#!/bin/sh
# release.sh: build static mailstead binaries for Linux, ready for install.sh --binary.
#
#   sh release.sh [OUTDIR]        builds OUTDIR/mailstead-VERSION-linux-amd64 and -linux-arm64
#
# VERSION=v1.2.3 sets the version string `mailstead version` prints (default: git describe).
# ARCHES="amd64" limits the architectures built (default: amd64 arm64).
#
# SQLite is C (mattn/go-sqlite3), so cgo links it in; -static links glibc in as well, so the
# binary runs on any Linux of its architecture with nothing installed. osusergo and netgo keep
# glibc's NSS (which wants shared libraries at run time) out: Go's own resolver and user lookup
# are used. Cross compilers come from Debian: apt-get install gcc-aarch64-linux-gnu (arm64) or
# gcc-x86-64-linux-gnu (amd64 on an arm64 machine). An architecture whose compiler is missing is
# skipped with a line saying which package to install.
set -eu

cd "$(dirname "$0")"
out=${1:-dist}
arches=${ARCHES:-amd64 arm64}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
host=$(go env GOARCH)

compiler() {
	case $1 in
	"$host") echo "${CC:-cc}" ;;
	amd64) echo x86_64-linux-gnu-gcc ;;
	arm64) echo aarch64-linux-gnu-gcc ;;
	*) echo none ;;
	esac
}

debian_package() {
	case $1 in
	amd64) echo gcc-x86-64-linux-gnu ;;
	arm64) echo gcc-aarch64-linux-gnu ;;
	esac
}

mkdir -p "$out"
built=0
for arch in $arches; do
	cc=$(compiler "$arch")
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "release.sh: skipped linux/$arch: no $cc (apt-get install $(debian_package "$arch"))" >&2
		continue
	fi
	bin=$out/mailstead-$version-linux-$arch
	echo "building $bin with $cc"
	CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc go build -trimpath \
		-tags 'osusergo netgo sqlite_omit_load_extension' \
		-ldflags "-s -w -X main.buildVersion=$version -linkmode external -extldflags -static" \
		-o "$bin" .
	built=$((built + 1))
done
[ "$built" -gt 0 ] || {
	echo "release.sh: nothing built" >&2
	exit 1
}
