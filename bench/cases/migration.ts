/**
 * Migration downtime per mode, as a ratio to cold, for processes holding 256 MiB and 1 GiB,
 * between two network-namespace hosts (netlab/netns.ts) on this kernel. Targets
 * (savings over cold): page-server at most 0.8x cold at 1 GiB; pre-copy at most 0.3x cold
 * where dirty tracking works. lazy needs a second kernel, so it is not measurable here.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createLabPair, type LabPair } from "../../netlab/netns";
import { run, waitFor } from "../../netlab/run";
import type { BenchContext, BenchResult } from "../run";

const LAB = path.join(__dirname, "..", "..", "host", "criu-lab");
const MODES = ["cold", "page-server", "pre-copy"];

/** Holds SIZE MiB, every page written (untouched pages are not dumped), then idles. */
const HOLDER = `
import sys, time
n = int(sys.argv[1]) << 20
b = bytearray(n)
for i in range(0, n, 4096):
    b[i] = 1
print("ready", flush=True)
while True:
    time.sleep(0.2)
`;

export default async function migration(ctx: BenchContext): Promise<BenchResult[]> {
  const sizes = ctx.sizesMiB ?? [256, 1024];
  const modes = ctx.modes ?? MODES;
  const results: BenchResult[] = [];
  const label = (size: number) =>
    `migration ${size >= 1024 ? `${size / 1024} GiB` : `${size} MiB`}`;
  const skip = (note: string) =>
    sizes.flatMap((size) =>
      modes.map((mode) => ({
        case: label(size),
        metric: `${mode} downtime`,
        unit: "ms",
        values: [],
        note,
      })),
    );
  if (process.getuid?.() !== 0) return skip("needs root");
  const tracks = run("/usr/local/sbin/criu", ["check", "--feature", "mem_dirty_track"]).code === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "criu-lab-bench-"));
  const work = path.join(dir, "work");
  fs.mkdirSync(work, { mode: 0o755 });
  let pair: LabPair | undefined;
  const pids: number[] = [];
  try {
    pair = await createLabPair({ dir, hide: [work] });
    const lab = pair;
    for (const size of sizes) {
      for (const mode of modes) {
        const result: BenchResult = {
          case: label(size),
          metric: `${mode} downtime`,
          unit: "ms",
          values: [],
          ...(mode === "cold" ? {} : { baseline: "cold downtime" }),
        };
        if (mode === "page-server" && size >= 1024) {
          result.target = { atMost: 0.8, of: "ratio", text: "<= 0.8x cold" };
        }
        if (mode === "pre-copy") {
          result.target = { atMost: 0.3, of: "ratio", text: "<= 0.3x cold (dirty tracking)" };
          if (!tracks) result.note = "no dirty tracking on this kernel";
        }
        if (mode === "lazy") result.note = "needs a second kernel (source keeps the PID)";
        results.push(result);
        if (result.note) continue;
        for (let i = 0; i < ctx.runs; i++) {
          const runDir = path.join(work, `${mode}-${size}-${i}`);
          const started = lab.source.ssh(
            `mkdir -p ${runDir} && cd ${runDir} && { setsid /usr/bin/python3 -c '${HOLDER}' ${size} </dev/null >out 2>&1 & echo $!; }`,
          );
          const pid = Number(started.stdout.trim());
          pids.push(pid);
          await waitFor(
            `${size} MiB written`,
            () =>
              fs.readFileSync(path.join(runDir, "out"), "utf8").includes("ready")
                ? true
                : undefined,
            300_000,
          );
          const ran = lab.source.ssh(
            `CRIU_LAB_LOG_DIR=${runDir}/logs ${LAB} migrate --to root@${lab.destination.address} ` +
              `--identity ${lab.key.path} --known-hosts ${lab.knownHosts} --pid ${pid} --mode ${mode} --json`,
          );
          let r: {
            ok: boolean;
            downtimeMs: number;
            freezeMs: number;
            transferMs: number;
            restoreMs: number;
            criu?: { dump?: { frozenTimeUs?: number }; restore?: { restoreTimeUs?: number } };
            error?: string;
          };
          try {
            r = JSON.parse(ran.stdout);
          } catch {
            throw new Error(`migrate printed no JSON (exit ${ran.code}): ${ran.stderr}`);
          }
          if (!r.ok) throw new Error(`migrate ${mode} ${size} MiB failed: ${r.error}`);
          result.values.push(r.downtimeMs);
          ctx.log(
            `${label(size)} ${mode} #${i + 1}: downtime ${r.downtimeMs} ms (freeze ${r.freezeMs}, transfer ${r.transferMs}, restore ${r.restoreMs}; ` +
              `CRIU's own: frozen ${(r.criu?.dump?.frozenTimeUs ?? NaN) / 1000} ms, restore ${(r.criu?.restore?.restoreTimeUs ?? NaN) / 1000} ms)`,
          );
          killHolder(pid);
          // Both hosts' copies of the images go: the destination's live in memory (tmpfs).
          lab.destination.ssh(`rm -rf ${runDir}`);
          fs.rmSync(runDir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    pids.forEach(killHolder);
    await pair?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** Ends PID only while it is still one of our holders (a PID can be reused). */
function killHolder(pid: number): void {
  try {
    if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("bytearray(n)")) {
      process.kill(pid, "SIGKILL");
    }
  } catch {
    // already ended
  }
}
