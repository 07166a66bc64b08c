#!/usr/bin/env bash
# `sudo npm run setup:host`: makes this Debian/Ubuntu machine a CRIU lab host exactly as
# cloud-init makes an EC2 instance one, by running the same cloud-init/setup-lab.sh.
#
#   sudo npm run setup:host -- [--user NAME] [--auto-stop-minutes N]
#        [--criu-tarball URL|PATH --criu-sha256 HEX |
#         --criu-git REPO --criu-version TAG --criu-commit SHA]
#
# Defaults: --user ubuntu (created if missing, with passwordless sudo); --auto-stop-minutes 0
# (this is your machine: never power it off); CRIU from its release tarball in Debian's
# source archive, fetched and sha256-checked by scripts/fetch-criu-source.sh.
# Exit codes as setup-lab.sh: 0 ok, 1 lab broken, 2 usage, 3 could not fetch/install.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
readonly ROOT
LAB_USER=ubuntu
AUTO_STOP=0
SOURCE_ARGS=()

usage() {
  echo "setup-host: $1" >&2
  sed -n '5,7p' "$0" | sed 's/^#  */usage: /;2,$s/^usage: /       /' >&2
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage "$1 needs a value"
    case "$1" in
      --user) LAB_USER="$2" ;;
      --auto-stop-minutes) AUTO_STOP="$2" ;;
      --criu-tarball | --criu-sha256 | --criu-git | --criu-version | --criu-commit)
        SOURCE_ARGS+=("$1" "$2") ;;
      *) usage "unknown argument '$1'" ;;
    esac
    shift 2
  done
}

check_host() {
  [ "$(id -u)" -eq 0 ] || usage "must run as root: sudo npm run setup:host"
  command -v apt-get >/dev/null ||
    usage "this sets up Debian or Ubuntu hosts (apt-get not found)"
}

# cloud images have sudo; a minimal Debian may not, and the lab's steps use it.
ensure_sudo() {
  command -v sudo >/dev/null && return 0
  DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sudo
}

default_source() {
  [ "${#SOURCE_ARGS[@]}" -eq 0 ] || return 0
  local line sha path
  line="$(bash "$ROOT/scripts/fetch-criu-source.sh")"
  read -r sha path <<<"$line"
  SOURCE_ARGS=(--criu-tarball "$path" --criu-sha256 "$sha")
}

main() {
  parse_args "$@"
  check_host
  ensure_sudo
  default_source
  exec bash "$ROOT/cloud-init/setup-lab.sh" --user "$LAB_USER" --auto-stop-minutes "$AUTO_STOP" \
    "${SOURCE_ARGS[@]}"
}

main "$@"
