"""criu-lab scenario run training: periodic checkpoints of a training job, a crash, recovery.

The original lab's story: a 3-day training run survives a crash because it was checkpointed
every few hours. Here trainer.py is checkpointed every --interval seconds without being
stopped (`criu dump --leave-running`; incremental with --track-mem/--prev-images-dir where
the doctor says dirty tracking works), killed with SIGKILL, and restored from the latest
complete checkpoint on disk: it must resume at that checkpoint's step with the checksum it had
then, and its own check of its memory must pass. Each dump goes to RAM when there is room and
is persisted to disk after the job runs on (checkpoints.py), so the job is frozen only while
its memory is written to RAM.
"""
import argparse
import os
import re
import shutil
import signal
import time

from . import checkpoints as ckpt
from . import doctor, timeline
from .common import (base, criu, crit_show, dump_estimate, free_bytes, frozen_us, new_run, private_dir, ready,
                     scenario_end)
from .outcome import BROKEN, LabError, attempt
from .procs import start_detached, stop, wait_for

# Beside the package: /usr/local/lib/criu-lab on a lab host, cloud-init/ in the repository.
TRAINER = os.environ.get("CRIU_LAB_TRAINER", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "trainer.py"))
STEP = re.compile(r"^step (\d+) checksum ([0-9a-f]{16})$", re.M)
CHECK = re.compile(r"^check step (\d+) checksum ([0-9a-f]{16}): (.*)$", re.M)


def positive(kind):
    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            number = 0
        if not number > 0:
            raise argparse.ArgumentTypeError(f"'{value}' is not a positive number")
        return number
    return parse


def mib_or_zero(value):
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number of MiB")
    return int(value)


def register(runsub):
    p = runsub.add_parser("training", help="periodic checkpoints of a training job, a crash (kill -9), recovery")
    p.add_argument("--size-mib", type=positive(int), default=256, help="the job's memory state in MiB (default 256)")
    p.add_argument("--interval", type=positive(float), default=5.0, help="seconds between checkpoints (default 5)")
    p.add_argument("--count", type=positive(int), default=3, help="checkpoints before the crash (default 3)")
    p.add_argument("--step-seconds", type=positive(float), default=0.5, help="seconds per training step (default 0.5)")
    p.add_argument("--dirty-percent", type=positive(float), default=1.0,
                   help="percent of the state a step changes (default 1)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="full dumps even where incremental ones work")
    mode.add_argument("--incremental", action="store_true",
                      help="incremental dumps (--track-mem), refused where dirty tracking does not work")
    p.add_argument("--ram-budget-mib", type=mib_or_zero, metavar="MIB",
                   help="RAM a checkpoint may take before it is on disk (default: what MemAvailable leaves; "
                        "0: every dump straight to disk)")
    p.set_defaults(fn=cmd_training)


def steps(text):
    """{step: checksum} of the progress lines in TEXT."""
    return {int(n): c for n, c in STEP.findall(text)}


def read(path, start=0):
    with open(path, errors="replace") as f:
        f.seek(start)
        return f.read()


def checkpoint_step(images, log):
    """The step the job had reached when it was frozen: CRIU saved the position of its output
    file (files.img, `pos`), so the last whole progress line before that position is it."""
    pos = next(e["reg"]["pos"] for e in crit_show(os.path.join(images, "files.img"))
               if "reg" in e and e["reg"]["name"] == os.path.abspath(log))
    before = read(log)[:pos]
    found = STEP.findall(before[:before.rfind("\n") + 1])
    if not found:
        raise LabError(BROKEN, f"no progress line before offset {pos} of {log}")
    return int(found[-1][0]), found[-1][1]


def cmd_training(args):
    r = base()
    r.update(checkpoints=0, incremental=False, frozenUs=[], imageBytes=[], dumpMs=[], checkpointDetails=[])
    run_dir = new_run("training")
    out = os.path.join(run_dir, "trainer.log")
    checkpoints = os.path.join(run_dir, "checkpoints")
    say = (lambda m: print(m, flush=True)) if not args.json else (lambda m: None)
    child, events, ram = None, [], None
    budget = None if args.ram_budget_mib is None else args.ram_budget_mib * ckpt.MIB

    def cleanup():
        if child is not None:
            stop(r.get("restoredPid") or child.pid, b"trainer.py")
            child.poll()
        if ram:
            shutil.rmtree(ram, ignore_errors=True)  # the job's memory: never left in RAM

    with attempt(r, cleanup) as outcome:
        ready("scenario run training")
        found = doctor.require("training-full", *(["training-incremental"] if args.incremental else []))
        incremental = r["incremental"] = not args.full and found["exercises"]["training-incremental"]["ok"]
        private_dir(run_dir)
        os.mkdir(checkpoints, 0o700)
        ram = ckpt.ram_dir()
        child = start_detached([TRAINER, "--size-mib", str(args.size_mib), "--step-seconds", str(args.step_seconds),
                                "--dirty-percent", str(args.dirty_percent)], out, append=True)
        pid = r["pid"] = child.pid
        say(f"trainer.py runs as PID {pid} with {args.size_mib} MiB of state, output in {out}")
        # Filling the state takes a while for large sizes (about 1 s per 64 MiB on a slow VM).
        wait_for("the trainer's first step", lambda: 1 in steps(read(out)), 60 + args.size_mib / 16)
        t0 = time.monotonic()
        events.append((0.0, "start", t0))  # event times count from t0 (monotonic clock)
        for i in range(1, args.count + 1):
            time.sleep(max(0.0, t0 + i * args.interval - time.monotonic()))
            if child.poll() is not None:
                raise LabError(BROKEN, f"the trainer exited ({child.returncode}) before checkpoint {i}; see {out}")
            need = dump_estimate(pid)
            if need is None:
                raise LabError(BROKEN, f"cannot read /proc/{pid}/smaps_rollup to size checkpoint {i}")
            where, why = ckpt.placement(i, need, ckpt.mem_available(), free_bytes(ram)[0] if ram else None,
                                        free_bytes(checkpoints)[0], budget)
            if where == "disk":
                say(f"checkpoint {i} goes straight to disk (the job stays frozen while it is written): {why}")
            images = os.path.join(ram, str(i)) if where == "ram" else ckpt.partial(checkpoints, i)
            os.mkdir(images, 0o700)
            argv = ["dump", "-t", str(pid), "-D", images, "--leave-running"]
            if incremental:
                # Soft-dirty bits: pages unchanged since the previous dump are not written
                # again but referenced in the parent (https://criu.org/Incremental_dumps): the
                # previous checkpoint on disk, wherever this dump goes (ckpt.parent_arg).
                argv += ["--track-mem"] + (["--prev-images-dir", ckpt.parent_arg(checkpoints, i)] if i > 1 else [])
            at = time.monotonic() - t0
            r["dumpMs"].append(criu(argv, os.path.join(run_dir, f"dump-{i}.log")))
            r["frozenUs"].append(frozen_us(images))
            r["imageBytes"].append(sum(os.path.getsize(os.path.join(images, n)) for n in os.listdir(images)
                                       if not os.path.islink(os.path.join(images, n))))
            step, checksum = checkpoint_step(images, out)
            # The job runs on; now the images go to disk, complete or not at all.
            persist_ms = ckpt.persist(images, checkpoints, i, {"step": step, "checksum": checksum, "where": where})
            if where == "ram":
                shutil.rmtree(images)
            r["checkpoints"], r["lastCheckpointStep"], r["lastCheckpointChecksum"] = i, step, checksum
            r["checkpointDetails"].append({"checkpoint": i, "step": step, "where": where, "why": why,
                                           "frozenMs": round(r["frozenUs"][-1] / 1000, 1), "dumpMs": r["dumpMs"][-1],
                                           "persistMs": persist_ms, "imageBytes": r["imageBytes"][-1]})
            events.append((at, "checkpoint", i, step, r["frozenUs"][-1], r["imageBytes"][-1], where, persist_ms))
            say(f"checkpoint {i} at step {step}: frozen {r['frozenUs'][-1] / 1000:.1f} ms, "
                f"{r['imageBytes'][-1] / 2**20:.1f} MiB of images {'in RAM' if where == 'ram' else 'on disk'}, "
                f"in {os.path.join(checkpoints, str(i))} {persist_ms:.0f} ms later")
        # Work done after the last checkpoint is what the crash loses.
        wait_for("two steps after the last checkpoint",
                 lambda: max(steps(read(out))) >= r["lastCheckpointStep"] + 2, 30 + 4 * args.step_seconds)
        os.kill(pid, signal.SIGKILL)  # the crash
        child.wait(10)  # reaped: a zombie would hold the PID the restore needs
        before = read(out)
        crashed = r["crashedAtStep"] = max(steps(before))
        events.append((time.monotonic() - t0, "crash", crashed))
        say(f"kill -9 {pid} at step {crashed}")
        pidfile = os.path.join(run_dir, "restored.pid")
        # What a crash leaves: the newest checkpoint complete on disk (checkpoints.py).
        r["restoredCheckpoint"], r["restoredFrom"] = ckpt.latest_complete(checkpoints)
        at = time.monotonic() - t0
        r["restoreMs"] = criu(["restore", "-d", "-D", r["restoredFrom"], "--pidfile", pidfile],
                              os.path.join(run_dir, "restore.log"))
        with open(pidfile) as f:
            restored = r["restoredPid"] = int(f.read())
        events.append((at, "restore", r["restoreMs"]))
        after = wait_for("the restored trainer's next step", lambda: steps(read(out, len(before))))
        r["resumedAtStep"] = min(after) - 1
        r["lostSteps"] = crashed - r["resumedAtStep"]
        # zdtm style: the job checks its own memory against its running checksum.
        os.kill(restored, signal.SIGUSR1)
        check = wait_for("the restored trainer's self-check", lambda: CHECK.findall(read(out, len(before))),
                         30 + args.size_mib / 16)[0]
        original = steps(before)
        replay = steps(read(out, len(before)))
        # Deterministic job: the restored one must print, for each step the original also
        # reached, the checksum the original printed.
        same = all(original[s] == c for s, c in replay.items() if s in original)
        r["selfCheck"] = check[2]
        r["stateMatches"] = check[2] == "ok" and same and original.get(int(check[0]), check[1]) == check[1]
        r["overheadPercent"] = round(sum(r["frozenUs"]) / len(r["frozenUs"]) / (args.interval * 1e6) * 100, 3)
        events.append((time.monotonic() - t0, "end"))
        say(f"restored as PID {restored} in {r['restoreMs']} ms; resumed at step {r['resumedAtStep']} "
            f"(lost {r['lostSteps']} steps), self-check: {check[2]}")
        problems = []
        if restored != pid:
            problems.append(f"restored PID {restored}, expected {pid}")
        if r["resumedAtStep"] != r["lastCheckpointStep"]:
            problems.append(f"resumed at step {r['resumedAtStep']}, but the latest checkpoint was taken at "
                            f"step {r['lastCheckpointStep']}: not the latest checkpoint")
        if not r["stateMatches"]:
            problems.append(f"the restored state differs (self-check: {check[2]}; checksums as the "
                            f"original's: {same})")
        if problems:
            raise LabError(BROKEN, "; ".join(problems))
        r["ok"] = True
    r["imagesDir"] = checkpoints
    return scenario_end(outcome, r, run_dir, lambda: events and draw(r, events, args), "training scenario",
                        "training: recovered from the latest checkpoint.", "logs and checkpoints")


def draw(r, events, args):
    # A run that failed before its end is drawn up to now, on the events' clock (from t0).
    total = events[-1][0] if events[-1][1] == "end" else time.monotonic() - events[0][2]
    crash = next((e for e in events if e[1] == "crash"), None)
    restore = next((e for e in events if e[1] == "restore"), None)
    spans = [(0, crash[0] if crash else events[-1][0], "=")]
    marks = [(e[0], "F") for e in events if e[1] == "checkpoint"]
    if crash:
        spans.append((crash[0], restore[0] if restore else total, "."))
    if restore:
        spans += [(restore[0], restore[0] + restore[2] / 1000, "R"), (restore[0] + restore[2] / 1000, total, "=")]
    if crash:
        marks.append((crash[0], "X"))
    lines = [timeline.draw([("trainer", spans, marks)],
                           {"=": "running", "F": "checkpoint (frozen)", "X": "kill -9", ".": "down", "R": "restore"},
                           total)]
    kind = "incremental" if r["incremental"] else "full"
    for e in events:
        if e[1] == "checkpoint":
            lines.append(f"{e[0]:7.1f} s  F checkpoint {e[2]} ({kind}) at step {e[3]}: frozen {e[4] / 1000:.1f} ms, "
                         f"{e[5] / 2**20:.1f} MiB of images " + (f"in RAM, on disk {e[7]:.0f} ms later" if e[6] == "ram"
                                                                  else f"straight to disk, synced in {e[7]:.0f} ms"))
        elif e[1] == "crash":
            lines.append(f"{e[0]:7.1f} s  X kill -9 at step {e[2]}")
        elif e[1] == "restore":
            lines.append(f"{e[0]:7.1f} s  R restore of checkpoint {r['restoredCheckpoint']} in {e[2]:.0f} ms: resumed at step "
                         f"{r.get('resumedAtStep', '?')}, {r.get('lostSteps', '?')} steps lost, state "
                         f"{'matches' if r.get('stateMatches') else 'DIFFERS'}")
    if r.get("overheadPercent") is not None:
        lines.append(f"overhead: {r['overheadPercent']} % of each {args.interval} s interval spent frozen "
                     f"(look: sudo crit show {r['imagesDir']}/1/stats-dump)")
    return "\n".join(lines)
