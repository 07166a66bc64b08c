"""criu-lab judge: the verdict pulumi up's remote Commands take on the host, from rules.json
(the same file the TypeScript verifier reads: tests/unit/contract.test.ts compares the two)."""
import json

import pytest

from criu_lab import judge

DEMO = {"ok": True, "pid": 4242, "restoredPid": 4242, "lastBeforeDump": 5, "firstAfterRestore": 6,
        "dumpMs": 120.5, "restoreMs": 80, "frozenUs": 40_000, "imageBytes": 5_000_000,
        "imagesDir": "/var/log/criu-lab/demo-x/images", "criuVersion": "4.1.1", "kernel": "6.1.0"}


def test_every_check_with_a_contract_has_its_rules():
    assert set(judge.contracts()) == {"check", "doctor", "demo", "training", "game", "migration"}


@pytest.mark.parametrize("rc, out, err, expected", [
    (0, "counting\n" + json.dumps(DEMO), "", None),
    (0, json.dumps({**DEMO, "restoredPid": 1}), "", "restored PID 1 differs from the checkpointed PID 4242"),
    (0, json.dumps({**DEMO, "firstAfterRestore": 5}), "",
     "the counter did not continue: last before dump 5, first after restore 5"),
    (0, json.dumps({**DEMO, "frozenUs": "soon"}), "", "field 'frozenUs' should be a number, got \"soon\""),
    (0, json.dumps({**DEMO, "pid": True, "restoredPid": True}), "", "field 'pid' should be a number, got true"),
    (1, json.dumps({"ok": False, "error": "criu dump exited 1\ntail", "imagesDir": "/x"}), "",
     "criu dump exited 1 (checkpoint images kept in /x on the host)\ntail"),
    (0, json.dumps({"ok": False}), "", "it reported ok: false without an error"),
    (1, "", "sudo: criu-lab: command not found\n", "no JSON object in its output: sudo: criu-lab: command not found"),
    (3, json.dumps(DEMO), "ssh: connect to host b port 22: No route to host\n",
     "ssh: connect to host b port 22: No route to host"),  # a pass, but the command failed
    (1, "", "", "no JSON object in its output"),
])
def test_verdicts(rc, out, err, expected):
    assert judge.verdict("demo", rc, out, err) == expected


def test_comparisons_are_javascripts():
    rules = judge.contracts()["training"]["requires"]
    state = next(r for r in rules if r["field"] == "stateMatches")
    assert judge.holds(state, {"stateMatches": True})
    assert not judge.holds(state, {"stateMatches": 1})  # 1 is not true, as with ===
    at_least = next(r for r in rules if r["field"] == "checkpoints")
    assert judge.holds(at_least, {"checkpoints": 1}) and not judge.holds(at_least, {"checkpoints": 0})
    assert not judge.holds(at_least, {"checkpoints": "3"})


def test_the_command_exits_1_saying_why(tmp_path):
    out, err = tmp_path / "out", tmp_path / "err"
    out.write_text(json.dumps({**DEMO, "restoredPid": 7}) + "\n")
    err.write_text("")
    args = type("Args", (), {"name": "demo", "rc": 0, "stdout": str(out), "stderr": str(err)})
    code, result, human = judge.cmd_judge(args)
    assert (code, result["ok"]) == (1, False)
    assert human == "restored PID 7 differs from the checkpointed PID 4242"
    out.write_text(json.dumps(DEMO))
    assert judge.cmd_judge(args)[0] == 0
