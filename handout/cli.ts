/**
 * `criu-lab-handout --stack NAME --out DIR`: the instructor's handout. Reads the stack's
 * outputs (the `seats` output; a stack from before it, its single-host outputs as seat 01) with
 * readStackOutputs, as `criu-lab-verify --stack` does, and writes DIR/seat-NN/ per seat:
 * the seat's key (0600), known_hosts, an ssh_config snippet and a README.md card
 * (./cards). Keys go to files only: nothing printed, errors included, ever holds one.
 * Exit codes (docs/design.md "Contracts"): 0 written; 2 bad flags or an --out that cannot be used;
 * 3 the stack's outputs cannot be read or are not a lab's.
 */
import { chmod, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ExitCode } from "../contract/checks";
import {
  StackOutputError,
  StackOutputRunner,
  UsageError,
  parseFlagArgs,
  readStackOutputs,
  redactKeys,
  runMain,
} from "../verify/cliCommon";
import { secretScrubber } from "../verify/verifier";
import {
  MAX_SEATS,
  SeatOutput,
  SeatOutputsError,
  parseSeatOutputs,
  regionOf,
  selectSeat,
} from "../contract/seats";
import { instructorSheet, labGuide, seatFiles, seatFolder } from "./cards";

export const USAGE = `usage: criu-lab-handout --stack NAME --out DIR [--seat N] [--force]

Writes one folder per seat of a deployed class for the students, and DIR/INSTRUCTOR.md (the
seats' hosts and instance ids, how to start a stopped seat; no key). DIR/seat-01/ holds the
seat's private key (seat-01.pem, mode 600), known_hosts (its hosts' keys), config (an
ssh_config: \`ssh -F config seat-01-a\` from that folder), README.md (a one-page card:
how to connect, the lab's steps, the migration peer in a two-host seat, auto-stop) and
LAB-GUIDE.md (the Lab guide the card points to). Nothing printed holds a key.

  --stack NAME   read \`pulumi stack output --json --show-secrets --stack NAME\`
  --out DIR      where to write; refused if it exists and is not empty, unless --force
  --seat N       only seat N (1 to ${MAX_SEATS})
  --force        write into a non-empty DIR, replacing the seat-NN folders it writes
  -h, --help     this help

exit codes: 0 written; 2 bad flags or an unusable --out; 3 the stack's outputs cannot be read`;

export interface HandoutFlags {
  stack: string;
  out: string;
  seat?: string;
  force: boolean;
}

export function parseHandoutFlags(argv: string[]): HandoutFlags | "help" {
  const { values } = parseFlagArgs({
    args: argv,
    options: {
      stack: { type: "string" },
      out: { type: "string" },
      seat: { type: "string" },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  for (const flag of ["stack", "out", "seat"] as const) {
    if (values[flag] !== undefined && values[flag].trim() === "") {
      throw new UsageError(`--${flag}: must not be empty`);
    }
  }
  if (!values.stack) throw new UsageError("--stack NAME is required");
  if (!values.out) throw new UsageError("--out DIR is required");
  if (values.seat !== undefined && !/^\d{1,2}$/.test(values.seat)) {
    throw new UsageError(`--seat: '${values.seat}' is not a seat number from 1 to ${MAX_SEATS}`);
  }
  return { stack: values.stack, out: values.out, seat: values.seat, force: values.force };
}

/** Every string in a parsed JSON value that holds a private key. */
function keysIn(value: unknown): string[] {
  if (typeof value === "string") return value.includes("PRIVATE KEY") ? [value] : [];
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(keysIn);
  return [];
}

/** Refuses an --out that is a file, or a non-empty directory without --force. */
async function checkOut(out: string, force: boolean): Promise<void> {
  let entries: string[];
  try {
    const s = await stat(out);
    if (!s.isDirectory()) throw new UsageError(`--out ${out}: exists and is not a directory`);
    entries = await readdir(out);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    throw new UsageError(`--out ${out}: cannot use it (${code ?? String(err)})`);
  }
  if (entries.length > 0 && !force) {
    throw new UsageError(
      `--out ${out}: exists and is not empty (${entries.length} entries); ` +
        "choose a new folder, or --force to replace the seat-NN folders written there",
    );
  }
}

/** Writes the seats' folders; the folders are 0700 (they hold keys), each file its mode. */
async function writeSeats(
  out: string,
  stack: string,
  seats: SeatOutput[],
  guide: string,
  region: string | undefined,
): Promise<void> {
  try {
    await mkdir(out, { recursive: true, mode: 0o700 });
    for (const seat of seats) {
      const dir = join(out, seatFolder(seat));
      // --force: a previous handout's folder for this seat is replaced, not merged.
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { mode: 0o700 });
      for (const file of seatFiles(seat, stack, guide)) {
        const path = join(dir, file.name);
        // `mode` applies at creation only, and the umask narrows it: set it explicitly.
        await writeFile(path, file.content, { mode: file.mode, flag: "wx" });
        await chmod(path, file.mode);
      }
      await chmod(dir, 0o700);
    }
    // With --seat N the sheet lists that seat only, like the folders written.
    await writeFile(join(out, "INSTRUCTOR.md"), instructorSheet(seats, stack, region), {
      mode: 0o644,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`--out ${out}: cannot write ${e.path ?? "it"} (${e.code ?? e.message})`);
  }
}

export interface HandoutDeps {
  /** Runs `pulumi stack output` (default: the pulumi CLI). Tests inject their own. */
  readStack?: StackOutputRunner;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export async function main(argv: string[], deps: HandoutDeps = {}): Promise<number> {
  const print = deps.out ?? ((text: string) => process.stdout.write(`${text}\n`));
  const printErr = deps.err ?? ((text: string) => process.stderr.write(`${text}\n`));
  let scrub = redactKeys;
  const out = (text: string) => print(scrub(text));
  const err = (text: string) => printErr(scrub(text));
  // Bad flags and an unusable --out are UsageErrors (2); outputs that cannot be read or used, 3.
  const known = (e: unknown) =>
    e instanceof SeatOutputsError
      ? { exitCode: e.exitCode }
      : e instanceof StackOutputError
        ? { exitCode: ExitCode.unreachable }
        : undefined;
  return runMain({ name: "criu-lab-handout", usage: USAGE, known, err }, async () => {
    const flags = parseHandoutFlags(argv);
    if (flags === "help") {
      out(USAGE);
      return ExitCode.ok;
    }
    await checkOut(flags.out, flags.force);
    const outputs = await readStackOutputs(flags.stack, deps.readStack);
    const keys = secretScrubber(keysIn(outputs));
    scrub = (t) => redactKeys(keys(t));
    const seats = selectSeat(parseSeatOutputs(outputs), flags.seat);
    // The guide the cards point to, from the docs shipped with this package.
    const guide = labGuide(await readFile(resolve(__dirname, "../docs/lab-guide.md"), "utf8"));
    await writeSeats(flags.out, flags.stack, seats, guide, regionOf(outputs));
    for (const s of seats) {
      const hosts = s.hosts.map((h) => `${h.role} ${h.publicIp}`).join(", ");
      const stop = s.autoStopMinutes === undefined ? "" : `; auto-stop ${s.autoStopMinutes} min`;
      out(`${join(flags.out, seatFolder(s))}/  ${s.hosts.length} host(s): ${hosts}${stop}`);
    }
    out(
      `criu-lab-handout: wrote ${seats.length} seat folder(s) in ${flags.out}. ` +
        "Give each student their own folder only: it holds their seat's private key.",
    );
    return ExitCode.ok;
  });
}
