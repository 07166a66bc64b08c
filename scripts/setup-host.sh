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

usage() {
  echo "setup-host: $1" >&2
  exit 2
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

# setup-lab.sh parses and validates the flags (one parser for both paths); this wrapper only
# puts its defaults first, so that flags given later override them.
main() {
  check_host
  ensure_sudo
  local defaults=(--user ubuntu --auto-stop-minutes 0) arg
  for arg in "$@"; do
    case "$arg" in --criu-*) exec bash "$ROOT/cloud-init/setup-lab.sh" "${defaults[@]}" "$@" ;; esac
  done
  local fetched sha path
  fetched="$(bash "$ROOT/scripts/fetch-criu-source.sh")"
  read -r sha path <<<"$fetched"
  exec bash "$ROOT/cloud-init/setup-lab.sh" "${defaults[@]}" \
    --criu-tarball "$path" --criu-sha256 "$sha" "$@"
}

main "$@"
