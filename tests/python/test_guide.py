"""`criu-lab guide`: the guide's sections (headings outside code blocks) and the matcher that
finds one by the words of its heading; the exercise table's sections are the guide's."""
import argparse
import os

import pytest

from criu_lab import guide, progress

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

GUIDE = """# Lab guide

## Why checkpoint/restore

Text.

## Hands-on: checkpoint and restore the counter

```sh
# not a heading: a shell comment
./counter.py &
```

### What a checkpoint holds: your secrets too

Secrets.

## What this host can do: `criu-lab doctor`

Doctor.

## Migrate a process to another host

Last.
"""


def titles(hits):
    return [s["title"] for s in hits]


def test_sections_skip_the_title_and_code_blocks_and_end_at_the_next_peer():
    found = guide.sections(GUIDE)
    assert [(s["number"], s["level"], s["title"]) for s in found] == [
        (1, 2, "Why checkpoint/restore"),
        (2, 2, "Hands-on: checkpoint and restore the counter"),
        (3, 3, "What a checkpoint holds: your secrets too"),
        (4, 2, "What this host can do: `criu-lab doctor`"),
        (5, 2, "Migrate a process to another host"),
    ]
    lines = GUIDE.split("\n")
    hands_on = found[1]
    # A section holds its subsections, up to the next heading of its level.
    assert lines[hands_on["end"]] == "## What this host can do: `criu-lab doctor`"
    assert found[2]["end"] == hands_on["end"]
    assert found[-1]["end"] == len(lines)


@pytest.mark.parametrize("query, expected", [
    ("counter", ["Hands-on: checkpoint and restore the counter"]),
    ("HANDS-ON", ["Hands-on: checkpoint and restore the counter"]),
    ("secrets", ["What a checkpoint holds: your secrets too"]),
    ("criu-lab doctor", ["What this host can do: `criu-lab doctor`"]),
    ("migrat", ["Migrate a process to another host"]),   # a word's beginning
    ("3", ["What a checkpoint holds: your secrets too"]),  # its number in the list
    ("checkpoint", ["Why checkpoint/restore", "Hands-on: checkpoint and restore the counter",
                    "What a checkpoint holds: your secrets too"]),
    # Whole words win over beginnings: "host" is a word of two headings, a beginning of none other.
    ("host", ["What this host can do: `criu-lab doctor`", "Migrate a process to another host"]),
    ("restore counter", ["Hands-on: checkpoint and restore the counter"]),
    ("game server", []),
    ("9", []),
])
def test_match_by_heading_words_any_case(query, expected):
    assert titles(guide.match(guide.sections(GUIDE), query)) == expected


def test_no_query_is_the_whole_guide():
    assert guide.match(guide.sections(GUIDE), "  ") is None


def run_guide(tmp_path, monkeypatch, *words):
    path = tmp_path / "lab-guide.md"
    path.write_text(GUIDE)
    monkeypatch.setattr(guide, "CANDIDATES", [str(path)])
    return guide.cmd_guide(argparse.Namespace(section=list(words)))


def test_one_section_is_printed_from_its_heading_to_the_next(tmp_path, monkeypatch):
    code, result, text = run_guide(tmp_path, monkeypatch, "secrets")
    assert code == 0
    assert text == "### What a checkpoint holds: your secrets too\n\nSecrets."
    assert result["section"] == "What a checkpoint holds: your secrets too"
    assert result["text"] == text


def test_an_unknown_section_exits_2_listing_the_sections(tmp_path, monkeypatch):
    code, result, text = run_guide(tmp_path, monkeypatch, "dance")
    assert code == 2
    assert result["ok"] is False
    assert "no section matches 'dance'" in text
    assert "   5  Migrate a process to another host" in text
    assert "   3    What a checkpoint holds" in text  # indented under its section


def test_an_ambiguous_section_exits_2_listing_only_the_candidates(tmp_path, monkeypatch):
    code, _, text = run_guide(tmp_path, monkeypatch, "checkpoint")
    assert code == 2
    assert "'checkpoint' matches 3 sections" in text
    assert "Migrate" not in text


def test_no_guide_on_the_host_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(guide, "CANDIDATES", [str(tmp_path / "missing.md")])
    code, result, _ = guide.cmd_guide(argparse.Namespace(section=[]))
    assert code == 3
    assert "missing.md" in result["error"]


def test_the_checkout_finds_its_own_guide():
    assert os.path.realpath(guide.CANDIDATES[0]) == os.path.realpath(os.path.join(REPO, "docs", "lab-guide.md"))


def test_every_exercise_names_one_section_of_the_real_guide():
    with open(os.path.join(REPO, "docs", "lab-guide.md"), encoding="utf-8") as f:
        found = guide.sections(f.read())
    table = progress.exercises()
    assert len({e["id"] for e in table}) == len(table)
    for e in table:
        hits = guide.match(found, e["section"])
        assert hits is not None and len(hits) == 1, (e["id"], e["section"], titles(hits or []))
