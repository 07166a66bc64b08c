"""A checkpoint as one archive (criu-lab checkpoint export/import): a tar of its manifest and
its files, by name only (no directories, links or owners), compressed with zstd where the
`zstd` binary is installed, else gzip (docs/design.md "Checkpoint manifest"). Plain enough
that `zstd -dc | tar -xf -` and manifest.check_there unpack and check it on a host without
criu-lab.
"""
import os
import shutil
import subprocess
import tarfile

from . import manifest
from .outcome import BROKEN, NOT_READY, USAGE, LabError

SUFFIXES = {".tar.zst": "zstd", ".tar.gz": "gzip", ".tgz": "gzip"}
# Endings that name another format: refused rather than written as something else.
OTHER = (".tar", ".zst", ".gz", ".zip", ".xz", ".bz2", ".7z", ".tar.xz", ".tar.bz2")
MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip"}


def have_zstd():
    return shutil.which("zstd") is not None


def archive_name(file, zstd_installed):
    """(path, codec) of the archive `export` writes for FILE: .tar.zst is zstd (refused, exit 3,
    where zstd is not installed), .tar.gz or .tgz gzip; a name without either gets .tar.zst
    where zstd is installed, else .tar.gz. Another archive's ending is a usage error."""
    for suffix, codec in SUFFIXES.items():
        if file.endswith(suffix) and len(file) > len(suffix) and not file.endswith("/" + suffix):
            if codec == "zstd" and not zstd_installed:
                raise LabError(NOT_READY, f"FILE '{file}': zstd is not installed here (sudo apt-get install zstd), "
                               "or name the archive .tar.gz")
            return file, codec
    for suffix in OTHER:
        if file.endswith(suffix):
            raise LabError(USAGE, f"FILE '{file}': an archive ends .tar.zst or .tar.gz (or has no ending: "
                           f"{'.tar.zst' if zstd_installed else '.tar.gz'} is added)")
    if not os.path.basename(file) or file.endswith("/"):
        raise LabError(USAGE, f"FILE '{file}': the archive's file name, not a directory")
    return (file + ".tar.zst", "zstd") if zstd_installed else (file + ".tar.gz", "gzip")


def codec_of(file):
    """The compression of FILE by its first bytes (not its name): "zstd" or "gzip"."""
    with open(file, "rb") as f:
        head = f.read(4)
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            return codec
    raise LabError(NOT_READY, f"{file} is neither a zstd nor a gzip archive (first bytes {head.hex() or 'none'})")


def pack(d, path, codec):
    """Writes checkpoint D (verified first: a changed checkpoint is not exported) into the
    archive PATH (0600, written beside it and renamed: never half an archive under its name).
    Returns (the manifest, the archive's bytes)."""
    m = manifest.verify(d)
    if m.get("links"):
        # An archive holds files by name only; a chain would need its parents' directories too.
        raise LabError(NOT_READY, f"{d} is an incremental checkpoint: its {', '.join(m['links'])} link points at "
                       f"{', '.join(m['links'].values())}, which holds pages this one does not; an archive carries one "
                       "directory, so export a full checkpoint (`criu-lab checkpoint dump`, or a dump without "
                       "--prev-images-dir)")
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            if codec == "zstd":
                z = subprocess.Popen(["zstd", "-q", "-3", "-T0", "-c"], stdin=subprocess.PIPE, stdout=out)
                try:
                    write_tar(d, m, tarfile.open(fileobj=z.stdin, mode="w|"))
                finally:
                    z.stdin.close()
                    if z.wait() != 0:
                        raise LabError(BROKEN, f"zstd exited {z.returncode} compressing {d}")
            else:
                write_tar(d, m, tarfile.open(fileobj=out, mode="w|gz"))
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return m, os.path.getsize(path)


def write_tar(d, m, tar):
    with tar:
        for name in [manifest.NAME, *sorted(m["files"])]:
            path = os.path.join(d, name)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = os.path.getsize(path), 0o600, int(os.path.getmtime(path))
            with open(path, "rb") as f:
                tar.addfile(info, f)


def unpack(file, d):
    """Unpacks the archive FILE into D (made 0700; files 0600, this user's) and verifies it.
    Members must be plain files with names CRIU gives (no paths, links, devices). Returns the
    manifest; raises (exit 3) naming the file that differs. What was unpacked stays in D."""
    codec = codec_of(file)
    os.makedirs(d, 0o700, exist_ok=True)
    os.chmod(d, 0o700)
    z = None
    try:
        if codec == "zstd":
            z = subprocess.Popen(["zstd", "-dcq", "--", file], stdout=subprocess.PIPE)
            tar = tarfile.open(fileobj=z.stdout, mode="r|")
        else:
            tar = tarfile.open(file, mode="r|gz")
        with tar:
            for member in tar:
                extract(tar, member, file, d)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise LabError(NOT_READY, f"{file} cannot be unpacked ({type(e).__name__}: {e}); what was unpacked is in {d}") from None
    finally:
        if z:
            z.stdout.close()
            if z.wait() != 0:
                raise LabError(NOT_READY, f"{file}: zstd -d exited {z.returncode} (a damaged archive); "
                               f"what was unpacked is in {d}")
    return manifest.verify(d)


def extract(tar, member, file, d):
    if not member.isfile() or not manifest.SAFE.fullmatch(member.name):
        raise LabError(NOT_READY, f"{file} holds {member.name!r}, not a checkpoint file (plain files by name only)")
    fd = os.open(os.path.join(d, member.name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)


def unpack_there(d, codec):
    """Shell text for another host: the archive on stdin unpacked into D, then checked with
    SHA-256 against this host's manifest (manifest.check_there), in one SSH round trip."""
    q = "'" + d.replace("'", "'\\''") + "'"
    decompress = "zstd -dcq" if codec == "zstd" else "gzip -dc"
    return (f"mkdir -p {q} && chmod 700 {q} && {decompress} | tar -C {q} --no-same-owner -xf - "
            f"&& {manifest.check_there(d)}")


def ship_there(remote, d, path, codec):
    """Sends the archive PATH (checkpoint D, exported here) to REMOTE, where it is unpacked into
    the same path D and checked against this host's manifest: one SSH round trip, no criu-lab
    needed there. Raises (exit 3) naming a file that differs there. Returns its bytes."""
    with open(path, "rb") as f:
        p = remote.run(unpack_there(d, codec), 1800, stdin=f)
    if p.returncode == manifest.DIFFERS_THERE:
        raise manifest.refused_there(p.stdout, d, remote.host)
    if p.returncode != 0:
        raise LabError(BROKEN, f"unpacking {os.path.basename(path)} on {remote.host} exited {p.returncode}: "
                       f"{(p.stderr or p.stdout).strip()[-300:]}")
    return os.path.getsize(path)


def codec_both(remote):
    """zstd when both hosts have it (one SSH round trip to ask), else gzip (coreutils' peer)."""
    if not have_zstd():
        return "gzip"
    return "zstd" if remote.run("command -v zstd >/dev/null && echo yes; true", 60).stdout.strip() == "yes" else "gzip"
