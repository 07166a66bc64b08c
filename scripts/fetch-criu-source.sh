#!/usr/bin/env bash
# Downloads CRIU's release source (the .orig.tar.xz of Debian's criu source package) into
# .cache/criu/ and checks it against a pinned sha256. Debian's archive is the one place on
# this project's machines that serves CRIU's source (see docs/design.md "Facts that
# shape the code"). A private apt state dir is used so the system's apt sources stay untouched.
#
# Usage: scripts/fetch-criu-source.sh [--cache-dir DIR]
# Prints one line on stdout, "<sha256>  <path>" (sha256sum format); progress goes to stderr
# and to <cache-dir>/fetch.log. Idempotent: a verified tarball already in the cache is reused.
# Exit codes (docs/design.md "Contracts"): 0 ok, 2 usage, 3 the archive could not be used (no
# Debian keyring, as on Ubuntu, or keys too old to check it), could not be reached, or had no match.
set -euo pipefail

# suite, version, sha256 of criu_<version>.orig.tar.xz. Only v4.2 and later: older CRIU hangs
# on Ubuntu 24.04 arm64 and fails with sockets on kernels >= 6.16 (install-criu.sh's
# FLOOR_WHY), so trixie's 4.1.1 is no fallback.
readonly RELEASES=(
  "sid 4.2.1 29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9"
)
# Debian's archive keyring (Ubuntu lacks it; tests move it with CRIU_LAB_DEBIAN_KEYRING).
readonly KEYRING="${CRIU_LAB_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"

# The cache (tests and setup-host move it with CRIU_LAB_CRIU_CACHE).
CACHE_DIR="${CRIU_LAB_CRIU_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache/criu}"
LOG=""

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --cache-dir)
        [ $# -ge 2 ] || usage "--cache-dir needs a directory"
        CACHE_DIR="$2"
        shift 2
        ;;
      -h | --help)
        sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      *) usage "unknown argument '$1'" ;;
    esac
  done
}

usage() {
  echo "fetch-criu-source: $1 (usage: fetch-criu-source.sh [--cache-dir DIR])" >&2
  exit 2
}

say() {
  echo "fetch-criu-source: $*" >&2
  echo "$(date -u +%FT%TZ) $*" >>"$LOG"
}

prepare() {
  mkdir -p "$CACHE_DIR"
  CACHE_DIR="$(cd "$CACHE_DIR" && pwd)"
  LOG="$CACHE_DIR/fetch.log"
  : >>"$LOG"
  if [ ! -r "$KEYRING" ]; then
    say "missing $KEYRING (apt-get install debian-archive-keyring); log: $LOG"
    exit 3
  fi
}

sha256_of() {
  sha256sum "$1" | cut -d' ' -f1
}

# Prints the cached tarball of a release if it is there and verified.
cached() {
  local version="$1" sha="$2" file="$CACHE_DIR/criu_$1.orig.tar.xz"
  [ -f "$file" ] && [ "$(sha256_of "$file")" = "$sha" ] || return 1
  say "criu $version source already in the cache, verified"
  echo "$sha  $file"
}

# Downloads one suite's source package with a private apt configuration, keeping only the
# verified .orig.tar.xz (apt-get exits non-zero on the missing .debian.tar.xz: expected).
download() {
  local suite="$1" version="$2" sha="$3"
  local apt_dir="$CACHE_DIR/apt-$suite" file="$CACHE_DIR/criu_$version.orig.tar.xz"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
  echo "deb-src [signed-by=$KEYRING] http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
  local -a opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Acquire::Retries=3
  )
  say "downloading criu $version source from Debian $suite (log: $LOG)"
  if ! apt-get "${opts[@]}" update >>"$LOG" 2>&1; then
    say "apt-get update for $suite failed"
    return 1
  fi
  (cd "$apt_dir/dl" && apt-get "${opts[@]}" source --download-only criu >>"$LOG" 2>&1) || true
  local got="$apt_dir/dl/criu_$version.orig.tar.xz"
  if [ ! -f "$got" ]; then
    say "Debian $suite did not serve criu_$version.orig.tar.xz"
    return 1
  fi
  local actual
  actual="$(sha256_of "$got")"
  if [ "$actual" != "$sha" ]; then
    say "criu_$version.orig.tar.xz from $suite has sha256 $actual, expected $sha: refused"
    rm -f "$got"
    return 1
  fi
  mv -f "$got" "$file"
  rm -rf "$apt_dir/dl"
  say "criu $version source verified (sha256 $sha)"
  echo "$sha  $file"
}

main() {
  parse_args "$@"
  prepare
  local release suite version sha
  for release in "${RELEASES[@]}"; do
    read -r suite version sha <<<"$release"
    cached "$version" "$sha" && return 0
  done
  for release in "${RELEASES[@]}"; do
    read -r suite version sha <<<"$release"
    download "$suite" "$version" "$sha" && return 0
  done
  say "no CRIU release source could be fetched; see $LOG"
  exit 3
}

main "$@"
