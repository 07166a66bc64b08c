"""criu-lab scenario run NAME: one of the lab's stories, unattended, checked and reported."""
from . import game, migration, training

# Each scenario is a module with `register(runsub)`: it adds its parser to `scenario run`,
# with its own flags, and sets `fn` to a function returning (exit code, JSON result, text).
SCENARIOS = (training, game, migration)


def register(sub):
    p = sub.add_parser("scenario", help="run one of the lab's stories unattended")
    runsub = p.add_subparsers(dest="action", required=True).add_parser(
        "run", help="run a scenario and report").add_subparsers(dest="scenario", required=True)
    for module in SCENARIOS:
        module.register(runsub)
    for leaf in runsub.choices.values():
        leaf.add_argument("--json", action="store_true", help="print one JSON object")
