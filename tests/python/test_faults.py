"""migrate --fault's flag and its refusals, before anything is caused; the faults themselves
run for real between two namespace hosts in tests/host/faults.test.ts."""
import argparse
import os

import pytest

from criu_lab import faults
from criu_lab.outcome import USAGE, LabError


@pytest.mark.parametrize("text, spec", [
    ("page-server-kill", {"name": "page-server-kill"}),
    ("link-cut", {"name": "link-cut", "seconds": 10}),
    ("link-cut:1", {"name": "link-cut", "seconds": 1}),
    ("link-cut:600", {"name": "link-cut", "seconds": 600}),
    ("disk-full", {"name": "disk-full", "late": False}),
    ("disk-full:late", {"name": "disk-full", "late": True}),
    ("lazy-kill", {"name": "lazy-kill"}),
])
def test_a_fault_as_a_learner_types_it(text, spec):
    assert faults.fault_type(text) == spec


@pytest.mark.parametrize("text", ["warp", "link-cut:0", "link-cut:601", "link-cut:ten", "page-server-kill:3",
                                  "disk-full:early", "lazy-kill:1", ""])
def test_anything_else_is_refused_naming_what_is_allowed(text):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        faults.fault_type(text)
    assert str(e.value).startswith(f"'{text}' is not a fault: page-server-kill, link-cut[:SECONDS] (1 to 600")
    assert str(e.value).endswith("disk-full[:late] or lazy-kill")


@pytest.mark.parametrize("spec, mode, said", [
    ({"name": "page-server-kill"}, "cold", "--fault page-server-kill needs --mode page-server"),
    ({"name": "disk-full", "late": True}, "page-server", "--fault disk-full needs --mode cold"),
    ({"name": "link-cut", "seconds": 10}, "lazy", "--fault link-cut is not caused in mode lazy (its fault is lazy-kill)"),
    ({"name": "lazy-kill"}, "cold", "--fault lazy-kill needs --mode lazy"),
])
def test_a_fault_the_mode_has_no_part_for_is_a_usage_error(spec, mode, said):
    with pytest.raises(LabError) as e:
        faults.Fault(spec, None).fits(mode)
    assert e.value.code == USAGE and str(e.value).startswith(said)


@pytest.mark.parametrize("spec, mode", [
    ({"name": "page-server-kill"}, "page-server"),
    ({"name": "disk-full", "late": False}, "cold"),
    ({"name": "link-cut", "seconds": 10}, "cold"),
    ({"name": "link-cut", "seconds": 10}, "pre-copy"),
    ({"name": "lazy-kill"}, "lazy"),
])
def test_a_fault_that_fits_its_mode_passes(spec, mode):
    faults.Fault(spec, None).fits(mode)


def test_the_state_of_a_process_here():
    assert faults.state_of(0) == "gone"  # /proc/0 does not exist
    assert faults.state_of(os.getpid()) == "running"


def test_the_terminal_says_the_fault_in_four_lines():
    r = {"fault": {"name": "disk-full", "causedAt": "a tmpfs", "outcome": "failed, never dumped", "lab": "refused",
                   "criu": "never ran", "evidence": {"here": "/var/log/criu-lab/migrate-1"}}}
    assert faults.lines(r) == ["  fault disk-full: a tmpfs", "    outcome: failed, never dumped; the lab: refused",
                               "    CRIU: never ran", "    evidence: here /var/log/criu-lab/migrate-1"]
    assert faults.lines({}) == []
