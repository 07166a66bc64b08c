#!/usr/bin/env bash
# Makes this Debian/Ubuntu machine a CRIU lab host. cloud-init's runcmd runs it from
# /usr/local/lib/criu-lab (where the user-data wrote it and its sibling files), and
# `npm run setup:host` runs it from the repository's cloud-init/ folder, taking the host
# command and the lab's programs from host/ beside it: one code path.
#
#   setup-lab.sh --user NAME --auto-stop-minutes N
#                (--criu-tarball URL|PATH --criu-sha256 HEX |
#                 --criu-git REPO --criu-version TAG --criu-commit SHA)
#
# Steps: the lab files into /usr/local/lib/criu-lab and a `criu-lab` link in
# /usr/local/bin; the lab user (created if missing, passwordless sudo); ~USER/counter.py,
# trainer.py, game_server.py and game_client.py;
# the login message; the auto-stop timer (N > 0); CRIU via install-criu.sh (its packages
# include python3, iproute2 and zstd, which criu-lab and the auto-stop use); `criu-lab check`;
# the result in /var/lib/criu-lab/setup.json. Log: /var/log/criu-lab/setup.log.
# Exit codes (docs/design.md "Contracts"): 0 ok; 1 CRIU built but the lab does not work;
# 2 usage or bad input; 3 something could not be fetched or installed.
set -euo pipefail

readonly LAB_DIR=/usr/local/lib/criu-lab
readonly STATE_DIR=/var/lib/criu-lab
readonly LOG_DIR=/var/log/criu-lab
# The lab user's programs (a copy of each in ~USER): the counter, the training job, the game.
readonly LAB_PROGRAMS=(counter.py trainer.py game_server.py game_client.py)
# The set-up's own files (beside this script) and the host command's (in the repository's
# host/ folder); on the host all of them are in LAB_DIR together.
readonly SETUP_FILES=(setup-lab.sh install-criu.sh motd)
readonly HOST_FILES=(criu-lab "${LAB_PROGRAMS[@]}")
# The host command's modules (criu-lab is their launcher).
readonly LAB_PACKAGE=criu_lab
# The lab guide, for `criu-lab guide`: beside the lab files on a host (the archive or the
# user-data carries it), in the repository's docs/ for `npm run setup:host`.
readonly GUIDE_DIR=/usr/local/share/criu-lab
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly HOST_SOURCE="$HERE/../host"

LAB_USER="" AUTO_STOP=""
CRIU_ARGS=()
LOG="$LOG_DIR/setup.log"

usage() {
  echo "setup-lab: $1" >&2
  echo "usage: setup-lab.sh --user NAME --auto-stop-minutes N (--criu-tarball URL|PATH --criu-sha256 HEX | --criu-git REPO --criu-version TAG --criu-commit SHA)" >&2
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage "$1 needs a value"
    case "$1" in
      --user) LAB_USER="$2" ;;
      --auto-stop-minutes) AUTO_STOP="$2" ;;
      # install-criu.sh validates the source itself; its flags drop the "criu-" prefix.
      --criu-tarball | --criu-sha256 | --criu-git | --criu-version | --criu-commit)
        CRIU_ARGS+=("--${1#--criu-}" "$2") ;;
      *) usage "unknown argument '$1'" ;;
    esac
    shift 2
  done
  if ! [[ "$LAB_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || [ "$LAB_USER" = root ]; then
    usage "--user '$LAB_USER': expected a Linux user name other than root"
  fi
  [[ "$AUTO_STOP" =~ ^[0-9]+$ ]] ||
    usage "--auto-stop-minutes '$AUTO_STOP': expected a whole number of minutes (0 = never)"
  [ "${#CRIU_ARGS[@]}" -gt 0 ] || usage "no CRIU source given"
  [ "$(id -u)" -eq 0 ] || usage "must run as root"
}

say() {
  echo "setup-lab: $*"
  echo "$(date -u +%FT%TZ) $*" >>"$LOG"
}

setup_logging() {
  mkdir -p "$LOG_DIR" "$STATE_DIR"
  # Root's alone: the lab keeps checkpoint images (a process's memory) under it.
  chmod 700 "$LOG_DIR"
  : >>"$LOG"
  say "--- setup-lab user=$LAB_USER auto-stop=$AUTO_STOP"
}

fail() {
  local code="$1"
  shift
  say "ERROR: $*"
  record false "$*"
  echo "setup-lab: see $LOG" >&2
  exit "$code"
}

# Installs the file at PATH into LAB_DIR under its own name (0644 for motd, else 0755).
install_lab_file() {
  local source="$1" name
  name="$(basename "$1")"
  [ -f "$source" ] || fail 2 "missing lab file $source"
  install -m "$([ "$name" = motd ] && echo 0644 || echo 0755)" "$source" "$LAB_DIR/.$name.new"
  mv -f "$LAB_DIR/.$name.new" "$LAB_DIR/$name"
}

install_lab_files() {
  mkdir -p "$LAB_DIR"
  local name
  if [ "$HERE" != "$LAB_DIR" ]; then
    for name in "${SETUP_FILES[@]}"; do
      install_lab_file "$HERE/$name"
    done
    for name in "${HOST_FILES[@]}"; do
      install_lab_file "$HOST_SOURCE/$name"
    done
    # Replaced whole, so that a module removed from the lab does not linger on the host.
    [ -f "$HOST_SOURCE/$LAB_PACKAGE/__init__.py" ] ||
      fail 2 "missing lab package $HOST_SOURCE/$LAB_PACKAGE"
    rm -rf "${LAB_DIR:?}/.$LAB_PACKAGE.new"
    mkdir "$LAB_DIR/.$LAB_PACKAGE.new"
    # The modules and the tables they read: rules.json (the checks' rules `criu-lab judge`
    # reads; in the repository a link to contract/rules.json, whose content install copies)
    # and exercises.json.
    install -m 0644 "$HOST_SOURCE/$LAB_PACKAGE"/*.py "$HOST_SOURCE/$LAB_PACKAGE"/*.json \
      "$LAB_DIR/.$LAB_PACKAGE.new/"
    rm -rf "${LAB_DIR:?}/$LAB_PACKAGE"
    mv "$LAB_DIR/.$LAB_PACKAGE.new" "$LAB_DIR/$LAB_PACKAGE"
  fi
  # A link, so the launcher finds its package beside its real path.
  ln -sfn "$LAB_DIR/criu-lab" /usr/local/bin/criu-lab
  install_guide
  say "lab files in $LAB_DIR, criu-lab in /usr/local/bin, the guide in $GUIDE_DIR"
}

install_guide() {
  local guide="$HERE/lab-guide.md"
  [ -f "$guide" ] || guide="$HERE/../docs/lab-guide.md"
  [ -f "$guide" ] || fail 2 "missing the lab guide ($HERE/lab-guide.md or $HERE/../docs/lab-guide.md)"
  mkdir -p "$GUIDE_DIR"
  install -m 0644 "$guide" "$GUIDE_DIR/.lab-guide.md.new"
  mv -f "$GUIDE_DIR/.lab-guide.md.new" "$GUIDE_DIR/lab-guide.md"
}

ensure_user() {
  if ! id "$LAB_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$LAB_USER" >>"$LOG" 2>&1 ||
      fail 3 "could not create user $LAB_USER"
    say "created user $LAB_USER"
  fi
  # The lab's steps use sudo; cloud-init grants it to its users, a plain host may not.
  local rule="/etc/sudoers.d/90-criu-lab-$LAB_USER"
  echo "$LAB_USER ALL=(ALL) NOPASSWD:ALL" >"$rule.new"
  chmod 0440 "$rule.new"
  visudo -cqf "$rule.new" >>"$LOG" 2>&1 || fail 1 "sudoers rule for $LAB_USER does not validate"
  mv -f "$rule.new" "$rule"
}

install_programs() {
  local home group name
  home="$(getent passwd "$LAB_USER" | cut -d: -f6)"
  group="$(id -gn "$LAB_USER")"
  mkdir -p "$home"
  for name in "${LAB_PROGRAMS[@]}"; do
    install -o "$LAB_USER" -g "$group" -m 0755 "$LAB_DIR/$name" "$home/$name"
  done
  say "installed ${LAB_PROGRAMS[*]} in $home"
}

# Debian's and Ubuntu's pam_motd run /etc/update-motd.d at SSH login, in name order: 99 comes
# after Ubuntu's own (up to 98-*), so the lab's message is the last thing a learner reads.
# 60-criu-lab is the name of earlier set-ups.
install_motd() {
  mkdir -p /etc/update-motd.d
  rm -f /etc/update-motd.d/60-criu-lab
  printf '#!/bin/sh\ncat %s/motd\n' "$LAB_DIR" >/etc/update-motd.d/99-criu-lab
  chmod 0755 /etc/update-motd.d/99-criu-lab
}

install_autostop() {
  local unit=/etc/systemd/system/criu-lab-autostop
  if [ "$AUTO_STOP" -eq 0 ]; then
    if [ -f "$unit.timer" ]; then
      systemctl disable --now criu-lab-autostop.timer >>"$LOG" 2>&1 || true
      rm -f "$unit.timer" "$unit.service"
    fi
    say "auto-stop disabled"
    return 0
  fi
  cat >"$unit.service" <<UNIT
[Unit]
Description=criu-lab: power off after $AUTO_STOP minutes with no SSH session

[Service]
Type=oneshot
ExecStart=/usr/local/bin/criu-lab autostop --minutes $AUTO_STOP
UNIT
  cat >"$unit.timer" <<UNIT
[Unit]
Description=criu-lab: check every minute for SSH sessions (auto-stop)

[Timer]
OnBootSec=1min
OnUnitActiveSec=1min
AccuracySec=10s

[Install]
WantedBy=timers.target
UNIT
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >>"$LOG" 2>&1
    systemctl enable --now criu-lab-autostop.timer >>"$LOG" 2>&1 ||
      fail 3 "could not start criu-lab-autostop.timer"
    say "auto-stop: power off after $AUTO_STOP minutes with no SSH session"
  else
    say "auto-stop: units written, but systemd is not running here, so the timer is not started"
  fi
}

install_criu() {
  local code=0
  bash "$LAB_DIR/install-criu.sh" "${CRIU_ARGS[@]}" || code=$?
  [ "$code" -eq 0 ] || fail "$code" "install-criu.sh failed (exit $code, log $LOG_DIR/install.log)"
}

check_lab() {
  local out code=0
  out="$(/usr/local/bin/criu-lab check --json)" || code=$?
  echo "$out" >"$STATE_DIR/check.json"
  say "criu-lab check: $out"
  [ "$code" -eq 0 ] || fail "$code" "criu-lab check failed (exit $code)"
}

# setup.json: the lab's own record, read by `criu-lab status`.
record() {
  local ok="$1" error="${2:-}"
  error="${error//\\/\\\\}"
  error="${error//\"/\\\"}"
  error="${error//$'\n'/ }"
  printf '{"ok": %s, "user": "%s", "autoStopMinutes": %s, "finishedAt": "%s", "error": "%s"}\n' \
    "$ok" "$LAB_USER" "${AUTO_STOP:-0}" "$(date -u +%FT%TZ)" "$error" >"$STATE_DIR/setup.json"
}

main() {
  parse_args "$@"
  setup_logging
  install_lab_files
  ensure_user
  install_programs
  install_motd
  install_autostop
  install_criu
  check_lab
  record true
  say "the lab is ready: log in as $LAB_USER and try \`sudo criu-lab demo\`"
}

main "$@"
