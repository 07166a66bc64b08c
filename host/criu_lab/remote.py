"""The destination of a migration: commands over one SSH master connection whose host key was
checked, files compared and copied there (criu-lab migrate, scenarios migration and backup)."""
import json
import os
import re
import shlex
import socket
import subprocess
import tempfile
import time

from .common import CRIT, CRIU, LOG_DIR, PASSED, stats_of
from .outcome import BROKEN, NOT_READY, LabError


class Remote:
    """Commands on the destination over one SSH master connection (host key checked, no TOFU:
    StrictHostKeyChecking=yes), as root: through `sudo -n` when USER is not root."""

    def __init__(self, user, host, port, identity, known_hosts):
        self.user, self.host, self.known_hosts = user, host, known_hosts
        self.control_dir = tempfile.mkdtemp(prefix="clmig-ssh-")  # a short path: socket names are limited
        self.ciphers = cipher_order(cpu_flags(), client_ciphers())
        self.ssh = ["ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", f"ControlPath={self.control_dir}/m"]
        if self.ciphers:
            self.ssh += ["-o", f"Ciphers={','.join(self.ciphers)}"]
        if identity:
            self.ssh += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        if known_hosts:
            self.ssh += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        self.target = f"{user}@{host}"
        self.sudo = "" if user == "root" else "sudo -n "
        self.connected = False

    def connect(self):
        """The master connection every later command shares (no handshake while the process is
        frozen). Its stderr goes to a file: a pipe would stay open in the backgrounded master."""
        if self.connected:
            return
        err_path = os.path.join(self.control_dir, "master.err")
        with open(err_path, "w") as err:
            p = subprocess.run([*self.ssh, "-o", "ControlMaster=yes", "-o", "ControlPersist=yes", "-N", "-f",
                                self.target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        with open(err_path) as f:
            p.stderr = f.read()
        self.raise_if_unreachable(p)
        self.connected = True

    def argv(self, script):
        """ssh argv running SCRIPT (shell text) as root on the destination."""
        # umask 077: what it creates there (images, logs) is root's alone, as on the source.
        return [*self.ssh, self.target, f"{self.sudo}sh -c {shlex.quote('umask 077; ' + script)}"]

    def run(self, script, timeout=120, **kw):
        p = subprocess.run(self.argv(script), capture_output=True, text=True, timeout=timeout, **kw)
        self.raise_if_unreachable(p)
        return p

    def must(self, script, what, timeout=120):
        p = self.run(script, timeout)
        if p.returncode != 0:
            raise LabError(BROKEN, f"{what} on {self.host} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-600:]}")
        return p.stdout

    def raise_if_unreachable(self, p):
        if p.returncode != 255:
            return
        err = p.stderr.strip()
        if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            raise LabError(NOT_READY, f"{self.host}'s host key is not the one in "
                           f"{self.known_hosts or 'your known_hosts'} (Host key verification failed): refusing to connect")
        raise LabError(NOT_READY, f"cannot reach {self.target} over SSH: {err.splitlines()[-1] if err else 'ssh exited 255'}")

    def close(self):
        subprocess.run([*self.ssh, "-O", "exit", self.target], capture_output=True, timeout=30)
        subprocess.run(["rm", "-rf", self.control_dir])


# OpenSSH's ciphers as fast as they come: AES-GCM where the CPU has AES instructions, as every
# EC2 instance does (1 GiB through SSH on loopback took 1.68 s with aes128-gcm against 2.96 s
# with chacha20-poly1305, OpenSSH's first choice; docs/design.md "Measured here"), else ChaCha20.
# SSH uses the first of the client's list the server also offers, so the fastest both ends have.
AES_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
CHACHA_FIRST = ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# The rest of OpenSSH's default list, so a server with none of the above still answers.
FALLBACK = ("aes128-ctr", "aes192-ctr", "aes256-ctr")


def cipher_order(flags, supported):
    """The Ciphers list to offer: FLAGS, the CPU's (x86 `aes`, arm64 `aes` in Features);
    SUPPORTED, what this ssh knows (`ssh -Q cipher`). An empty list: leave ssh's own."""
    first = AES_FIRST if "aes" in flags else CHACHA_FIRST
    return [c for c in (*first, *FALLBACK) if c in supported]


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (x86 "flags", arm64 "Features"), as a set of words."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def client_ciphers():
    """The ciphers this ssh client knows (`ssh -Q cipher`), or an empty set."""
    try:
        p = subprocess.run(["ssh", "-Q", "cipher"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(p.stdout.split()) if p.returncode == 0 else set()


def probe(remote, features=(), sections=()):
    """What the destination is: kernel, boot id, CRIU (exit 3 when it cannot run CRIU), and
    whether `criu check --feature NAME` passes there for each of FEATURES (modes.MODES).
    SECTIONS: (name, shell) pairs asked in the same round trip; their output, by name, under
    "sections" (the pair check's questions, pair.py)."""
    script = (f"cat /proc/sys/kernel/random/boot_id; uname -r; {CRIU} --version | sed -n 's/^Version: *//p'"
              + "".join(f"; {CRIU} check --feature {shlex.quote(n)} >/dev/null 2>&1 && echo yes || echo no"
                        for n in features)
              + "".join(f"; echo {MARK}{name}; {{ {shell}; }} 2>&1" for name, shell in sections))
    p = remote.run(script, timeout=60)
    if p.returncode != 0 and "password is required" in p.stderr:
        raise LabError(NOT_READY, f"{remote.user} cannot run sudo without a password on {remote.host}")
    head, *parts = p.stdout.split(f"\n{MARK}")
    lines = head.split("\n")
    if len(lines) < 3 or not lines[2]:
        raise LabError(NOT_READY, f"CRIU is not installed at {CRIU} on {remote.host} ({p.stderr.strip()[-300:] or 'no version'})")
    said = lines[3:3 + len(features)]
    return {"bootId": lines[0], "kernel": lines[1], "criuVersion": lines[2],
            "features": {n: {"ok": said[i:i + 1] == ["yes"], "output": ""} for i, n in enumerate(features)},
            "sections": dict(part.partition("\n")[::2] for part in parts)}


# What starts a section's output in probe's answer: no command prints it by chance.
MARK = "@@criu-lab@@"


def remote_state(remote, paths):
    """Per absolute path on the destination: "dir:MODE", its sha256, "other" (a device...)
    or "missing"."""
    if not paths:
        return {}
    return dict(zip(paths, remote.must(state_script(paths), "checking the process's files").split()))


def state_script(paths):
    """The shell that prints remote_state's answer for PATHS, one word a path."""
    return ("for p in " + " ".join(shlex.quote(p) for p in paths) + "; do if [ -d \"$p\" ]; then "
            "echo dir:$(stat -c %a \"$p\"); elif [ -f \"$p\" ]; then sha256sum -- \"$p\" | cut -d' ' -f1; "
            "elif [ -e \"$p\" ]; then echo other; else echo missing; fi; done")


def ship(remote, paths):
    """One tar stream of PATHS (absolute) to the same paths on the destination; returns (bytes
    written, ms it took)."""
    rel = [p.lstrip("/") for p in paths]
    started = time.monotonic()
    tar = subprocess.Popen(["tar", "-C", "/", "--no-recursion", "--totals", "-cf", "-", "--", *rel],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ssh = subprocess.run(remote.argv("tar -C / -xpf -"), stdin=tar.stdout, capture_output=True, text=True, timeout=1800)
    tar.stdout.close()
    err = tar.stderr.read().decode(errors="replace")
    tar.wait()
    remote.raise_if_unreachable(ssh)
    if tar.returncode != 0 or ssh.returncode != 0:
        raise LabError(BROKEN, f"copying to {remote.host} failed: {err.strip()[-300:]} {ssh.stderr.strip()[-300:]}")
    m = re.search(r"Total bytes written: (\d+)", err)
    return (int(m.group(1)) if m else 0), round((time.monotonic() - started) * 1000, 1)


def local_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_there(remote, path):
    """Bytes free on the destination's filesystem that holds (or will hold) PATH, or None."""
    q = shlex.quote(path)
    out = remote.run(f"d={q}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
                     "df -P -B1 \"$d\" | awk 'NR == 2 {print $4}'", 60).stdout.strip()
    return int(out) if out.isdigit() else None


def keep_latest_passing_there(remote, run_dir):
    """common.keep_latest_passing on the destination, for its copy of the run RUN_DIR is in:
    marked passed, the earlier passing runs of its kind there removed. Best effort: when the
    destination cannot be reached now, `criu-lab clean` there removes them later."""
    top = os.path.relpath(run_dir, LOG_DIR).split(os.sep)[0]
    q = shlex.quote
    try:
        remote.run(f"cd {q(LOG_DIR)} && for d in {q(top.split('-', 1)[0])}-*; do [ \"$d\" != {q(top)} ] && "
                   f"[ -f \"$d/{PASSED}\" ] && rm -rf -- \"$d\"; done; [ -d {q(top)} ] && : > {q(top)}/{PASSED}; true", 120)
    except (LabError, subprocess.SubprocessError):
        pass


def criu_stats_there(remote, images):
    """criu_stats of the restore on the destination: its stats-restore, read there with crit
    (one SSH round trip). {} when it is not there or crit cannot read it."""
    try:
        p = remote.run(f"{CRIT} show {shlex.quote(images)}/stats-restore", 60)
        return stats_of(json.loads(p.stdout).get("entries", []), "restore") if p.returncode == 0 else {}
    except (LabError, subprocess.SubprocessError, ValueError, AttributeError):
        return {}
