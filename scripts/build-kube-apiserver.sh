#!/usr/bin/env bash
# Build a real kube-apiserver v1.20.2 for the `realk8s` test tier, offline, from Debian bookworm's
# `kubernetes` source package (complete vendor/ tree) with Debian's golang-1.19. No Docker, no Go
# module downloads. The result is cached; a second run exits at once.
#
#   scripts/build-kube-apiserver.sh [--with-controller-manager] [--prune-source]
#
#   --with-controller-manager  also build kube-controller-manager (namespace deletion, GC, default
#                              service accounts); the tests do not need it
#   --prune-source             delete the extracted source tree after the build too (saves ~400 MB,
#                              a later build with another flag re-extracts it)
#
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/passops/kube-1.20.2/ (override: PASSOPS_KUBE_CACHE)
#   bin/kube-apiserver, bin/kube-apiserver.stamp  <- what passops.testing.realk8s looks for
#   src/, gopath/, home/                          <- build tree (gocache/ is removed after a build)
# Needs: Debian (bookworm) with apt, run as root (or passwordless sudo) when packages are missing.
# etcd comes from Debian's etcd-server package (/usr/bin/etcd), installed here too.
set -euo pipefail

KUBE_VERSION=1.20.2
# Bump when the recipe changes the binary: older stamps then count as missing (passops.testing.realk8s
# reads this line too).
RECIPE=2
WITH_KCM=0
PRUNE_SOURCE=0
for arg in "$@"; do
  case "$arg" in
    --with-controller-manager) WITH_KCM=1 ;;
    --prune-source) PRUNE_SOURCE=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-kube-apiserver: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

CACHE=${PASSOPS_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/passops/kube-$KUBE_VERSION}
BIN=$CACHE/bin
CMDS=(kube-apiserver)
[ "$WITH_KCM" = 1 ] && CMDS+=(kube-controller-manager)

die() { echo "build-kube-apiserver: $*" >&2; exit 1; }

built() {  # a binary counts only with its stamp (written last) from this recipe
  [ -x "$BIN/$1" ] && grep -qx "recipe=$RECIPE" "$BIN/$1.stamp" 2>/dev/null
}
cached() {
  local c
  for c in "${CMDS[@]}"; do built "$c" || return 1; done
}

if cached && [ -x /usr/bin/etcd ]; then
  echo "build-kube-apiserver: cached: $BIN (${CMDS[*]})"
  exit 0
fi

# --- preconditions: Debian with apt ------------------------------------------------------------
[ -f /etc/debian_version ] && command -v apt-get >/dev/null && command -v dpkg-query >/dev/null \
  || die "needs Debian (bookworm) with apt-get: the source package and Go 1.19 come from Debian. \
Elsewhere, point KUBEBUILDER_ASSETS at a dir with kube-apiserver and etcd, or PASSOPS_TEST_KUBECONFIG at a cluster."
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); fi
fi
as_root() {
  if [ "$(id -u)" = 0 ] || [ ${#SUDO[@]} -gt 0 ]; then "${SUDO[@]}" "$@"
  else die "needs root (or passwordless sudo) to run: $*"; fi
}

mkdir -p "$CACHE" "$BIN"
# One build at a time per cache (parallel pytest sessions may all decide to build).
exec 9>"$CACHE/.lock"
flock 9
if cached && [ -x /usr/bin/etcd ]; then echo "build-kube-apiserver: cached (built meanwhile): $BIN"; exit 0; fi

START=$SECONDS
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq || die "apt-get update failed (no access to the Debian archive?)"
    APT_UPDATED=1
  fi
}

PKGS=(golang-1.19-go etcd-server rsync dpkg-dev golang-github-modern-go-reflect2-dev)
MISSING=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  echo "build-kube-apiserver: apt-get install ${MISSING[*]}"
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}" \
    >/dev/null || die "apt-get install ${MISSING[*]} failed (golang-1.19-go is in bookworm)"
fi
if cached; then echo "build-kube-apiserver: cached: $BIN (installed missing packages)"; exit 0; fi
GO=/usr/lib/go-1.19/bin/go
[ -x "$GO" ] || die "Go 1.19 not found at $GO"
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$REFLECT2" ] || die "reflect2 v1.0.2 sources not found at $REFLECT2"

# --- the source package ------------------------------------------------------------------------
SRC=$CACHE/src
mkdir -p "$SRC"
cd "$SRC"
if ! ls kubernetes_*.dsc >/dev/null 2>&1; then
  # apt-get source needs a deb-src entry; derive one from the existing deb entries once.
  if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        | as_root tee /etc/apt/sources.list.d/passops-src.sources >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
        | as_root tee /etc/apt/sources.list.d/passops-src.list >/dev/null
    else
      die "no apt sources found to derive a deb-src entry from"
    fi
    APT_UPDATED=0
  fi
  apt_update
  # Unsandboxed-download warning is noise when run as root.
  apt-get source --download-only kubernetes 2>&1 | grep -v 'Download is performed unsandboxed' || true
  ls kubernetes_*.dsc >/dev/null 2>&1 || die "apt-get source kubernetes failed (is deb-src enabled for bookworm?)"
fi
DSC=$(ls kubernetes_*.dsc | sort -V | tail -1)
DEB_VERSION=$(sed -n 's/^Version: //p' "$DSC")
case "$DEB_VERSION" in
  *1.20.2*) ;;
  *) die "Debian's kubernetes source is $DEB_VERSION, not 1.20.2 (this recipe is for bookworm)" ;;
esac
if [ ! -f k8s/.passops-extracted ]; then
  rm -rf k8s
  dpkg-source -x "$DSC" k8s >/dev/null
  touch k8s/.passops-extracted
fi
# Source fixes, idempotent, so a recipe change applies them to an existing tree.
# Fix 1: vendored reflect2 v1.0.1 crashes at run time on Go >= 1.18; swap in Debian's v1.0.2.
( cd k8s/vendor/github.com/modern-go/reflect2 && rm -f ./*.go ./*.s && cp "$REFLECT2"/*.go "$REFLECT2"/*.s . )
# Fix 5: on Go >= 1.16 the OpenAPI type validator takes "" for null, so a custom resource with an
# empty string field is rejected ("must be of type string: null"). Upstream's fix, kube-openapi
# PR 230 (kubernetes issue 99804, fixed in 1.21): drop the zero-value test, keep the nil test.
for f in k8s/vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go k8s/vendor/github.com/go-openapi/validate/type.go; do
  sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$f"
  ! grep -q 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data))' "$f" || die "fix 5 did not apply to $f"
done

export PATH=/usr/lib/go-1.19/bin:$PATH GOCACHE=$CACHE/gocache GOPROXY=off GOFLAGS= HOME=$CACHE/home \
  GOTOOLCHAIN=local
mkdir -p "$HOME"
# Fix 3: pkg/generated/openapi is not in the tarball; generate it (needs rsync).
if [ ! -f k8s/pkg/generated/openapi/zz_generated.openapi.go ]; then
  echo "build-kube-apiserver: make gen_openapi"
  ( cd k8s && make gen_openapi >"$CACHE/gen_openapi.log" 2>&1 ) \
    || { tail -30 "$CACHE/gen_openapi.log" >&2; die "make gen_openapi failed, see $CACHE/gen_openapi.log"; }
fi

# Fix 2: Kubernetes 1.20 builds in GOPATH mode (module mode fails: "updates to go.mod needed").
mkdir -p "$CACHE/gopath/src/k8s.io"
ln -sfn "$SRC/k8s" "$CACHE/gopath/src/k8s.io/kubernetes"
cd "$CACHE/gopath/src/k8s.io/kubernetes"
export GOPATH=$CACHE/gopath GO111MODULE=off CGO_ENABLED=0
# Fix 4: no git metadata in a source package; set the version the server reports.
BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS="-s -w"
for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20"
  LDFLAGS="$LDFLAGS -X $p.gitCommit=debian-$DEB_VERSION -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
done
for c in "${CMDS[@]}"; do
  if built "$c"; then continue; fi
  echo "build-kube-apiserver: go build $c (a few minutes)"
  t0=$SECONDS
  rm -f "$BIN/$c.stamp"
  "$GO" build -tags selinux,notest -ldflags "$LDFLAGS" -o "$BIN/$c.tmp" "./cmd/$c"
  mv -f "$BIN/$c.tmp" "$BIN/$c"
  {
    echo "command=$c"
    echo "recipe=$RECIPE"
    echo "version=v$KUBE_VERSION"
    echo "debian_source=$DEB_VERSION"
    echo "go=$("$GO" version)"
    echo "built_at=$BUILD_DATE"
    echo "build_seconds=$((SECONDS - t0))"
    echo "sha256=$(sha256sum "$BIN/$c" | cut -d' ' -f1)"
  } >"$BIN/$c.stamp.tmp"
  mv -f "$BIN/$c.stamp.tmp" "$BIN/$c.stamp"
done

# The Go build cache is ~1.3 GB and only speeds up rebuilds, which a cached binary makes rare.
rm -rf "$CACHE/gocache"
if [ "$PRUNE_SOURCE" = 1 ]; then
  chmod -R u+w "$CACHE/gopath" 2>/dev/null || true
  rm -rf "$SRC/k8s" "$CACHE/gopath"
fi
"$BIN/kube-apiserver" --version
echo "build-kube-apiserver: done in $((SECONDS - START)) s; cache $CACHE ($(du -sh "$CACHE" | cut -f1))"
