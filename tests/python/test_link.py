"""link.py and shaping.py: the flags' parsing, the tc commands built, tc's output read, the peer found in
/etc/hosts, and the refusals before anything is touched (tests/host/link.test.ts shapes a real
veth between two namespaces)."""
import argparse
import json
import subprocess

import pytest

from criu_lab import cli, link, shaping
from criu_lab.outcome import NOT_READY, OK, USAGE, LabError


@pytest.mark.parametrize("text,bps", [("100mbit", 10**8), ("1gbit", 10**9), ("500kbit", 5 * 10**5),
                                      ("1.5Mbit", 1_500_000), ("8kbit", 8000), ("10gbit", 10**10)])
def test_rates(text, bps):
    assert shaping.rate(text) == bps


@pytest.mark.parametrize("text", ["100", "100mbps", "7kbit", "11gbit", "fast", "-1mbit", "1e3kbit", ""])
def test_bad_rates(text):
    with pytest.raises(argparse.ArgumentTypeError, match="from 8kbit to 10gbit"):
        shaping.rate(text)


@pytest.mark.parametrize("text,us", [("20ms", 20000), ("2ms", 2000), ("500us", 500), ("1s", 10**6),
                                     ("0.5ms", 500), ("10s", 10**7)])
def test_delays(text, us):
    assert shaping.delay(text) == us


@pytest.mark.parametrize("text", ["20", "0ms", "11s", "20 minutes", "-2ms"])
def test_bad_delays(text):
    with pytest.raises(argparse.ArgumentTypeError, match="above 0 and at most 10s"):
        shaping.delay(text)


@pytest.mark.parametrize("text,pct", [("0.1%", 0.1), ("1", 1.0), ("0%", 0.0), ("100%", 100.0)])
def test_losses(text, pct):
    assert shaping.loss(text) == pct


@pytest.mark.parametrize("text", ["101%", "-1%", "a lot", "0.1%%"])
def test_bad_losses(text):
    with pytest.raises(argparse.ArgumentTypeError, match="from 0% to 100%"):
        shaping.loss(text)


@pytest.mark.parametrize("argv,flag", [(["--rate", "100mbps"], "--rate"), (["--delay", "20"], "--delay"),
                                       (["--loss", "200%"], "--loss")])
def test_a_bad_flag_exits_2_naming_it(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["link", "set", *argv])
    assert e.value.code == USAGE
    assert f"argument {flag}: " in capsys.readouterr().err


def test_texts():
    assert [shaping.rate_text(b) for b in (10**8, 10**9, 5 * 10**5, 1_500_000)] == ["100mbit", "1gbit", "500kbit",
                                                                                  "1.5mbit"]
    assert [shaping.delay_text(u) for u in (20000, 500, 2500)] == ["20ms", "500us", "2.5ms"]


def test_a_rate_alone_is_tbf_at_the_root():
    assert shaping.plan("eth0", 10**8, None, None) == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "c1ab:", "tbf", "rate", "100000000bit",
         "burst", "50000", "latency", "50ms"]]
    # A slow rate keeps a bucket that holds a full-size frame.
    assert shaping.tbf_args(8 * 10**6)[3] == "32768"


def test_a_delay_is_netem_at_the_root_with_tbf_beneath_for_the_rate():
    assert shaping.plan("eth0", 10**8, 20000, 0.1) == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "c1ab:", "netem", "limit", "1000",
         "delay", "20000us", "loss", "0.1%"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "c1ab:1", "handle", "c1ac:", "tbf", "rate",
         "100000000bit", "burst", "50000", "latency", "50ms"]]
    assert shaping.plan("eth0", None, None, 1.0) == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "c1ab:", "netem", "limit", "1000", "loss", "1%"]]


def test_netem_holds_what_is_in_flight_during_the_delay():
    # 1 Gbit/s for 20 ms is 2.5 MB, about 1667 frames; twice that.
    assert shaping.netem_limit(10**9, 20000) == 3334
    assert shaping.netem_limit(10**8, 2000) == 1000
    assert shaping.netem_limit(None, 20000) == 33334  # no rate: room for 10 Gbit/s


def test_tc_text_is_read_as_tc_json_fields():
    text = ("qdisc netem c1ab: root refcnt 2 limit 1000 delay 20ms loss 0.1%\n"
            "qdisc tbf c1ac: parent c1ab:1 rate 100Mbit burst 50000b lat 50ms\n"
            "qdisc noqueue 0: dev lo root refcnt 2\n"
            " Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0)\n")
    qdiscs = shaping.parse_qdiscs_text(text)
    assert qdiscs == [
        {"kind": "netem", "handle": "c1ab:", "root": True, "text": "refcnt 2 limit 1000 delay 20ms loss 0.1%"},
        {"kind": "tbf", "handle": "c1ac:", "parent": "c1ab:1", "text": "rate 100Mbit burst 50000b lat 50ms"},
        {"kind": "noqueue", "handle": "0:", "dev": "lo", "root": True, "text": "refcnt 2"}]
    assert [q["handle"] for q in shaping.lab_qdiscs(qdiscs)] == ["c1ab:", "c1ac:"]
    assert shaping.root_of(qdiscs)["kind"] == "netem"


def test_tc_json_is_read_as_it_is():
    out = json.loads('[{"kind":"tbf","handle":"c1ab:","root":true,"refcnt":2,"options":{"rate":125000}},'
                     '{"kind":"fq_codel","handle":"0:","parent":"1:1"}]')
    assert shaping.lab_qdiscs(out) == out[:1]


@pytest.mark.parametrize("root,foreign", [(None, None), ("noqueue 0:", None), ("fq_codel 0:", None),
                                          ("tbf c1ab:", None), ("htb 1:", "eth0's root qdisc is htb 1:, "
                                                                "which the lab did not set")])
def test_a_root_qdisc_someone_else_set_is_foreign(root, foreign):
    qdiscs = [{"kind": root.split()[0], "handle": root.split()[1], "root": True}] if root else []
    assert shaping.foreign_root("eth0", qdiscs) == foreign


def test_the_peer_is_the_line_the_peer_set_up_marked():
    hosts = ("127.0.0.1 localhost\n10.0.1.9 other\n"
             "10.0.1.23 criu-lab-seat-03-b # criu-lab peer\n")
    assert shaping.peer_in(hosts) == ("criu-lab-seat-03-b", "10.0.1.23")
    assert shaping.peer_in("127.0.0.1 localhost\n") is None


def test_the_route_to_this_host_is_refused():
    with pytest.raises(LabError, match="is this host") as e:
        shaping.route_dev([{"type": "local", "dst": "10.0.1.5", "dev": "lo"}], "10.0.1.5")
    assert e.value.code == USAGE
    assert shaping.route_dev([{"dst": "10.0.1.23", "dev": "ens5", "prefsrc": "10.0.1.5"}], "10.0.1.23") == "ens5"
    with pytest.raises(LabError) as e:
        shaping.route_dev([], "10.0.1.23")
    assert e.value.code == NOT_READY


def args_of(argv):
    p = argparse.ArgumentParser()
    link.register(p.add_subparsers())
    return p.parse_args(["link", *argv])


@pytest.mark.parametrize("argv,said", [
    (["show", "--rate", "1mbit"], "--rate: only `link set` takes them"),
    (["clear", "--delay", "2ms", "--loss", "1%"], "--delay, --loss: only `link set` takes them"),
    (["set"], "link set needs at least one of --rate, --delay, --loss"),
    (["set", "--rate", "1mbit", "--to", "b", "--dev", "eth0"], "--to and --dev name the same thing"),
])
def test_flags_that_do_not_fit_the_action(argv, said, monkeypatch):
    monkeypatch.setattr(link.os, "geteuid", lambda: 0)
    with pytest.raises(LabError, match=said) as e:
        link.check_flags(args_of(argv))
    assert e.value.code == USAGE


def test_set_and_clear_need_root(monkeypatch):
    monkeypatch.setattr(link.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root: sudo criu-lab link set"):
        link.check_flags(args_of(["set", "--rate", "1mbit"]))


def test_a_delay_without_netem_changes_nothing(monkeypatch):
    ran = []
    monkeypatch.setattr(link.os, "geteuid", lambda: 0)
    monkeypatch.setattr(link.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(link, "target", lambda args, required: {"dev": "eth0", "to": "b", "address": "10.0.1.23",
                                                                 "how": "--to"})
    monkeypatch.setattr(link, "capabilities", lambda: {"rate": {"ok": True}, "delay": {"ok": False}})
    monkeypatch.setattr(link, "run", lambda argv: ran.append(argv) or subprocess.CompletedProcess(argv, 0, "[]", ""))
    args = args_of(["set", "--rate", "100mbit", "--delay", "20ms", "--to", "b"])
    code, r, text = link.cmd_link(args)
    assert code == NOT_READY and ran == []
    assert r["error"] == "this kernel has no netem (sch_netem module): rate only; nothing was changed on eth0"
    assert text == f"criu-lab link set FAILED: {r['error']}"


def test_show_lists_what_the_lab_set(monkeypatch, tmp_path):
    monkeypatch.setattr(link, "RUN_DIR", str(tmp_path))
    monkeypatch.setattr(link.os, "geteuid", lambda: 0)
    monkeypatch.setattr(link, "target", lambda args, required: None)
    tc_json = '[{"kind":"tbf","handle":"c1ab:","root":true,"dev":"veth0","options":{"rate":1000000}}]'
    tc_text = "qdisc tbf c1ab: root refcnt 2 rate 8Mbit burst 32Kb lat 50ms\n"
    monkeypatch.setattr(link, "run", lambda argv: subprocess.CompletedProcess(
        argv, 0, tc_json if "-j" in argv else tc_text, ""))
    code, r, text = link.cmd_link(args_of(["show"]))
    assert code == OK
    assert [s["dev"] for s in r["links"]] == ["veth0"] and r["links"][0]["shaped"] is True
    assert r["links"][0]["asked"] is None  # no record: said so, not made up
    assert text == ("veth0: shaped by the lab: no record of what was asked (egress)\n"
                    "  tc: qdisc tbf c1ab: root refcnt 2 rate 8Mbit burst 32Kb lat 50ms")


@pytest.fixture
def peer_host(monkeypatch):
    """A host whose peer set-up named criu-lab-seat-03-b (10.0.1.23), reached through ens5."""
    monkeypatch.setattr(link, "known_peer", lambda: ("criu-lab-seat-03-b", "10.0.1.23"))
    monkeypatch.setattr(link, "must_json", lambda argv, what: [{"dst": argv[-1], "dev": "ens5"}])
    monkeypatch.setattr(link, "device", lambda dev: {"ifname": dev, "flags": ["UP"]})


def test_the_default_is_the_peers_path(peer_host):
    assert link.target(args_of(["show"]), True) == {"dev": "ens5", "to": "criu-lab-seat-03-b",
                                                    "address": "10.0.1.23", "how": link.HOSTS_FILE}


def test_a_dev_that_is_not_the_peers_path_is_refused(peer_host):
    with pytest.raises(LabError, match="--dev ens6 is not the path to this seat's peer criu-lab-seat-03-b") as e:
        link.target(args_of(["set", "--rate", "1mbit", "--dev", "ens6"]), True)
    assert e.value.code == USAGE
    assert link.target(args_of(["set", "--rate", "1mbit", "--dev", "ens5"]), True)["dev"] == "ens5"


def test_no_peer_and_no_flag(monkeypatch):
    monkeypatch.setattr(link, "known_peer", lambda: None)
    assert link.target(args_of(["show"]), False) is None  # show and clear: every device the lab shaped
    with pytest.raises(LabError, match="this host knows no peer") as e:
        link.target(args_of(["set", "--rate", "1mbit"]), True)
    assert e.value.code == USAGE
