"""The command line's argument checks: bad usage exits 2 naming the flag and what is allowed,
before any command runs (argparse stops at the first bad argument)."""
import pytest

from criu_lab import cli, scenario


@pytest.fixture(autouse=True)
def no_command_runs(monkeypatch):
    """Should a bad argument get through, no command runs (a scenario would run for real) and
    this process keeps its umask and signal handlers."""
    def parsed(args):
        raise AssertionError(f"parsed, and would have run: {args}")
    for module in (*cli.COMMANDS, *scenario.SCENARIOS):
        for name in dir(module):
            if name.startswith("cmd_"):
                monkeypatch.setattr(module, name, parsed)
    monkeypatch.setattr(cli.os, "umask", lambda mask: 0o022)
    monkeypatch.setattr(cli.signal, "signal", lambda sig, handler: None)


@pytest.mark.parametrize("argv, message", [
    (["migrate", "--to", "ubuntu@h", "--pid", "12x"], "argument --pid: '12x' is not a whole number"),
    (["migrate", "--to", "ubuntu@h", "--pid", "1", "--mode", "warm"],
     "argument --mode: invalid choice: 'warm'"),
    (["migrate", "--pid", "1"], "the following arguments are required: --to"),
    (["autostop", "--minutes", "-5"], "argument --minutes: '-5' is not a whole number"),
    (["scenario", "run", "training", "--size-mib", "0"], "argument --size-mib: '0' is not a positive number"),
    (["scenario", "run", "training", "--interval", "soon"], "argument --interval: 'soon' is not a positive number"),
    (["scenario", "run", "training", "--full", "--incremental"],
     "argument --incremental: not allowed with argument --full"),
    (["scenario", "run", "game", "--clients", "65"], "argument --clients: '65' is not a number of clients from 1 to 64"),
    (["scenario", "run", "backup", "--to", "ubuntu@h", "--checkpoints", "two"],
     "argument --checkpoints: 'two' is not a whole number"),
    (["scenario", "run", "dance"], "argument scenario: invalid choice: 'dance'"),
    (["demo", "--interval", "fast"], "argument --interval: invalid float value: 'fast'"),
    (["undo"], "argument command: invalid choice: 'undo'"),
    (["checkpoint", "export", "dir"], "the following arguments are required: FILE"),
    (["checkpoint", "dump", "--pid", "x1", "d"], "argument --pid: 'x1' is not a whole number"),
    (["checkpoint", "pack", "d"], "argument action: invalid choice: 'pack'"),
    (["checkpoint", "verify", "d", "--deep"], "unrecognized arguments: --deep"),
    (["link", "set", "--rate", "100mbps"], "argument --rate: '100mbps' is not a rate from 8kbit to 10gbit"),
    (["link", "reset"], "argument action: invalid choice: 'reset'"),
])
def test_bad_usage_exits_2_naming_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: criu-lab ")
    assert message in err


def test_every_command_and_scenario_takes_json(capsys):
    for argv in (["doctor", "--help"], ["scenario", "run", "migration", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
        assert "--json" in capsys.readouterr().out
