/**
 * The game server's pause: the longest a player waited for a reply
 * while the server was dumped with --tcp-established and restored with no maintenance
 * wait, and the time the server was frozen. CRIU_LAB_BENCH_CLIENTS sets the players (4).
 */
import { criuLab, envNumber, type BenchContext, type BenchResult } from "../criu-lab";

export default async function game(ctx: BenchContext): Promise<BenchResult[]> {
  const clients = envNumber("CRIU_LAB_BENCH_CLIENTS", 4);
  const pause: number[] = [];
  const frozen: number[] = [];
  const downtime: number[] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    ctx.log(`game: ${clients} players, run ${run}/${ctx.runs}`);
    const r = criuLab([
      "scenario",
      "run",
      "game",
      "--clients",
      String(clients),
      "--maintenance",
      "0",
    ]);
    if (!r.ok) {
      ctx.log(`game: run ${run} failed: ${String(r.error)}`);
      continue;
    }
    pause.push(r.pauseMs as number);
    frozen.push((r.frozenUs as number) / 1000);
    downtime.push((r.dumpMs as number) + (r.restoreMs as number));
  }
  const label = `${clients} players, no maintenance`;
  return [
    { case: "game", metric: `longest pause a player saw (${label})`, unit: "ms", values: pause },
    { case: "game", metric: `dump + restore (${label})`, unit: "ms", values: downtime },
    { case: "game", metric: `server frozen (${label})`, unit: "ms", values: frozen },
  ];
}
