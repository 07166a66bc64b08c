"""criu-lab link show|set|clear: a rate, delay and loss on this host's path to its peer, with tc.

`set` shapes what this host SENDS on the device that leads to the peer (`ip route get`): a
migration's pages go from the source to the destination, so shaping the source is enough for
the rate; a delay set here is one way (the round trip grows by it once). `ssh PEER sudo
criu-lab link set ...` shapes the other direction. The qdiscs carry the lab's own handles and
what was asked is recorded (RUN_DIR, gone at a reboot with the qdiscs), so `clear` removes only
what the lab set and never a qdisc someone else put there (docs/design.md "Layout").
"""
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import time

from .outcome import NOT_READY, OK, USAGE, BROKEN, LabError, attempt
from .shaping import (LAB_HANDLES, NO_NETEM, PEER_MARK, ROOT, asked_of, delay, foreign_root, lab_qdiscs,
                      loss, parse_qdiscs_text, peer_in, plan, rate, root_of, route_dev, tbf_args)

E = os.environ.get
RUN_DIR = E("CRIU_LAB_RUN_DIR", "/run/criu-lab")
HOSTS_FILE = E("CRIU_LAB_HOSTS_FILE", "/etc/hosts")


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def must_json(argv, what):
    p = run(argv)
    if p.returncode != 0:
        raise LabError(NOT_READY, f"{what}: {(p.stderr or p.stdout).strip()}")
    return json.loads(p.stdout or "[]")


def resolve(host):
    try:
        return socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0]
    except (socket.gaierror, UnicodeError) as e:
        raise LabError(USAGE, f"--to {host}: not a host name or address this host can resolve ({e})")


def device(dev):
    """DEV's `ip -j link` entry; refuses loopback and a device that is not there."""
    p = run(["ip", "-j", "link", "show", "dev", dev])
    if p.returncode != 0:
        raise LabError(USAGE, f"--dev {dev}: no such network device here (`ip link` lists them)")
    link = json.loads(p.stdout)[0]
    if "LOOPBACK" in link.get("flags", []):
        raise LabError(USAGE, f"--dev {dev} is loopback: shaping it would slow this host's own connections, "
                       "not the path to a peer")
    return link


def known_peer():
    try:
        with open(HOSTS_FILE, encoding="utf-8") as f:
            return peer_in(f.read())
    except OSError:
        return None


def target(args, required):
    """The device to shape: {dev, to, address, how}. --to: its route; --dev: as named, but it
    must be the peer's path when the host knows its peer; neither: the peer's. None when
    nothing names one and REQUIRED is false (show, clear: every device the lab shaped)."""
    peer = known_peer()
    if args.to:
        address = resolve(args.to)
        dev = route_dev(must_json(["ip", "-j", "route", "get", address], f"ip route get {address}"), address)
        device(dev)
        return {"dev": dev, "to": args.to, "address": address, "how": "--to"}
    peer_route = None
    if peer:
        peer_route = route_dev(must_json(["ip", "-j", "route", "get", peer[1]], f"ip route get {peer[1]}"), peer[1])
    if args.dev:
        device(args.dev)
        if peer_route and args.dev != peer_route:
            raise LabError(USAGE, f"--dev {args.dev} is not the path to this seat's peer {peer[0]} ({peer[1]} "
                           f"goes through {peer_route}): the lab shapes only that path")
        return {"dev": args.dev, "to": peer and peer[0], "address": peer and peer[1], "how": "--dev"}
    if peer:
        return {"dev": peer_route, "to": peer[0], "address": peer[1], "how": HOSTS_FILE}
    if required:
        raise LabError(USAGE, f"this host knows no peer (no '{PEER_MARK}' line in {HOSTS_FILE}): name the path "
                       "with --to HOST or --dev DEV")
    return None


def record_path(dev):
    """Where what the lab set on DEV is recorded: per network namespace (one name, many
    namespaces), in RUN_DIR, which a reboot empties as it empties the qdiscs."""
    return os.path.join(RUN_DIR, "link", f"{os.stat('/proc/self/ns/net').st_ino}-{dev}.json")


def read_record(dev):
    try:
        with open(record_path(dev), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def qdiscs_of(dev=None):
    """The qdiscs on DEV (every device's when None), as `tc -j -s` gives them, or parsed from
    the text of an iproute2 without -j."""
    where = ["dev", dev] if dev else []
    p = run(["tc", "-j", "-s", "qdisc", "show", *where])
    if p.returncode == 0 and p.stdout.lstrip().startswith("["):
        return json.loads(p.stdout)
    p = run(["tc", "qdisc", "show", *where])
    if p.returncode != 0:
        raise LabError(NOT_READY, f"tc qdisc show {' '.join(where)}: {p.stderr.strip()}")
    return parse_qdiscs_text(p.stdout)


def try_qdisc(kind_args):
    """Can this kernel add qdisc KIND_ARGS? Tried on the loopback of a network namespace made
    for the try and gone with it, so no device of this host is touched: (ok, tc's words)."""
    if not shutil.which("tc") or not shutil.which("unshare"):
        return False, "tc or unshare is not installed (packages iproute2, util-linux)"
    p = run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", *kind_args])
    if p.returncode == 0:
        return True, f"{kind_args[0]} added in a throwaway network namespace"
    return False, (p.stderr or p.stdout).strip() or f"exited {p.returncode}"


def kernel_config(option):
    """OPTION's line in the running kernel's config (/proc/config.gz, else /boot), or None:
    the reason a try failed, where the kernel says."""
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{os.uname().release}", open)):
        try:
            with opener(path, "rt") as f:
                return next((l.strip() for l in f if re.match(rf"(# )?{option}[= ]", l)), None)
        except OSError:
            continue
    return None


def capabilities():
    """What this host can shape: the rate (tbf) and delay/loss (netem), each tried for real
    (a module the kernel has but has not loaded is loaded by the try, as by `link set`)."""
    out = {}
    for what, kind, kind_args in (("rate", "TBF", ["tbf", *tbf_args(10**8)]),
                                  ("delay", "NETEM", ["netem", "delay", "1ms"])):
        ok, said = try_qdisc(kind_args)
        out[what] = {"ok": ok, "output": said}
        if not ok:
            out[what]["kernelConfig"] = kernel_config(f"CONFIG_NET_SCH_{kind}")
    return out


def register(sub):
    p = sub.add_parser("link", help="shape the path to the peer (rate, delay, loss) with tc, show it, clear it")
    p.add_argument("action", choices=("show", "set", "clear"))
    p.add_argument("--to", metavar="HOST", help="the peer (name or address): its route's device (default: "
                   "this seat's peer)")
    p.add_argument("--dev", metavar="DEV", help="the device to the peer, by name")
    p.add_argument("--rate", type=rate, help="set: the rate, e.g. 100mbit, 1gbit, 500kbit")
    p.add_argument("--delay", type=delay, help="set: the one-way delay added, e.g. 20ms (needs netem)")
    p.add_argument("--loss", type=loss, help="set: the share of packets dropped, e.g. 0.1%% (needs netem)")
    p.set_defaults(fn=cmd_link)


def check_flags(args):
    """Flags that fit the action, before anything is looked at: exit 2 naming them."""
    shaping = [f"--{n}" for n in ("rate", "delay", "loss") if getattr(args, n) is not None]
    if args.action != "set" and shaping:
        raise LabError(USAGE, f"{', '.join(shaping)}: only `link set` takes them")
    if args.action == "set" and not shaping:
        raise LabError(USAGE, "link set needs at least one of --rate, --delay, --loss")
    if args.to and args.dev:
        raise LabError(USAGE, "--to and --dev name the same thing: give one")
    if args.action != "show" and os.geteuid() != 0:
        raise LabError(USAGE, f"link {args.action} needs root: sudo criu-lab link {args.action}")
    if not shutil.which("tc"):
        raise LabError(NOT_READY, "tc is not installed (package iproute2)")


def do_set(args, r):
    t = target(args, True)
    dev = t["dev"]
    r.update(t)
    if (args.delay or args.loss is not None) and not capabilities()["delay"]["ok"]:
        raise LabError(NOT_READY, f"{NO_NETEM}; nothing was changed on {dev}")
    before = qdiscs_of(dev)
    foreign = foreign_root(dev, before)
    if foreign:
        raise LabError(NOT_READY, f"{foreign}: refusing to replace it (`sudo tc qdisc del dev {dev} root` "
                       "removes it, if it is yours to remove)")
    r["replaced"] = bool(lab_qdiscs(before))
    if r["replaced"]:
        run(["tc", "qdisc", "del", "dev", dev, "root"])
    r["tc"] = plan(dev, args.rate, args.delay, args.loss)
    for argv in r["tc"]:
        p = run(argv)
        if p.returncode != 0:
            run(["tc", "qdisc", "del", "dev", dev, "root", "handle", ROOT])
            raise LabError(BROKEN, f"`{' '.join(argv)}` exited {p.returncode}: {p.stderr.strip()}; {dev} is left "
                           "with its default qdisc")
    r["asked"] = asked_of(args.rate, args.delay, args.loss)
    os.makedirs(os.path.dirname(record_path(dev)), exist_ok=True)
    with open(record_path(dev), "w", encoding="utf-8") as f:
        json.dump({**t, "asked": r["asked"], "setAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f)
    r["qdiscs"] = lab_qdiscs(qdiscs_of(dev))
    r["ok"] = True


def describe(t):
    """'DEV (the path to PEER, ADDRESS)', or DEV alone when no peer is named."""
    to = f"{t['to']}, {t['address']}" if t.get("to") and t.get("address") != t.get("to") else t.get("to")
    return f"{t['dev']} (the path to {to})" if to else t["dev"]


def asked_text(a):
    parts = [f"rate {a['rate']}" if a.get("rate") else "", f"delay {a['delay']}" if a.get("delay") else "",
             f"loss {a['lossPercent']:g}%" if a.get("lossPercent") is not None else ""]
    return ", ".join(p for p in parts if p)


def link_state(dev):
    """What the lab set on DEV: its qdiscs there, the record, tc's own lines for them."""
    qdiscs = qdiscs_of(dev)
    ours = lab_qdiscs(qdiscs)
    record = read_record(dev)
    root = root_of(qdiscs)
    text = run(["tc", "qdisc", "show", "dev", dev]).stdout
    lines = [l.strip() for l in text.splitlines() if any(f" {h} " in l for h in LAB_HANDLES)]
    return {"dev": dev, "shaped": bool(ours), "asked": record["asked"] if ours and record else None,
            "setAt": record.get("setAt") if ours and record else None, "qdiscs": ours, "tcLines": lines,
            "root": root and {"kind": root["kind"], "handle": root["handle"]}}


def lab_devices():
    """The devices (of this network namespace) whose root qdisc is the lab's."""
    return sorted({q["dev"] for q in qdiscs_of() if q.get("handle") == ROOT and q.get("dev")})


def do_show(args, r):
    t = target(args, False)
    r.update(t or {})
    r["links"] = [link_state(d) for d in ([t["dev"]] if t else lab_devices())]
    r["ok"] = True


def do_clear(args, r):
    t = target(args, False)
    r.update(t or {})
    r["cleared"], r["untouched"] = [], []
    for dev in [t["dev"]] if t else lab_devices():
        qdiscs = qdiscs_of(dev)
        foreign, root = foreign_root(dev, qdiscs), root_of(qdiscs)
        if root and root["handle"] == ROOT:
            p = run(["tc", "qdisc", "del", "dev", dev, "root", "handle", ROOT])
            if p.returncode != 0:
                raise LabError(BROKEN, f"tc qdisc del dev {dev} root exited {p.returncode}: {p.stderr.strip()}")
            r["cleared"].append(dev)
        else:
            r["untouched"].append({"dev": dev, "why": f"{foreign}: left alone" if foreign
                                   else "nothing the lab set is there"})
        try:
            os.remove(record_path(dev))
        except FileNotFoundError:
            pass
    r["ok"] = True


ACTIONS = {"show": do_show, "set": do_set, "clear": do_clear}


def human(args, r):
    if args.action == "set":
        return "\n".join([f"{describe(r)}: shaped what this host sends: {asked_text(r['asked'])}",
                          *(f"  {' '.join(argv)}" for argv in r["tc"]),
                          "Egress only: the other direction is the peer's to shape "
                          f"(`ssh {r['to'] or 'PEER'} sudo criu-lab link set ...` with the same flags); "
                          "`sudo criu-lab link clear` removes it."])
    if args.action == "clear":
        lines = [f"{dev}: removed the lab's shaping" for dev in r["cleared"]]
        lines += [f"{u['dev']}: {u['why']}" for u in r["untouched"]]
        return "\n".join(lines or ["no device here has the lab's shaping"])
    lines = []
    for s in r["links"]:
        if s["shaped"]:
            # The record is root's (the umask): without sudo, tc's lines are all there is.
            asked = (asked_text(s["asked"]) if s["asked"] else "no record of what was asked"
                     + ("" if os.geteuid() == 0 else " (it is root's: sudo criu-lab link show)"))
            lines += [f"{s['dev']}: shaped by the lab: {asked} (egress)"] + [f"  tc: {l}" for l in s["tcLines"]]
        else:
            root = s["root"]
            lines.append(f"{s['dev']}: not shaped by the lab (root qdisc: "
                         f"{root['kind'] + ' ' + root['handle'] if root else 'none'})")
    return "\n".join(lines or ["no device here has the lab's shaping"])


def cmd_link(args):
    r = {"ok": False, "action": args.action, "direction": "egress"}
    with attempt(r) as outcome:
        check_flags(args)
        ACTIONS[args.action](args, r)
    if outcome.failed:
        return outcome.code, r, f"criu-lab link {args.action} FAILED: {r['error']}"
    return OK, r, human(args, r)
