"""criu-lab link show|set|clear: a rate, delay and loss on this host's path to its peer, with tc.

`set` shapes what this host SENDS on the device that leads to the peer (`ip route get`): a
migration's pages go from the source to the destination, so shaping the source is enough for
the rate; a delay set here is one way (the round trip grows by it once). `ssh PEER sudo
criu-lab link set ...` shapes the other direction. The qdiscs carry the lab's own handles and
what was asked is recorded (RUN_DIR, gone at a reboot with the qdiscs), so `clear` removes only
what the lab set and never a qdisc someone else put there (docs/design.md "Layout").
"""
import argparse
import gzip
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time

from .outcome import NOT_READY, OK, USAGE, BROKEN, LabError, attempt

E = os.environ.get
RUN_DIR = E("CRIU_LAB_RUN_DIR", "/run/criu-lab")
HOSTS_FILE = E("CRIU_LAB_HOSTS_FILE", "/etc/hosts")
# The peer set-up marks the /etc/hosts line that names the seat's other host
# (components/peerSetup.ts PEER_MARK): "ADDRESS NAME # criu-lab peer".
PEER_MARK = "# criu-lab peer"
# tc handles are hex majors; these two are the lab's own, so a qdisc the lab did not set is
# never taken for its own. The root is netem (delay, loss) or tbf (rate alone); tbf under
# netem when both are asked (tc-netem(8), "rate control").
ROOT, CHILD = "c1ab:", "c1ac:"
LAB_HANDLES = (ROOT, CHILD)
# The kernel's own default root qdisc has handle 0: (noqueue, pfifo_fast, fq_codel, mq).
DEFAULT = "0:"

RATE_UNITS = {"kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
RATE_RANGE = (8 * 10**3, 10 * 10**9)
DELAY_UNITS = {"us": 1, "ms": 10**3, "s": 10**6}
DELAY_MAX_US = 10 * 10**6
NO_NETEM = "this kernel has no netem (sch_netem module): rate only"


def rate(text):
    """argparse type: '100mbit' -> 100000000 (bits per second)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(kbit|mbit|gbit)", text.strip().lower())
    bps = round(float(m.group(1)) * RATE_UNITS[m.group(2)]) if m else 0
    if not RATE_RANGE[0] <= bps <= RATE_RANGE[1]:
        raise argparse.ArgumentTypeError(f"'{text}' is not a rate from 8kbit to 10gbit, written like 500kbit, "
                                          "100mbit or 1gbit (kbit, mbit, gbit: thousands, millions, billions of bits/s)")
    return bps


def delay(text):
    """argparse type: '20ms' -> 20000 (µs)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)", text.strip().lower())
    us = round(float(m.group(1)) * DELAY_UNITS[m.group(2)]) if m else 0
    if not 0 < us <= DELAY_MAX_US:
        raise argparse.ArgumentTypeError(f"'{text}' is not a delay above 0 and at most 10s, written like 2ms, "
                                         "20ms, 500us or 1s")
    return us


def loss(text):
    """argparse type: '0.1%' (or '0.1') -> 0.1 (percent of the packets sent)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%?", text.strip())
    if not m or float(m.group(1)) > 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a loss from 0% to 100%, written like 0.1% or 1%")
    return float(m.group(1))


def rate_text(bps):
    """100000000 -> '100mbit' (the largest unit that keeps it whole, else a decimal)."""
    for unit in ("gbit", "mbit", "kbit"):
        if bps >= RATE_UNITS[unit]:
            return f"{bps / RATE_UNITS[unit]:g}{unit}"
    return f"{bps}bit"


def delay_text(us):
    return f"{us / 1000:g}ms" if us >= 1000 else f"{us}us"


def asked_of(bps, us, pct):
    """What `set` was asked, in the lab's JSON style (None for what was not)."""
    return {"rate": bps and rate_text(bps), "rateBitsPerSecond": bps, "delay": us and delay_text(us),
            "delayUs": us, "lossPercent": pct}


def tbf_args(bps):
    """tbf's parameters for BPS: a bucket of 4 ms at that rate (one kernel tick at HZ=250, so
    the timer never starves it), at least 32 KiB so a full-size frame fits; packets wait at
    most 50 ms in its queue (a router's buffer, no bufferbloat)."""
    return ["rate", f"{bps}bit", "burst", str(max(bps // 8 // 250, 32768)), "latency", "50ms"]


def netem_limit(bps, us):
    """Packets netem may hold: twice what is in flight during the delay at the rate (10gbit
    when no rate is set), at least netem's default of 1000."""
    return max(1000, math.ceil(2 * (bps or 10**10) / 8 * (us or 0) / 10**6 / 1500))


def plan(dev, bps, us, pct):
    """The tc commands that shape DEV's egress: tbf alone for a rate; netem as the root for a
    delay or loss, with tbf beneath it when a rate is asked too."""
    add = ["tc", "qdisc", "add", "dev", dev]
    if not us and pct is None:
        return [[*add, "root", "handle", ROOT, "tbf", *tbf_args(bps)]]
    netem = [*add, "root", "handle", ROOT, "netem", "limit", str(netem_limit(bps, us))]
    netem += ["delay", f"{us}us"] if us else []
    netem += ["loss", f"{pct:g}%"] if pct is not None else []
    return [netem] + ([[*add, "parent", f"{ROOT}1", "handle", CHILD, "tbf", *tbf_args(bps)]] if bps else [])


def parse_qdiscs_text(text):
    """`tc qdisc show` text (an iproute2 without -j) as tc -j's fields: kind, handle, root or
    parent, dev when listed, and the rest of the line as `text`."""
    out = []
    for line in text.splitlines():
        m = re.match(r"qdisc (\S+) (\S+:)(?: dev (\S+))? (root|parent (\S+))(.*)$", line)
        if m:
            q = {"kind": m.group(1), "handle": m.group(2), "text": m.group(6).strip()}
            q.update({"dev": m.group(3)} if m.group(3) else {})
            q.update({"root": True} if m.group(4) == "root" else {"parent": m.group(5)})
            out.append(q)
    return out


def root_of(qdiscs):
    return next((q for q in qdiscs if q.get("root")), None)


def lab_qdiscs(qdiscs):
    return [q for q in qdiscs if q.get("handle") in LAB_HANDLES]


def peer_in(hosts_text):
    """The seat's peer named in /etc/hosts by the peer set-up: (name, address), or None."""
    for line in hosts_text.splitlines():
        if line.rstrip().endswith(PEER_MARK):
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                return fields[1], fields[0]
    return None


def route_dev(routes, address):
    """The device `ip -j route get ADDRESS` leads through; refuses this host's own address."""
    r = routes[0] if routes else {}
    if r.get("type") == "local" or r.get("dev") == "lo":
        raise LabError(USAGE, f"{address} is this host (its route is loopback): shaping lo would slow this "
                       "host's own connections, not the path to a peer; name the peer with --to")
    if not r.get("dev"):
        raise LabError(NOT_READY, f"no route to {address}")
    return r["dev"]


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


def foreign_root(dev, qdiscs):
    root = root_of(qdiscs)
    if root and root["handle"] not in (DEFAULT, ROOT):
        return f"{dev}'s root qdisc is {root['kind']} {root['handle']}, which the lab did not set"
    return None


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
            asked = asked_text(s["asked"]) if s["asked"] else "no record of what was asked"
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
