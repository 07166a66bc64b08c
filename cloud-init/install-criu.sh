#!/usr/bin/env bash
# Builds CRIU from pinned source and installs `criu`, `criu-ns` and `crit` (no man pages).
#
#   install-criu.sh --tarball URL|PATH --sha256 HEX
#   install-criu.sh --git REPOSITORY --version TAG --commit SHA
#       [--prefix /usr/local] [--state-dir /var/lib/criu-lab] [--log-dir /var/log/criu-lab]
#
# Installs PREFIX/sbin/criu, PREFIX/sbin/criu-ns and PREFIX/bin/crit (the last two run with
# /usr/bin/python3, which has python3-protobuf) and crit's Python packages in
# PREFIX/lib/criu-lab/python, and records what it installed in STATE_DIR/install.json. Everything is built and checked in a temporary
# directory first and moved into place only when `criu --version` and `crit --version` work,
# so a failure leaves nothing half-installed on PATH. A second run with the same source does
# nothing. CRIU's `make install` would pip-install crit and build man pages (asciidoc); the
# lab needs neither (docs/design.md "Facts that shape the code"). It does install criu-ns, as
# CRIU's `make install` does (criu/Makefile): the lab guide restores a process whose PID is
# taken with it. Its man page is asciidoc, which this build does not install: `criu-ns` with
# no arguments prints its usage.
#
# Exit codes (docs/design.md "Contracts"): 0 installed, or already; 1 the build or the installed
# binaries failed; 2 usage or bad input, including a sha256 or commit that does not match;
# 3 a dependency or the source could not be fetched. The log is LOG_DIR/install.log.
set -euo pipefail

# Build dependencies from CRIU's installation docs (criu.org/Installation and the release's
# criu/Makefile.packages, contrib/dependencies/apt-packages.sh), minus docs and test tools.
# libnet1-dev is the real package behind the virtual libnet-dev on Debian and Ubuntu.
# Then what the lab itself runs: iproute2 (criu-lab link, the auto-stop), zstd (checkpoint
# export and the backup scenario compress with it where installed, else gzip).
readonly BUILD_PACKAGES=(
  build-essential pkg-config git ca-certificates curl xz-utils python3 python3-protobuf
  libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libnl-3-dev libnet1-dev libcap-dev uuid-dev libbsd-dev libgnutls28-dev libnftables-dev
  iproute2 zstd
)
readonly PYTHON=/usr/bin/python3
# Seconds to wait for another apt to release the package lists lock (first boot on Ubuntu).
readonly APT_LISTS_WAIT=600
# The oldest CRIU the lab accepts. Before v4.2, CRIU hangs on Ubuntu 24.04 arm64 (Ubuntu's gcc
# signs return addresses in the code CRIU injects: checkpoint-restore/criu#2709, fixed in v4.2
# by dcee5bd6f) and cannot dump a process with a socket on kernels >= 6.16 (criu#2705, #2804).
readonly FLOOR_MAJOR=4 FLOOR_MINOR=2
readonly FLOOR_WHY="the lab needs CRIU v$FLOOR_MAJOR.$FLOOR_MINOR or later: older versions hang on Ubuntu 24.04 arm64 (checkpoint-restore/criu#2709, fixed in v4.2) and cannot dump processes with sockets on kernels >= 6.16 (criu#2705, criu#2804)"

SOURCE_KIND=""
TARBALL="" SHA256=""
GIT_REPO="" GIT_VERSION="" GIT_COMMIT=""
PREFIX=/usr/local
STATE_DIR=/var/lib/criu-lab
LOG_DIR=/var/log/criu-lab
LOG=""
WORK=""

usage() {
  echo "install-criu: $1" >&2
  echo "usage: install-criu.sh (--tarball URL|PATH --sha256 HEX | --git REPO --version TAG --commit SHA) [--prefix DIR] [--state-dir DIR] [--log-dir DIR]" >&2
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage "$1 needs a value"
    case "$1" in
      --tarball) TARBALL="$2" ;;
      --sha256) SHA256="$2" ;;
      --git) GIT_REPO="$2" ;;
      --version) GIT_VERSION="$2" ;;
      --commit) GIT_COMMIT="$2" ;;
      --prefix) PREFIX="$2" ;;
      --state-dir) STATE_DIR="$2" ;;
      --log-dir) LOG_DIR="$2" ;;
      *) usage "unknown argument '$1'" ;;
    esac
    shift 2
  done
}

# Prints "MAJOR MINOR" of a version such as v4.1.1, 4.2 or criu_4.2.1.orig.tar.xz; nothing if
# the text names no version.
version_of() {
  [[ "$1" =~ ^(criu[-_])?v?([0-9]+)\.([0-9]+)([.][0-9]+)?($|[.-]) ]] || return 0
  echo "${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"
}

# True if VERSION (as version_of reads it) is older than the floor.
below_floor() {
  local major minor
  read -r major minor <<<"$(version_of "$1")"
  [ -n "$major" ] || return 1
  ((major < FLOOR_MAJOR || (major == FLOOR_MAJOR && minor < FLOOR_MINOR)))
}

# The version of a source tree, from CRIU's own Makefile.versions (empty if it has none).
tree_version() {
  local f="$1/Makefile.versions"
  [ -f "$f" ] || return 0
  awk '/^CRIU_VERSION_(MAJOR|MINOR|SUBLEVEL)[[:space:]]*:=/ { v = v (v == "" ? "" : ".") $3 } END { print v }' "$f"
}

validate_args() {
  if [ -n "$TARBALL" ] && [ -n "$GIT_REPO" ]; then
    usage "give either --tarball or --git, not both"
  elif [ -n "$TARBALL" ]; then
    SOURCE_KIND=tarball
    [[ "$TARBALL" =~ ^(https?://|/)[^[:space:]\"\\]+$ ]] ||
      usage "--tarball '$TARBALL': expected an http(s):// URL or an absolute path"
    [[ "$SHA256" =~ ^[0-9a-f]{64}$ ]] ||
      usage "--sha256 '$SHA256': expected 64 lowercase hex characters (required with --tarball)"
    # A release tarball's name usually says its version (criu-4.1.1.tar.gz, v4.1.1.tar.gz,
    # criu_4.1.1.orig.tar.xz): refuse an old one before downloading it. The source tree's
    # Makefile.versions is checked again after unpacking, and the built criu's version last.
    ! below_floor "${TARBALL##*/}" ||
      usage "--tarball '$TARBALL' is CRIU ${TARBALL##*/}: refused (nothing installed): $FLOOR_WHY"
  elif [ -n "$GIT_REPO" ]; then
    SOURCE_KIND=git
    [[ "$GIT_REPO" =~ ^(https?://|/|file://)[^[:space:]\"\\]+$ ]] ||
      usage "--git '$GIT_REPO': expected an http(s):// URL or an absolute path"
    [[ "$GIT_VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
      usage "--version '$GIT_VERSION': expected a tag such as v4.2 (required with --git)"
    [[ "$GIT_COMMIT" =~ ^[0-9a-f]{40}$ ]] ||
      usage "--commit '$GIT_COMMIT': expected a full 40-character hex commit id (required with --git)"
    ! below_floor "$GIT_VERSION" ||
      usage "--version '$GIT_VERSION': refused (nothing installed): $FLOOR_WHY"
  else
    usage "no CRIU source: give --tarball and --sha256, or --git, --version and --commit"
  fi
  for dir in "$PREFIX" "$STATE_DIR" "$LOG_DIR"; do
    [[ "$dir" =~ ^/[^[:space:]\"\\]*$ ]] || usage "'$dir': directories must be absolute paths"
  done
}

# What identifies an installation: a second run with the same id is a no-op.
source_id() {
  if [ "$SOURCE_KIND" = tarball ]; then
    echo "tarball:$SHA256"
  else
    echo "git:$GIT_VERSION@$GIT_COMMIT"
  fi
}

say() {
  echo "install-criu: $*"
  echo "$(date -u +%FT%TZ) $*" >>"$LOG"
}

# Stops with a message naming the failed step and the log, and the given exit code.
fail() {
  local code="$1"
  shift
  say "ERROR: $*"
  echo "install-criu: see $LOG" >&2
  exit "$code"
}

setup_logging() {
  mkdir -p "$LOG_DIR" "$STATE_DIR"
  # Root's alone: the lab keeps checkpoint images (a process's memory) under it.
  chmod 700 "$LOG_DIR"
  LOG="$LOG_DIR/install.log"
  : >>"$LOG"
  say "--- install-criu $(source_id) prefix=$PREFIX"
  # One installer at a time: cloud-init and a user may both run it.
  exec 9>"$STATE_DIR/install.lock"
  flock 9
}

# Says why the installed CRIU is not reused; the caller then builds.
not_reused() {
  say "not reusing the installed CRIU: $*; building"
}

# Whether the installation the record describes can be used as it is: the same source, every
# binary present, criu reporting the recorded version, and `criu check` passing on this kernel.
# The last matters for a build made elsewhere: the Debian 13 VM image has CRIU built in its
# tree, in a chroot on the build host's kernel (docs/local.md, `--criu-build`), and the guest
# that boots it runs its own. Anything off is said in the log.
already_installed() {
  local record="$STATE_DIR/install.json" bin recorded version
  [ -f "$record" ] || return 1
  # An installation from before criu-ns was installed gets it on the next run.
  for bin in "$PREFIX/sbin/criu" "$PREFIX/bin/crit" "$PREFIX/sbin/criu-ns"; do
    [ -x "$bin" ] || { not_reused "$bin is missing"; return 1; }
  done
  if ! grep -q "\"sourceId\": \"$(source_id)\"" "$record"; then
    not_reused "$record names another source than $(source_id)"
    return 1
  fi
  recorded="$(sed -n 's/^ *"criuVersion": "\([^"]*\)".*/\1/p' "$record")"
  version="$(criu_version "$PREFIX/sbin/criu")"
  if [ -z "$version" ] || [ "$version" != "$recorded" ]; then
    not_reused "$PREFIX/sbin/criu --version says '${version:-nothing}', $record says '$recorded'"
    return 1
  fi
  "$PREFIX/bin/crit" --version >>"$LOG" 2>&1 || { not_reused "$PREFIX/bin/crit does not run"; return 1; }
  if ! "$PREFIX/sbin/criu" check >>"$LOG" 2>&1; then
    not_reused "\`criu check\` fails on this kernel ($(uname -r))"
    return 1
  fi
  say "CRIU $version from $(source_id) is already installed in $PREFIX and passes criu check on $(uname -r): nothing to do"
}

missing_packages() {
  local pkg
  for pkg in "${BUILD_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

# The PID holding an fcntl lock on FILE, read from /proc/locks (which names a lock by its
# device and inode): nothing if FILE is not locked. Reading never takes the lock itself.
lock_holder() {
  local dev ino
  read -r dev ino < <(stat -c '%d %i' "$1" 2>/dev/null) || return 0
  local id
  id="$(printf '%02x:%02x:%d' $(((dev >> 8) & 0xfff)) $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) "$ino")"
  awk -v id="$id" '$2 != "->" && $6 == id { print $5; exit }' /proc/locks
}

# apt-get update fails at once while another apt holds the package lists lock (on Ubuntu's
# first boot apt-daily and unattended-upgrades do), and DPkg::Lock::Timeout covers only the
# dpkg lock: wait for the lists lock, up to SECONDS, saying who holds it.
wait_for_apt_lists() {
  local limit="$1" lists lock holder waited=0
  eval "$(apt-config shell lists Dir::State::Lists/d)"
  lock="${lists:-/var/lib/apt/lists/}lock"
  while holder="$(lock_holder "$lock")" && [ -n "$holder" ]; do
    if [ "$waited" -ge "$limit" ]; then
      say "apt's package lists lock $lock is still held by PID $holder after $limit s"
      return 1
    fi
    if [ "$waited" -eq 0 ]; then
      say "waiting up to $limit s for PID $holder ($(cat "/proc/$holder/comm" 2>/dev/null || echo gone)) to release apt's package lists lock $lock"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# apt with retries and a wait for the dpkg lock (first boot runs apt jobs of its own), and
# needrestart kept from restarting services mid-setup: on Ubuntu 24.04 a newer libc pulled by
# build-essential made it restart cloud-final.service (canonical/cloud-init#5109).
apt_retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    if [ "$1" = update ]; then wait_for_apt_lists "$APT_LISTS_WAIT" || return 1; fi
    if DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l \
      apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@" >>"$LOG" 2>&1; then
      return 0
    fi
    say "apt-get $1 failed (attempt $attempt of 5)"
    sleep $((attempt * 5))
  done
  return 1
}

install_build_deps() {
  local -a missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    say "build dependencies already installed"
    return 0
  fi
  command -v apt-get >/dev/null || fail 3 "missing packages ${missing[*]} and no apt-get to install them"
  say "installing build dependencies: ${missing[*]}"
  apt_retry update || fail 3 "apt-get update failed"
  apt_retry install -y --no-install-recommends "${missing[@]}" ||
    fail 3 "apt-get install failed for: ${missing[*]}"
  mapfile -t missing < <(missing_packages)
  [ "${#missing[@]}" -eq 0 ] || fail 3 "still missing after apt-get install: ${missing[*]}"
}

make_workdir() {
  WORK="$(mktemp -d /tmp/install-criu.XXXXXX)"
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$WORK/src"
}

fetch_tarball() {
  local file="$WORK/criu.tar"
  if [[ "$TARBALL" == /* ]]; then
    [ -f "$TARBALL" ] || fail 2 "--tarball $TARBALL: no such file"
    cp "$TARBALL" "$file"
  else
    say "downloading $TARBALL"
    curl -fsSL --retry 5 --retry-delay 3 -o "$file" "$TARBALL" >>"$LOG" 2>&1 ||
      fail 3 "could not download $TARBALL"
  fi
  local actual
  actual="$(sha256sum "$file" | cut -d' ' -f1)"
  [ "$actual" = "$SHA256" ] ||
    fail 2 "sha256 mismatch for $TARBALL: got $actual, expected $SHA256 (nothing installed)"
  say "sha256 verified: $SHA256"
  tar -xf "$file" -C "$WORK/src" --strip-components=1 >>"$LOG" 2>&1 ||
    fail 2 "$TARBALL is not a readable tar archive"
  if [ ! -f "$WORK/src/Makefile" ] || [ ! -d "$WORK/src/criu" ]; then
    fail 2 "$TARBALL does not hold CRIU's source (no Makefile and criu/ at its top)"
  fi
  check_tree_version
}

# Refuses an old source before spending minutes on its build.
check_tree_version() {
  local version
  version="$(tree_version "$WORK/src")"
  if [ -n "$version" ] && below_floor "$version"; then
    fail 2 "the source is CRIU $version: refused (nothing installed): $FLOOR_WHY"
  fi
}

fetch_git() {
  say "cloning $GIT_REPO at $GIT_VERSION"
  git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$GIT_VERSION" \
    "$GIT_REPO" "$WORK/src" >>"$LOG" 2>&1 ||
    fail 3 "could not clone tag $GIT_VERSION of $GIT_REPO"
  local actual
  actual="$(git -C "$WORK/src" rev-parse 'HEAD^{commit}')"
  [ "$actual" = "$GIT_COMMIT" ] ||
    fail 2 "tag $GIT_VERSION of $GIT_REPO is commit $actual, expected $GIT_COMMIT: refused (nothing installed)"
  say "commit verified: $GIT_VERSION = $GIT_COMMIT"
  check_tree_version
}

build() {
  say "building CRIU with $(nproc) jobs (log: $LOG)"
  local started=$SECONDS
  # PYTHON: the lib build runs a generator script; use the system python3, as crit will.
  make -C "$WORK/src" -j"$(nproc)" PYTHON="$PYTHON" criu crit >>"$LOG" 2>&1 ||
    fail 1 "make failed in $WORK/src; last lines: $(tail -n 5 "$LOG" | tr '\n' ' ')"
  say "built in $((SECONDS - started)) s"
}

criu_version() {
  "$1" --version 2>/dev/null | awk '/^Version:/ { print $2 }'
}

# Lays out the installation under WORK/stage exactly as it will be under PREFIX, and checks it.
stage() {
  local stage="$WORK/stage" pydir="$PREFIX/lib/criu-lab/python"
  mkdir -p "$stage/sbin" "$stage/bin" "$stage/python"
  install -m 0755 "$WORK/src/criu/criu" "$stage/sbin/criu"
  cp -r "$WORK/src/lib/pycriu" "$WORK/src/crit/crit" "$stage/python/"
  find "$stage/python" -name Makefile -delete
  # A Python launcher rather than `python3 -m crit`, so the caller's working directory can
  # never shadow the crit package.
  cat >"$stage/bin/crit" <<LAUNCHER
#!$PYTHON
# crit, CRIU's image tool, installed by criu-lab's install-criu.sh ($(source_id)).
import sys
sys.path.insert(0, "$pydir")
from crit.__main__ import main
sys.exit(main())
LAUNCHER
  chmod 0755 "$stage/bin/crit"
  # criu-ns (standard library Python) runs `criu` from PATH; the system python3 runs it, as crit.
  sed "1s|^#!.*|#!$PYTHON|" "$WORK/src/scripts/criu-ns" >"$stage/sbin/criu-ns"
  chmod 0755 "$stage/sbin/criu-ns"
  VERSION="$(criu_version "$stage/sbin/criu")"
  [ -n "$VERSION" ] || fail 1 "the built criu does not run: $stage/sbin/criu --version"
  ! below_floor "$VERSION" || fail 2 "the built criu is version $VERSION: refused (nothing installed): $FLOOR_WHY"
  PYTHONPATH="$stage/python" "$PYTHON" -c 'import pycriu, crit.__main__' >>"$LOG" 2>&1 ||
    fail 1 "the built crit does not import with $PYTHON (is python3-protobuf installed?)"
  say "staged CRIU $VERSION"
}

# Moves each piece into place with a rename, criu last: a failure before this step installs
# nothing, and a rename never leaves a partial file on PATH.
install_staged() {
  local stage="$WORK/stage" libdir="$PREFIX/lib/criu-lab"
  mkdir -p "$PREFIX/sbin" "$PREFIX/bin" "$libdir"
  rm -rf "$libdir/python.new" "$libdir/python.old"
  cp -r "$stage/python" "$libdir/python.new"
  if [ -d "$libdir/python" ]; then mv "$libdir/python" "$libdir/python.old"; fi
  mv "$libdir/python.new" "$libdir/python"
  rm -rf "$libdir/python.old"
  cp "$stage/bin/crit" "$PREFIX/bin/.crit.new" && mv -f "$PREFIX/bin/.crit.new" "$PREFIX/bin/crit"
  cp "$stage/sbin/criu-ns" "$PREFIX/sbin/.criu-ns.new" &&
    mv -f "$PREFIX/sbin/.criu-ns.new" "$PREFIX/sbin/criu-ns"
  cp "$stage/sbin/criu" "$PREFIX/sbin/.criu.new" && mv -f "$PREFIX/sbin/.criu.new" "$PREFIX/sbin/criu"
  "$PREFIX/bin/crit" --version >>"$LOG" 2>&1 || fail 1 "installed crit does not run: $PREFIX/bin/crit"
}

record() {
  local source_json
  if [ "$SOURCE_KIND" = tarball ]; then
    source_json="{\"kind\": \"tarball\", \"url\": \"$TARBALL\", \"sha256\": \"$SHA256\"}"
  else
    source_json="{\"kind\": \"git\", \"repository\": \"$GIT_REPO\", \"version\": \"$GIT_VERSION\", \"commit\": \"$GIT_COMMIT\"}"
  fi
  cat >"$STATE_DIR/install.json.new" <<JSON
{
  "criuVersion": "$VERSION",
  "sourceId": "$(source_id)",
  "source": $source_json,
  "criu": "$PREFIX/sbin/criu",
  "crit": "$PREFIX/bin/crit",
  "criuNs": "$PREFIX/sbin/criu-ns",
  "installedAt": "$(date -u +%FT%TZ)",
  "log": "$LOG"
}
JSON
  mv -f "$STATE_DIR/install.json.new" "$STATE_DIR/install.json"
  say "installed CRIU $VERSION: $PREFIX/sbin/criu, $PREFIX/sbin/criu-ns, $PREFIX/bin/crit (record: $STATE_DIR/install.json)"
}

main() {
  parse_args "$@"
  validate_args
  setup_logging
  if already_installed; then return 0; fi
  install_build_deps
  make_workdir
  if [ "$SOURCE_KIND" = tarball ]; then fetch_tarball; else fetch_git; fi
  build
  stage
  install_staged
  record
}

# Sourced by tests (to run one step), run otherwise.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
