/**
 * A class in one stack: the `seats` stack output read strictly, and every seat's
 * hosts verified concurrently with bounded parallelism. Each host goes through verifyLab()
 * unchanged (connect, cloud-init, `criu-lab check`, `criu-lab demo`); in a two-host seat host
 * `a` then migrates the counter to its peer `b` (`criu-lab scenario run migration`), a check
 * defined here, apart from REMOTE_CHECKS, because a host may not have that command yet: such
 * a host reports "not available" instead of failing. The result is one report, a table and
 * one exit code: the worst of the seats' (see worstExitCode).
 */
import type { NodeSSH } from "node-ssh";
import { CheckOutputError, ExitCode, NOT_THE_LEARNER, RemoteCheck, worstExitCode } from "./checks";

// Moved to ./checks (the single-host verifier needs it too); kept importable from here.
export { worstExitCode };
import { HostKeyFormatError, parseHostKey } from "./hostKey";
import { CommandTimeoutError, VerifyError, connect, runCommand } from "./session";
import {
  VerifyOptions,
  VerifyReport,
  VerifyTarget,
  secretScrubber,
  shellQuote,
  verifyLab,
} from "./verifier";

/** At most this many seats in a stack (components/config.ts MAX_SEATS: `seats` is at most 50). */
export const MAX_SEATS = 50;
/** Concurrent SSH verifications unless told otherwise (`--parallel N`). */
export const DEFAULT_PARALLEL = 8;
export const MAX_PARALLEL = 64;

export type HostRole = "a" | "b";

/**
 * What `criu-lab scenario run migration --mode` takes (host/criu_lab/modes.py
 * MODE_CHOICES): `auto` runs the first of pre-copy, page-server, cold the two hosts can do.
 */
export const MIGRATION_MODES = ["auto", "cold", "page-server", "pre-copy", "lazy"] as const;
export type MigrationMode = (typeof MIGRATION_MODES)[number];
/** A mode that runs: everything --mode takes but `auto`, which picks one of these. */
export type RanMode = Exclude<MigrationMode, "auto">;
const RAN_MODES: readonly string[] = MIGRATION_MODES.filter((m) => m !== "auto");

/**
 * A two-host seat's post-deploy migration a -> b in the `seats` output: the mode asked for
 * (config `migrationMode`), the one that ran and its downtime, both null when `pulumi up` ran
 * no migration (`verify` false).
 */
export interface SeatMigrationOutput {
  modeAsked: MigrationMode;
  mode: RanMode | null;
  downtimeMs: number | null;
}

/** One host of a seat, as the `seats` stack output describes it. */
export interface SeatHostOutput {
  role: HostRole;
  /** EC2 Name tag, e.g. criu-lab-seat-01-a; in a two-host seat, `a` reaches `b` by it. */
  name: string;
  instanceId: string;
  publicIp: string;
  /** The address in the subnet, which the seat's other host reaches by `name`; absent in stacks from before seats. */
  privateIp?: string;
  sshCommand: string;
  /** `<publicIp> ssh-ed25519 AAAA...`: the host key, pinned by every client. */
  knownHostsLine: string;
}

/** One seat of the `seats` stack output (a single-seat stack is read as seat "01"). */
export interface SeatOutput {
  /** Two digits: "01".."50". */
  seat: string;
  sshUser: string;
  /** The seat's own user key (secret): never printed. */
  privateKey: string;
  /** Idle minutes before a host powers off (0 = never); unknown for pre-`seats` stacks. */
  autoStopMinutes?: number;
  /** One host (`a`) or two (`a`, `b`). */
  hosts: SeatHostOutput[];
  /**
   * Two-host seats: the post-deploy migration a -> b. Absent in one-host seats and in stacks
   * from before `migrationMode`.
   */
  migration?: SeatMigrationOutput;
}

/**
 * The stack outputs do not match the contract, or a seat selection names no seat. `exitCode`
 * is 3 for outputs that cannot be used (not deployed, or from another version: "not ready")
 * and 2 for a bad `--seat`. Messages name the output's path, never a secret's value.
 */
export class SeatOutputsError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = "SeatOutputsError";
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A shape error in the outputs at `path` (exit 3). */
function bad(path: string, problem: string): SeatOutputsError {
  return new SeatOutputsError(`stack output '${path}' ${problem}`, ExitCode.unreachable);
}

/** `seats[0].hosts[1]` + `role`; top-level outputs have no prefix. */
function at(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** What a value is, for an error message, without echoing it (it may be a secret). */
function kindOf(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function str(obj: Json, key: string, path: string, pattern?: RegExp, allowed?: string): string {
  const value = obj[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw bad(at(path, key), `should be a non-empty string, got ${kindOf(value)}`);
  }
  if (pattern && !pattern.test(value)) {
    // Values checked against a pattern are public (addresses, names, ids): safe to show.
    throw bad(at(path, key), `is '${value}'; allowed: ${allowed ?? String(pattern)}`);
  }
  return value;
}

const SEAT_ID = /^(0[1-9]|[1-4][0-9]|50)$/;
const SSH_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
/** An address or DNS name: no spaces, no shell or ssh_config metacharacters. */
const ADDRESS = /^[A-Za-z0-9][A-Za-z0-9.:-]*$/;
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** Whether `text` is an EC2 instance id: public, and safe to print inside a command line. */
export function isInstanceId(text: unknown): text is string {
  return typeof text === "string" && INSTANCE_ID.test(text);
}

/**
 * The stack's `region` output when it holds a region name (stacks from before it have none):
 * public, and safe to print inside a command line.
 */
export function regionOf(outputs: unknown): string | undefined {
  const region = isObject(outputs) ? outputs.region : undefined;
  return typeof region === "string" && REGION.test(region) ? region : undefined;
}

function privateKeyOf(obj: Json, path: string): string {
  const value = obj.privateKey;
  if (typeof value !== "string" || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) {
    throw bad(
      at(path, "privateKey"),
      typeof value === "string"
        ? "is not a private key (no '-----BEGIN ... PRIVATE KEY-----' line); was it read without --show-secrets?"
        : `should be the seat's private key, got ${kindOf(value)}`,
    );
  }
  return value;
}

function knownHostsLineOf(obj: Json, path: string): string {
  const line = str(obj, "knownHostsLine", path);
  try {
    parseHostKey(line);
  } catch (err) {
    if (err instanceof HostKeyFormatError)
      throw bad(at(path, "knownHostsLine"), `is not usable: ${err.message}`);
    throw err;
  }
  return line;
}

function hostOf(value: unknown, path: string, expectedRole: HostRole): SeatHostOutput {
  if (!isObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
  const role = str(value, "role", path);
  if (role !== expectedRole) {
    throw bad(`${path}.role`, `is '${role}'; hosts come in the order 'a', 'b'`);
  }
  return {
    role: expectedRole,
    name: str(value, "name", path, HOST_NAME, "a host name (letters, digits, '.', '-')"),
    instanceId: str(value, "instanceId", path, INSTANCE_ID, "an EC2 instance id (i-...)"),
    publicIp: str(value, "publicIp", path, ADDRESS, "an IP address or DNS name"),
    ...(value.privateIp === undefined
      ? {}
      : { privateIp: str(value, "privateIp", path, IPV4, "an IPv4 address") }),
    sshCommand: str(value, "sshCommand", path),
    knownHostsLine: knownHostsLineOf(value, path),
  };
}

function seatOf(value: unknown, index: number): SeatOutput {
  const path = `seats[${index}]`;
  if (!isObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
  const seat = str(value, "seat", path, SEAT_ID, "two digits from 01 to 50");
  const minutes = value.autoStopMinutes;
  if (typeof minutes !== "number" || !Number.isSafeInteger(minutes) || minutes < 0) {
    throw bad(
      `${path}.autoStopMinutes`,
      `should be a whole number of minutes (0 = never), got ${typeof minutes === "number" ? minutes : kindOf(minutes)}`,
    );
  }
  const hosts = value.hosts;
  if (!Array.isArray(hosts) || hosts.length < 1 || hosts.length > 2) {
    throw bad(
      `${path}.hosts`,
      `should list 1 or 2 hosts, got ${Array.isArray(hosts) ? hosts.length : kindOf(hosts)}`,
    );
  }
  const migration = migrationOf(value.migration, `${path}.migration`, hosts.length);
  return {
    seat,
    sshUser: str(value, "sshUser", path, SSH_USER, "a Linux user name"),
    privateKey: privateKeyOf(value, path),
    autoStopMinutes: minutes,
    hosts: hosts.map((h, i) => hostOf(h, `${path}.hosts[${i}]`, i === 0 ? "a" : "b")),
    ...(migration ? { migration } : {}),
  };
}

/**
 * A seat's `migration`: absent (or null) in one-host seats and in stacks from before it;
 * in a two-host seat `modeAsked` becomes the verifier's `--mode`, so only a known mode passes.
 */
function migrationOf(
  value: unknown,
  path: string,
  hostCount: number,
): SeatMigrationOutput | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
  if (hostCount !== 2) {
    throw bad(path, "is for two-host seats (a migration a -> b); this seat has one host");
  }
  const modeAsked = value.modeAsked;
  if (
    typeof modeAsked !== "string" ||
    !(MIGRATION_MODES as readonly string[]).includes(modeAsked)
  ) {
    throw bad(
      `${path}.modeAsked`,
      `is ${typeof modeAsked === "string" ? `'${modeAsked.slice(0, 40)}'` : kindOf(modeAsked)}; allowed: ${MIGRATION_MODES.join(", ")}`,
    );
  }
  const mode = value.mode;
  if (mode !== null && (typeof mode !== "string" || !RAN_MODES.includes(mode))) {
    throw bad(
      `${path}.mode`,
      `is ${typeof mode === "string" ? `'${mode.slice(0, 40)}'` : kindOf(mode)}; allowed: ${RAN_MODES.join(", ")}, or null (no migration ran)`,
    );
  }
  const downtimeMs = value.downtimeMs;
  if (
    downtimeMs !== null &&
    (typeof downtimeMs !== "number" || !Number.isFinite(downtimeMs) || downtimeMs < 0)
  ) {
    throw bad(
      `${path}.downtimeMs`,
      `should be milliseconds (a number >= 0) or null, got ${typeof downtimeMs === "number" ? downtimeMs : kindOf(downtimeMs)}`,
    );
  }
  return { modeAsked: modeAsked as MigrationMode, mode: mode as RanMode | null, downtimeMs };
}

/**
 * The mode that ran and its downtime, from the migration scenario's JSON result; null where
 * the result does not say (a failure before auto picked, an older criu-lab).
 */
export function migrationFacts(result: Record<string, unknown>): {
  mode: RanMode | null;
  downtimeMs: number | null;
} {
  const { mode, downtimeMs } = result;
  return {
    mode: typeof mode === "string" && RAN_MODES.includes(mode) ? (mode as RanMode) : null,
    downtimeMs: typeof downtimeMs === "number" && Number.isFinite(downtimeMs) ? downtimeMs : null,
  };
}

/**
 * A two-host seat's `migration` output from its post-deploy migration's stdout (the scenario's
 * JSON, last line). Throws a CheckOutputError when there is no JSON object in it.
 */
export function seatMigrationOutput(stdout: string, modeAsked: MigrationMode): SeatMigrationOutput {
  return { modeAsked, ...migrationFacts(lastJsonObject(stdout)) };
}

/** Today's single-seat outputs (docs/design.md "Contracts") as seat "01" with host "a". */
function singleSeat(o: Json): SeatOutput {
  const host = typeof o.publicIp === "string" && o.publicIp ? "publicIp" : "publicDns";
  const present = Object.keys(o).sort();
  for (const key of [host, "privateKey", "knownHostsLine"]) {
    if (o[key] === undefined) {
      throw bad(
        key,
        `is missing (present: ${present.length ? present.join(", ") : "none"}); has \`pulumi up\` run for this stack?`,
      );
    }
  }
  const publicIp = str(o, host, "", ADDRESS, "an IP address or DNS name");
  const instanceId =
    o.instanceId === undefined ? "" : str(o, "instanceId", "", INSTANCE_ID, "i-...");
  return {
    seat: "01",
    sshUser:
      o.sshUser === undefined ? "ubuntu" : str(o, "sshUser", "", SSH_USER, "a Linux user name"),
    privateKey: privateKeyOf(o, ""),
    hosts: [
      {
        role: "a",
        name: "criu-lab",
        instanceId,
        publicIp,
        sshCommand: typeof o.sshCommand === "string" ? o.sshCommand : `ssh ubuntu@${publicIp}`,
        knownHostsLine: knownHostsLineOf(o, ""),
      },
    ],
  };
}

/**
 * Reads the seats from `pulumi stack output --json --show-secrets` (parsed JSON): the `seats`
 * output when there is one, else today's single-seat outputs as seat "01", host "a".
 * Strict: seats numbered in order without duplicates, a key of its own per seat, 1 or 2 hosts in the order a, b,
 * addresses and names that are safe in a shell and an ssh_config, a parseable host key per host.
 */
export function parseSeatOutputs(outputs: unknown): SeatOutput[] {
  if (!isObject(outputs)) {
    throw new SeatOutputsError(
      `the stack outputs should be a JSON object, got ${kindOf(outputs)}`,
      ExitCode.unreachable,
    );
  }
  if (outputs.seats === undefined) return [singleSeat(outputs)];
  const seats = outputs.seats;
  if (!Array.isArray(seats) || seats.length < 1 || seats.length > MAX_SEATS) {
    throw bad(
      "seats",
      `should list 1 to ${MAX_SEATS} seats, got ${Array.isArray(seats) ? seats.length : kindOf(seats)}`,
    );
  }
  const parsed = seats.map(seatOf);
  parsed.forEach((s, i) => {
    const previous = parsed[i - 1];
    if (previous && Number(s.seat) <= Number(previous.seat)) {
      throw bad(
        `seats[${i}].seat`,
        `is '${s.seat}' after '${previous.seat}'; seats come in increasing order, each once`,
      );
    }
    // A student gets their seat's key only: a key shared by two seats would open both.
    const same = parsed.findIndex((o) => o.privateKey.trim() === s.privateKey.trim());
    if (same < i) {
      throw bad(
        `seats[${i}].privateKey`,
        `is the same key as seats[${same}]'s; every seat must have its own key`,
      );
    }
  });
  return parsed;
}

/** `--seat N`: 1..50, "1" or "01"; returns the two-digit id. */
export function parseSeatNumber(text: string): string {
  const n = Number(text);
  if (!/^\d{1,2}$/.test(text.trim()) || n < 1 || n > MAX_SEATS) {
    throw new SeatOutputsError(
      `--seat: '${text}' is not a seat number from 1 to ${MAX_SEATS}`,
      ExitCode.usage,
    );
  }
  return String(n).padStart(2, "0");
}

/** Only the seat asked for; a seat the stack does not have is bad input (2). */
export function selectSeat(seats: SeatOutput[], seat: string | undefined): SeatOutput[] {
  if (seat === undefined) return seats;
  const id = parseSeatNumber(seat);
  const found = seats.filter((s) => s.seat === id);
  if (found.length === 0) {
    throw new SeatOutputsError(
      `--seat ${seat}: the stack has no seat ${id} (it has ${seats.map((s) => s.seat).join(", ")})`,
      ExitCode.usage,
    );
  }
  return found;
}

/** One host to verify, with the seat and role it belongs to. */
export interface SeatTarget extends VerifyTarget {
  seat: string;
  role: HostRole;
  /** On host `a` of a two-host seat: how `a` reaches `b` (`user@name`) for the migration. */
  peer?: string;
  /**
   * On host `a`: the migration's `--mode`, the seat's `migration.modeAsked`; absent for a
   * stack from before it, whose hosts get the scenario's default.
   */
  migrationMode?: MigrationMode;
}

/**
 * The verification targets of a stack's outputs (parsed JSON), in seat order, port 22.
 * In a two-host seat, `a`'s peer is `b` by its name: the migration runs between the hosts'
 * private addresses (the security group admits the peer ports only from itself), and the
 * infrastructure makes that name resolve on `a`.
 */
export function targetsFromStackOutputs(
  outputs: unknown,
  options: { seat?: string } = {},
): SeatTarget[] {
  const region = regionOf(outputs);
  return selectSeat(parseSeatOutputs(outputs), options.seat).flatMap((s) =>
    s.hosts.map((h) => {
      const peer = h.role === "a" ? s.hosts[1] : undefined;
      return {
        seat: s.seat,
        role: h.role,
        host: h.publicIp,
        port: 22,
        user: s.sshUser,
        privateKey: s.privateKey,
        hostKey: h.knownHostsLine,
        // What verifyLab says of a host that never answers: stopped, and how to start it.
        ...(s.autoStopMinutes === undefined
          ? {}
          : {
              autoStop: {
                minutes: s.autoStopMinutes,
                ...(isInstanceId(h.instanceId) ? { instanceId: h.instanceId } : {}),
                ...(region ? { region } : {}),
              },
            }),
        ...(peer ? { peer: `${s.sshUser}@${peer.name}` } : {}),
        ...(peer && s.migration ? { migrationMode: s.migration.modeAsked } : {}),
      };
    }),
  );
}

/**
 * The two-host check, run on host `a` once both hosts pass: the counter migrated to `b` in
 * `mode` (config `migrationMode`; without it no `--mode`: the scenario's default, cold, which
 * a host from before `--mode auto` also has). Defined here and not in REMOTE_CHECKS because
 * hosts without the command must still verify (see classifyMigration).
 */
export function migrationCheck(peer: string, mode?: MigrationMode): RemoteCheck {
  return {
    name: "migration",
    command: `sudo ${NOT_THE_LEARNER} criu-lab scenario run migration --to ${shellQuote(peer)}${mode ? ` --mode ${shellQuote(mode)}` : ""} --json`,
    timeoutSeconds: 600,
    // For the judge on the host (`pulumi up`'s migration Command, components/seat.ts): the
    // scenario itself checks that the counter went on there; this holds it to the same PID.
    contract: {
      fields: {
        ok: "boolean",
        mode: "string",
        pid: "number",
        restoredPid: "number",
        downtimeMs: "number",
      },
      requires: [
        {
          python: "restoredPid == pid",
          message: "the counter runs as PID {restoredPid} on the peer, not as PID {pid}",
        },
      ],
    },
  };
}

export type MigrationStatus = "pass" | "fail" | "not available" | "not run";

export interface MigrationReport {
  status: MigrationStatus;
  /** 0 for pass and (unless required) "not available"; else 1 or 3 (docs/design.md "Contracts"). */
  exitCode: ExitCode;
  from: string;
  to: string;
  /** The `--mode` passed (the seat's `migration.modeAsked`); absent: none, the scenario's default. */
  modeAsked?: MigrationMode;
  /** The mode that ran (or was running when it failed), from the scenario's result. */
  mode?: RanMode;
  /** The process's downtime, from the scenario's result. */
  downtimeMs?: number;
  ms: number;
  error?: string;
  /** The scenario's own JSON object, as it printed it. */
  result?: Record<string, unknown>;
}

export interface SeatHostReport {
  role: HostRole;
  report: VerifyReport;
}

export interface SeatReport {
  seat: string;
  ok: boolean;
  exitCode: ExitCode;
  hosts: SeatHostReport[];
  /** null in a one-host seat. */
  migration: MigrationReport | null;
}

export interface SeatsReport {
  ok: boolean;
  exitCode: ExitCode;
  parallel: number;
  seats: SeatReport[];
  durationMs: number;
}

export interface SeatsOptions {
  /** Each host's overall deadline (verifyLab's), and the migration's. */
  timeoutSeconds: number;
  /** A host with auto-stop that never answers counts as stopped after this (verifyLab's). */
  stoppedAfterSeconds?: number;
  /** Hosts verified at the same time (default DEFAULT_PARALLEL). */
  parallel?: number;
  /** Progress lines, prefixed `[seat 01 a]`. */
  onProgress?: (line: string) => void;
  /** For tests: replaces some of REMOTE_CHECKS, as verifyLab's option does. */
  checks?: VerifyOptions["checks"];
  /** For tests: replaces the migration check. */
  migration?: (peer: string, mode?: MigrationMode) => RemoteCheck;
  /**
   * When true, a host without the migration scenario fails its seat (3: not installed).
   * Off by default: a host set up by an older lab has no such scenario ("not available").
   */
  requireMigration?: boolean;
}

/** A semaphore: at most `n` bodies run at once (the class, and its progress view). */
export function limiter(n: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(body: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await body();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/**
 * Verifies every target, at most `parallel` hosts at once, and in two-host seats the
 * migration from `a` to `b` once both pass. Never throws for a host's failure: every
 * outcome is in the report; the others still run and report. Bad options or targets
 * (none, duplicates, a seat with `b` but no `a`) throw a SeatOutputsError (2).
 */
export async function verifySeats(
  targets: SeatTarget[],
  options: SeatsOptions,
): Promise<SeatsReport> {
  const started = Date.now();
  const parallel = options.parallel ?? DEFAULT_PARALLEL;
  if (!Number.isSafeInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) {
    throw new SeatOutputsError(
      `--parallel: '${parallel}' is not a whole number from 1 to ${MAX_PARALLEL}`,
      ExitCode.usage,
    );
  }
  const bySeat = groupTargets(targets);
  const scrub = secretScrubber([...new Set(targets.map((t) => t.privateKey))]);
  const limit = limiter(parallel);

  const seats = await Promise.all(
    [...bySeat].map(async ([seat, hosts]): Promise<SeatReport> => {
      const reports = await Promise.all(
        hosts.map(async (target): Promise<SeatHostReport> => {
          const prefix = `[seat ${seat} ${target.role}] `;
          const report = await limit(() =>
            verifyLab(target, {
              timeoutSeconds: options.timeoutSeconds,
              stoppedAfterSeconds: options.stoppedAfterSeconds,
              onProgress: options.onProgress && ((l) => options.onProgress?.(prefix + l)),
              checks: options.checks,
            }),
          );
          return { role: target.role, report };
        }),
      );
      const a = hosts[0];
      let migration: MigrationReport | null = null;
      if (hosts.length === 2 && a) {
        const to = a.peer ?? `${a.user}@${hosts[1]?.host ?? "?"}`;
        const from = `${a.user}@${a.host}:${a.port}`;
        if (reports.every((r) => r.report.ok)) {
          const check = (options.migration ?? migrationCheck)(to, a.migrationMode);
          migration = await limit(() =>
            runMigration(a, check, { from, to, modeAsked: a.migrationMode }, options, (l) =>
              options.onProgress?.(scrub(`[seat ${seat} a->b] ${l}`)),
            ),
          );
        } else {
          migration = {
            status: "not run",
            exitCode: ExitCode.ok,
            from,
            to,
            ms: 0,
            error: "not run: a host of the seat failed its checks",
          };
        }
      }
      const exitCode = worstExitCode([
        ...reports.map((r) => r.report.exitCode),
        ...(migration ? [migration.exitCode] : []),
      ]);
      return { seat, ok: exitCode === ExitCode.ok, exitCode, hosts: reports, migration };
    }),
  );
  const exitCode = worstExitCode(seats.map((s) => s.exitCode));
  // The host reports are scrubbed by verifyLab; this pass covers the migration's output.
  return JSON.parse(
    scrub(
      JSON.stringify({
        ok: exitCode === ExitCode.ok,
        exitCode,
        parallel,
        seats,
        durationMs: Date.now() - started,
      } satisfies SeatsReport),
    ),
  ) as SeatsReport;
}

/** Targets grouped per seat in seat order, `a` before `b`; rejects what cannot be a class. */
function groupTargets(targets: SeatTarget[]): Map<string, SeatTarget[]> {
  if (targets.length === 0) {
    throw new SeatOutputsError("no seats to verify", ExitCode.usage);
  }
  const bySeat = new Map<string, SeatTarget[]>();
  for (const t of [...targets].sort(
    (x, y) => Number(x.seat) - Number(y.seat) || x.role.localeCompare(y.role),
  )) {
    const list = bySeat.get(t.seat) ?? [];
    if (list.some((o) => o.role === t.role)) {
      throw new SeatOutputsError(`seat ${t.seat} has two hosts '${t.role}'`, ExitCode.usage);
    }
    list.push(t);
    bySeat.set(t.seat, list);
  }
  for (const [seat, list] of bySeat) {
    if (list[0]?.role !== "a") {
      throw new SeatOutputsError(`seat ${seat} has a host 'b' but no host 'a'`, ExitCode.usage);
    }
  }
  return bySeat;
}

async function runMigration(
  a: SeatTarget,
  check: RemoteCheck,
  { from, to, modeAsked }: { from: string; to: string; modeAsked?: MigrationMode },
  options: SeatsOptions,
  progress: (line: string) => void,
): Promise<MigrationReport> {
  const t0 = Date.now();
  const base = { from, to, ...(modeAsked ? { modeAsked } : {}) };
  progress(`... ${check.name} to ${to}`);
  let ssh: NodeSSH | undefined;
  let report: MigrationReport;
  try {
    ssh = await connect({
      ...a,
      hostKey: a.hostKey === undefined ? undefined : parseHostKey(a.hostKey),
      deadline: Date.now() + options.timeoutSeconds * 1000,
    });
    const limit = Math.min(check.timeoutSeconds, options.timeoutSeconds);
    const r = await runCommand(ssh, check.command, limit);
    const judged = classifyMigration(r, options.requireMigration ?? false);
    const { mode, downtimeMs } = judged.result
      ? migrationFacts(judged.result)
      : { mode: null, downtimeMs: null };
    report = {
      ...base,
      ...(mode ? { mode } : {}),
      ...(downtimeMs === null ? {} : { downtimeMs }),
      ...judged,
      ms: 0,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    report = {
      ...base,
      status: "fail",
      ms: 0,
      // A hung migration is a broken lab (1); a lost connection, a host gone away (3).
      exitCode:
        err instanceof CommandTimeoutError
          ? ExitCode.labBroken
          : err instanceof VerifyError
            ? err.exitCode
            : ExitCode.unreachable,
      error:
        err instanceof CommandTimeoutError
          ? `'${check.command}' timed out after ${err.seconds} s; it was stopped`
          : `'${check.command}': ${message}`,
    };
  } finally {
    ssh?.dispose();
  }
  report.ms = Date.now() - t0;
  progress(
    report.status === "pass"
      ? `ok  ${check.name}${report.mode ? ` ${report.mode}` : ""} (${(report.ms / 1000).toFixed(1)} s)`
      : `${report.status === "fail" ? "FAIL" : "n/a "} ${check.name}: ${report.error ?? ""}`,
  );
  return report;
}

/**
 * Judges the migration command's result. argparse's "invalid choice" of `scenario` or
 * `migration` (exit 2) means the host's criu-lab has no such scenario yet: "not available", not
 * a failure. Otherwise its last JSON
 * object must say `ok: true` with exit 0; the scenario's exit 3 (peer not reachable, not
 * installed) stays 3, anything else is a broken lab (1).
 */
export function classifyMigration(
  r: { stdout: string; stderr: string; code: number | null; signal?: string | null },
  required: boolean,
): Omit<MigrationReport, "from" | "to" | "ms"> {
  // Not `--mode`'s invalid choice: a host without the mode asked for fails, saying so.
  if (r.code === ExitCode.usage && /invalid choice: '(scenario|migration)'/.test(r.stderr)) {
    return {
      status: "not available",
      exitCode: required ? ExitCode.unreachable : ExitCode.ok,
      error: "this host's criu-lab has no 'scenario run migration'",
    };
  }
  let result: Record<string, unknown> | undefined;
  try {
    result = lastJsonObject(r.stdout);
  } catch (err) {
    if (!(err instanceof CheckOutputError)) throw err;
  }
  if (r.code === 0 && result?.ok === true) return { status: "pass", exitCode: ExitCode.ok, result };
  const reason =
    typeof result?.error === "string"
      ? result.error
      : r.code === 0
        ? "it printed no JSON object with ok: true"
        : `it exited ${r.code ?? `on signal ${r.signal ?? "?"}`}${r.stderr.trim() ? `: ${tail(r.stderr)}` : ""}`;
  return {
    status: "fail",
    exitCode: r.code === ExitCode.unreachable ? ExitCode.unreachable : ExitCode.labBroken,
    error: `migration failed: ${reason}`,
    ...(result ? { result } : {}),
  };
}

function tail(text: string): string {
  const t = text.trim();
  return t.length > 1000 ? `...${t.slice(-1000)}` : t;
}

/** The last line of stdout that is a JSON object (progress lines may come first). */
function lastJsonObject(stdout: string): Record<string, unknown> {
  for (const line of stdout.trim().split("\n").reverse()) {
    if (!line.trim().startsWith("{")) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (isObject(value)) return value;
    } catch {
      // not JSON: keep looking
    }
  }
  throw new CheckOutputError("migration: no JSON object in its output", stdout);
}

const STEP_COLUMNS = [
  ["cloud-init", "cloud-init"],
  ["check", "criu check"],
  ["demo", "checkpoint/restore demo"],
] as const;

/** A step's cell: ok, FAIL, or "-" when it was not reached; "no ssh" when connecting failed. */
function stepCell(report: VerifyReport, stepName: string): string {
  const step = report.steps.find((s) => s.name === stepName);
  if (step) return step.ok ? "ok" : "FAIL";
  const connect = report.steps.find((s) => s.name.startsWith("connect "));
  return stepName === "cloud-init" && connect && !connect.ok ? "no ssh" : "-";
}

/** ok, FAIL, n/a or "not run", then the mode that ran (or failed) when the scenario said. */
function migrationCell(m: MigrationReport): string {
  const status = { pass: "ok", fail: "FAIL", "not available": "n/a", "not run": "not run" }[
    m.status
  ];
  return m.mode ? `${status} ${m.mode}` : status;
}

/**
 * The table (seat, host, cloud-init, check, demo, migration, time, exit), then one line per
 * failure naming the seat, the host and the step, then the verdict. Migration is "-" in a
 * one-host seat; in a two-host seat it is on host a's row, with the mode that ran
 * ("ok page-server").
 */
export function seatsTable(report: SeatsReport): string {
  const rows: string[][] = [
    ["seat", "host", "cloud-init", "check", "demo", "migration", "time", "exit"],
  ];
  const failures: string[] = [];
  for (const s of report.seats) {
    for (const h of s.hosts) {
      const r = h.report;
      const where = `${h.role} ${r.target.host}:${r.target.port}`;
      rows.push([
        s.seat,
        where,
        ...STEP_COLUMNS.map(([, step]) => stepCell(r, step)),
        s.migration === null ? "-" : h.role === "a" ? migrationCell(s.migration) : "",
        `${(r.durationMs / 1000).toFixed(1)} s`,
        String(r.exitCode),
      ]);
      if (!r.ok) {
        const failed = r.steps.find((st) => !st.ok)?.name ?? "verification";
        failures.push(
          `seat ${s.seat} host ${where}: ${failed} failed (exit ${r.exitCode}): ${firstLine(r.error)}`,
        );
      }
    }
    const m = s.migration;
    if (m && m.exitCode !== ExitCode.ok) {
      failures.push(
        `seat ${s.seat} migration ${m.from} -> ${m.to}: ${m.status} (exit ${m.exitCode}): ${firstLine(m.error)}`,
      );
    }
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const lines = rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
  const passed = report.seats.filter((s) => s.ok).length;
  return [
    ...lines,
    ...(failures.length ? ["", ...failures] : []),
    "",
    `${passed} of ${report.seats.length} seat(s) pass; exit ${report.exitCode}`,
  ].join("\n");
}

function firstLine(text: string | undefined): string {
  return (text ?? "no reason given").split("\n")[0] ?? "";
}
