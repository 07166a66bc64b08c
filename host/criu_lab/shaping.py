"""What `criu-lab link` asks of tc, without I/O: the flags' values, the qdiscs built for them,
tc's output read back, the peer in /etc/hosts and the device its route takes."""
import argparse
import math
import re

from .outcome import NOT_READY, USAGE, LabError

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


def foreign_root(dev, qdiscs):
    root = root_of(qdiscs)
    if root and root["handle"] not in (DEFAULT, ROOT):
        return f"{dev}'s root qdisc is {root['kind']} {root['handle']}, which the lab did not set"
    return None
