#!/usr/bin/env bash
# `sudo npm run setup:host`: makes this Debian/Ubuntu machine a CRIU lab host exactly as
# cloud-init makes an EC2 instance one, by running the same cloud-init/setup-lab.sh.
#
#   sudo npm run setup:host -- [--user NAME] [--auto-stop-minutes N]
#        [--criu-tarball URL|PATH --criu-sha256 HEX |
#         --criu-git REPO --criu-version TAG --criu-commit SHA] [--dry-run]
#
# Defaults: --user ubuntu (created if missing, with passwordless sudo); --auto-stop-minutes 0
# (this is your machine: never power it off); CRIU from its release tarball in Debian's
# source archive, fetched and sha256-checked by scripts/fetch-criu-source.sh. Where Debian's
# archive cannot be used (Ubuntu has no debian-archive-keyring; jammy's lacks the keys of
# current Debian releases), CRIU is built from the pinned git source that EC2 uses: the tag
# and commit of Pulumi.yaml's criuVersion/criuCommit defaults, from CRIU's GitHub repository.
# --dry-run prints the set-up command and runs nothing.
# Exit codes as setup-lab.sh: 0 ok, 1 lab broken, 2 usage, 3 could not fetch/install.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly ROOT
# What fetch-criu-source.sh needs to use Debian's archive (tests move it).
readonly KEYRING="${CRIU_LAB_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
export CRIU_LAB_DEBIAN_KEYRING="$KEYRING"
# The repository EC2 builds from (cloud-init/userData.ts DEFAULT_CRIU_REPOSITORY; tests move
# it to a local one).
readonly GIT_REPOSITORY="${CRIU_LAB_GIT_REPOSITORY:-https://github.com/checkpoint-restore/criu.git}"
DRY_RUN=false

usage() {
  echo "setup-host: $1" >&2
  exit 2
}

say() {
  echo "setup-host: $*" >&2
}

check_host() {
  [ "$(id -u)" -eq 0 ] || usage "must run as root: sudo npm run setup:host"
  command -v apt-get >/dev/null ||
    usage "this sets up Debian or Ubuntu hosts (apt-get not found)"
}

# cloud images have sudo; a minimal Debian may not, and the lab's steps use it.
ensure_sudo() {
  command -v sudo >/dev/null && return 0
  # needrestart (Ubuntu) must not restart services from under the set-up (install-criu.sh).
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l
  apt-get update -q && apt-get install -y -q --no-install-recommends sudo
}

# A default of Pulumi.yaml's config schema (KEY's `default:`), or its override from the
# environment (CRIU_LAB_GIT_VERSION, CRIU_LAB_GIT_COMMIT: tests, with a local repository).
pinned() {
  local key="$1" override="$2"
  if [ -n "$override" ]; then
    echo "$override"
    return 0
  fi
  awk -v key="  $key:" '$0 == key { found = 1; next } found && $1 == "default:" { print $2; exit }' \
    "$ROOT/Pulumi.yaml"
}

# Prints the --criu-* flags of the default source, one per line.
default_source() {
  local fetched sha path
  if [ ! -r "$KEYRING" ]; then
    say "no Debian archive keyring at $KEYRING (Ubuntu has none), so Debian's archive cannot be used"
  elif fetched="$(bash "$ROOT/scripts/fetch-criu-source.sh")"; then
    read -r sha path <<<"$fetched"
    printf '%s\n' --criu-tarball "$path" --criu-sha256 "$sha"
    return 0
  else
    say "Debian's archive could not be used (its keys, or the network; see ${CRIU_LAB_CRIU_CACHE:-$ROOT/.cache/criu}/fetch.log)"
  fi
  local version commit
  version="$(pinned criuVersion "${CRIU_LAB_GIT_VERSION:-}")"
  commit="$(pinned criuCommit "${CRIU_LAB_GIT_COMMIT:-}")"
  if [ -z "$version" ] || [ -z "$commit" ]; then
    usage "no criuVersion/criuCommit default in $ROOT/Pulumi.yaml"
  fi
  say "building CRIU from the pinned git source that EC2 uses: $GIT_REPOSITORY tag $version (commit $commit)"
  printf '%s\n' --criu-git "$GIT_REPOSITORY" --criu-version "$version" --criu-commit "$commit"
}

# setup-lab.sh parses and validates the flags (one parser for both paths); this wrapper only
# puts its defaults first, so that flags given later override them.
main() {
  local -a args=() source=()
  local arg given=false out
  for arg in "$@"; do
    case "$arg" in
      --dry-run) DRY_RUN=true ;;
      --criu-*)
        given=true
        args+=("$arg")
        ;;
      *) args+=("$arg") ;;
    esac
  done
  check_host
  if [ "$given" = false ]; then
    out="$(default_source)" || exit $?
    mapfile -t source <<<"$out"
  fi
  local -a command=(bash "$ROOT/cloud-init/setup-lab.sh" --user ubuntu --auto-stop-minutes 0
    "${source[@]}" "${args[@]}")
  if [ "$DRY_RUN" = true ]; then
    printf '%q ' "${command[@]}"
    echo
    return 0
  fi
  ensure_sudo
  exec "${command[@]}"
}

main "$@"
