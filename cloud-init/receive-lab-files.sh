#!/usr/bin/env bash
# How an EC2 lab host gets the lab's files. EC2 takes at most 16 KB of user-data,
# which the lab's files outgrew, so on EC2 the user-data carries only this script and the
# SHA-256 of the files as one tar archive, and `pulumi up` copies the archive over SSH with
# the host key pinned (components/labFiles.ts). Two steps, both as root:
#
#   receive-lab-files.sh wait --sha256 HEX --wait-seconds N -- SETUP_ARGS...
#       cloud-init's runcmd: waits up to N seconds for the archive, checks it against HEX
#       (from the user-data), unpacks it into /usr/local/lib/criu-lab and runs setup-lab.sh
#       from there with SETUP_ARGS: the same set-up as when the user-data carries the files.
#       If nothing arrives in time it says so, keeps its arguments and exits 3 (cloud-init
#       reports the error).
#   receive-lab-files.sh deliver --sha256 HEX FILE
#       `pulumi up`, over SSH with sudo, after copying FILE: root takes its own copy of FILE
#       into the incoming directory, checks it against HEX and renames it into place, so the
#       waiting step never sees a partial archive. If the waiting step already gave up, it
#       starts it again now, as the transient unit criu-lab-setup.service (which the
#       verification's cloud-init step then waits for).
#       Run again after a delivery `pulumi up` did not record (SSH dropped, Ctrl-C), FILE is
#       gone (that delivery removed it): the archive in place with HEX (and HEX unpacked, if
#       it was) is a success, anything else exit 2.
#
# Trust: FILE is written by the SSH user (who has sudo anyway, but so may any process running
# as that user). Root never runs or unpacks it where it was written: it copies it into a
# directory only root can write, and uses that copy only if its SHA-256 is the one the
# deployer put in the user-data.
#
# Exit codes (docs/design.md "Contracts"): 0 ok; 2 usage, or an archive that is not the deployer's;
# 3 no archive in time, or the set-up could not be started; else setup-lab.sh's own.
# CRIU_LAB_INCOMING overrides the incoming directory (tests).
set -euo pipefail

readonly LAB_DIR=/usr/local/lib/criu-lab
readonly INCOMING="${CRIU_LAB_INCOMING:-/var/lib/criu-lab/incoming}"
readonly ARCHIVE="$INCOMING/lab-files.tar"
# Written by `wait` when it gives up: its own arguments, NUL-separated, for `deliver`.
readonly GAVE_UP="$INCOMING/gave-up"
# Written by `deliver` when it started the set-up itself (read by the verification).
readonly RESUMED="$INCOMING/resumed"
# Written by `wait` once it unpacked the archive into LAB_DIR: the archive's SHA-256.
readonly UNPACKED="$INCOMING/unpacked"
readonly UNIT=criu-lab-setup

say() { echo "receive-lab-files: $*"; }

usage() {
  echo "receive-lab-files: $1" >&2
  echo "usage: receive-lab-files.sh wait --sha256 HEX --wait-seconds N -- SETUP_ARGS... | deliver --sha256 HEX FILE" >&2
  exit 2
}

check_sha256() {
  [[ "$1" =~ ^[0-9a-f]{64}$ ]] || usage "--sha256 '$1': expected 64 lowercase hex characters"
}

# Root's own directory; a lock serialises "give up" against "deliver", so that exactly one
# of them starts the set-up when the archive arrives just as the wait ends.
prepare_incoming() {
  [ "$(id -u)" -eq 0 ] || usage "must run as root"
  install -d -m 0700 -o root -g root "$INCOMING"
  exec 9>"$INCOMING/.lock"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

wait_for_archive() {
  local sha256="" wait_seconds=""
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    [ $# -ge 2 ] || usage "$1 needs a value"
    case "$1" in
      --sha256) sha256="$2" ;;
      --wait-seconds) wait_seconds="$2" ;;
      *) usage "unknown argument '$1'" ;;
    esac
    shift 2
  done
  [ "${1:-}" = -- ] || usage "wait: expected -- before setup-lab.sh's arguments"
  shift
  check_sha256 "$sha256"
  [[ "$wait_seconds" =~ ^[1-9][0-9]*$ ]] ||
    usage "--wait-seconds '$wait_seconds': expected a whole number of seconds >= 1"
  prepare_incoming

  local deadline=$((SECONDS + wait_seconds)) next_note=0
  while [ ! -f "$ARCHIVE" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      flock 9
      if [ ! -f "$ARCHIVE" ]; then
        printf '%s\0' wait --sha256 "$sha256" --wait-seconds "$wait_seconds" -- "$@" >"$GAVE_UP"
        echo "receive-lab-files: the lab's files did not arrive in $INCOMING within" \
          "${wait_seconds}s. \`pulumi up\` copies them over SSH once the instance answers;" \
          "run \`pulumi up\` again: the copy then starts the set-up itself ($UNIT.service)." >&2
        exit 3
      fi
      flock -u 9
    elif [ "$SECONDS" -ge "$next_note" ]; then
      say "waiting up to $((deadline - SECONDS))s for the lab's files (\`pulumi up\` copies them over SSH)"
      next_note=$((SECONDS + 60))
    fi
    sleep 2
  done
  rm -f "$GAVE_UP"

  local actual
  actual="$(sha256_of "$ARCHIVE")"
  if [ "$actual" != "$sha256" ]; then
    echo "receive-lab-files: $ARCHIVE has SHA-256 $actual, but the user-data expects $sha256;" \
      "not unpacking it" >&2
    exit 2
  fi
  mkdir -p "$LAB_DIR"
  # Owned by root whatever the archive says; modes as the archive has them (root's default).
  tar -x --no-same-owner --touch -f "$ARCHIVE" -C "$LAB_DIR"
  echo "$sha256" >"$UNPACKED"
  say "the lab's files ($sha256) are in $LAB_DIR; setting up"
  exec bash "$LAB_DIR/setup-lab.sh" "$@"
}

deliver() {
  local sha256="" file=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --sha256)
        [ $# -ge 2 ] || usage "--sha256 needs a value"
        sha256="$2"
        shift 2
        ;;
      -*) usage "unknown argument '$1'" ;;
      *)
        [ -z "$file" ] || usage "deliver takes one FILE"
        file="$1"
        shift
        ;;
    esac
  done
  check_sha256 "$sha256"
  [ -n "$file" ] || usage "deliver: no FILE given"
  prepare_incoming
  if [ -f "$file" ]; then
    take_archive "$sha256" "$file"
  else
    already_delivered "$sha256" "$file"
  fi
  resume_if_gave_up
}

# Root's own checked copy of FILE, renamed into place; FILE is removed once it is.
take_archive() {
  local sha256="$1" file="$2" copy="$INCOMING/.lab-files.tar.new" actual
  install -m 0600 -o root -g root "$file" "$copy"
  actual="$(sha256_of "$copy")"
  if [ "$actual" != "$sha256" ]; then
    rm -f "$copy"
    echo "receive-lab-files: $file has SHA-256 $actual, expected $sha256 (a partial or" \
      "changed copy); run \`pulumi up\` again to copy it again" >&2
    exit 2
  fi
  flock 9
  mv -f "$copy" "$ARCHIVE"
  rm -f "$file"
  say "the lab's files ($sha256) are on the host"
}

# No FILE: an unrecorded delivery removed it if the archive in place is the expected one.
already_delivered() {
  local sha256="$1" file="$2" actual unpacked
  flock 9
  if [ ! -f "$ARCHIVE" ]; then
    echo "receive-lab-files: deliver: $file is not a file, and no archive was delivered to" \
      "$INCOMING before: the copy was not made. Run \`pulumi up\` again (it copies the lab's" \
      "files first), or \`pulumi up --replace\` the copy step if it says there is nothing to do" >&2
    exit 2
  fi
  actual="$(sha256_of "$ARCHIVE")"
  if [ "$actual" != "$sha256" ]; then
    echo "receive-lab-files: deliver: $file is not a file, and the archive delivered before" \
      "($ARCHIVE) has SHA-256 $actual, not the expected $sha256: copy the lab's files again" \
      "(\`pulumi up --replace\` the copy step)" >&2
    exit 2
  fi
  unpacked="$(cat "$UNPACKED" 2>/dev/null || true)"
  if [ -n "$unpacked" ] && [ "$unpacked" != "$sha256" ]; then
    echo "receive-lab-files: deliver: the lab's files in $LAB_DIR were unpacked from an" \
      "archive with SHA-256 $unpacked, not the expected $sha256: this host needs a new instance" >&2
    exit 2
  fi
  say "the lab's files ($sha256) were already delivered${unpacked:+; unpacked into $LAB_DIR}"
}

# If the waiting step gave up before the archive came, the set-up starts now (as a unit).
resume_if_gave_up() {
  [ -f "$GAVE_UP" ] || return 0
  local args=()
  mapfile -d '' args <"$GAVE_UP"
  if ! systemd-run --unit="$UNIT" --collect --setenv=CRIU_LAB_INCOMING="$INCOMING" \
    --description="criu-lab set-up from the copied lab files" \
    bash "$(realpath "${BASH_SOURCE[0]}")" "${args[@]}"; then
    echo "receive-lab-files: could not start $UNIT.service" >&2
    exit 3
  fi
  rm -f "$GAVE_UP"
  : >"$RESUMED"
  say "cloud-init had given up waiting for them: the set-up runs now as $UNIT.service" \
    "(journalctl -u $UNIT; log /var/log/criu-lab/setup.log)"
}

main() {
  [ $# -gt 0 ] || usage "no step given"
  local step="$1"
  shift
  case "$step" in
    wait) wait_for_archive "$@" ;;
    deliver) deliver "$@" ;;
    *) usage "unknown step '$step' (expected wait or deliver)" ;;
  esac
}

main "$@"
