/**
 * The game server's pause: the longest a player waited for a reply while the server was
 * dumped with --tcp-established and restored with no maintenance wait, the dump + restore and
 * the time the server was frozen; from `criu-lab scenario run game` and from the same by hand
 * (bench/hand.ts gameByHand, images in RAM), interleaved round by round.
 * CRIU_LAB_BENCH_CLIENTS sets the players (4).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "../../netlab/run";
import { criuLab, envNumber } from "../criu-lab";
import type { BenchContext, BenchResult } from "../figures";
import { gameByHand, readMarks } from "../hand";

const HERE = path.join(__dirname, "..", "..", "host");
const PROGRAMS = {
  server: path.join(HERE, "game_server.py"),
  client: path.join(HERE, "game_client.py"),
};
const CRIT = "/usr/local/bin/crit";

export default async function game(ctx: BenchContext): Promise<BenchResult[]> {
  const clients = envNumber("CRIU_LAB_BENCH_CLIENTS", 4);
  const label = `${clients} players, no maintenance`;
  const figure = (metric: string, floor: boolean): BenchResult => ({
    case: "game",
    metric: `${metric}${floor ? "" : " by hand"} (${label})`,
    unit: "ms",
    values: [],
    ...(floor ? { floor: `${metric} by hand (${label})` } : {}),
  });
  const [pause, pauseHand] = [
    figure("longest pause a player saw", true),
    figure("longest pause a player saw", false),
  ];
  const [downtime, downtimeHand] = [
    figure("dump + restore", true),
    figure("dump + restore", false),
  ];
  const [frozen, frozenHand] = [figure("server frozen", true), figure("server frozen", false)];
  const lock = (criuLab(["doctor"]).networkLock as string | undefined) ?? "nftables";
  const logDir = fs.mkdtempSync("/tmp/criu-lab-bench-game-");
  const shm = fs.mkdtempSync("/dev/shm/criu-lab-bench-game-");
  try {
    for (let round = 1; round <= ctx.runs; round++) {
      ctx.log(`game: ${clients} players, round ${round}/${ctx.runs}`);
      const r = criuLab(
        ["scenario", "run", "game", "--clients", String(clients), "--maintenance", "0"],
        { CRIU_LAB_LOG_DIR: logDir },
      );
      if (!r.ok || typeof r.pauseMs !== "number" || typeof r.frozenUs !== "number") {
        ctx.log(`game: round ${round} failed: ${String(r.error ?? "no pauseMs or frozenUs")}`);
        continue;
      }
      const dir = path.join(shm, String(round));
      const done = run("bash", ["-c", gameByHand(PROGRAMS, clients, dir, lock)]);
      if (done.code !== 0) throw new Error(`the game by hand exited ${done.code}: ${done.stderr}`);
      const marks = readMarks(done.stdout);
      const gaps = [...done.stdout.matchAll(/longestGapMs=(\d+)/g)].map((m) => Number(m[1]));
      if (gaps.length !== clients)
        throw new Error(
          `the game by hand: ${gaps.length} of ${clients} players reported:\n${done.stdout}`,
        );
      const stats = run(CRIT, ["show", path.join(dir, "images", "stats-dump")]);
      const handFrozen = (
        JSON.parse(stats.stdout) as { entries: Array<{ dump: { frozen_time: number } }> }
      ).entries[0].dump.frozen_time;
      fs.rmSync(dir, { recursive: true, force: true });
      pause.values.push(r.pauseMs);
      downtime.values.push((r.dumpMs as number) + (r.restoreMs as number));
      frozen.values.push(r.frozenUs / 1000);
      pauseHand.values.push(Math.max(...gaps));
      downtimeHand.values.push(marks.total);
      frozenHand.values.push(handFrozen / 1000);
      ctx.log(
        `  lab: pause ${r.pauseMs} ms, dump + restore ${downtime.values.at(-1)!.toFixed(0)} ms, frozen ${(r.frozenUs / 1000).toFixed(1)} ms; ` +
          `by hand: pause ${Math.max(...gaps)} ms, dump + restore ${marks.total.toFixed(0)} ms, frozen ${(handFrozen / 1000).toFixed(1)} ms`,
      );
    }
  } finally {
    fs.rmSync(logDir, { recursive: true, force: true });
    fs.rmSync(shm, { recursive: true, force: true });
  }
  return [pause, pauseHand, downtime, downtimeHand, frozen, frozenHand];
}
