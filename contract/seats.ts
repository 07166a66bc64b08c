/**
 * A class's seats as the `seats` stack output holds them: the bounds (MAX_SEATS, seat ids), the
 * migration modes, the output's types, and its one strict reader, parseSeatOutputs, with the
 * fallback for a stack made before the output existed. The Pulumi program writes what this
 * reads (components/seat.ts); criu-lab-verify and criu-lab-handout read it.
 */
import { ExitCode, NOT_THE_LEARNER, RemoteCheck, shellQuote } from "./checks";
import { HostKeyFormatError, parseHostKey } from "./hostKey";
import { isJsonObject, lastJsonObject, type Json } from "./rules";

/** At most this many seats in a stack: config `seats`, the stack output, `--seat N`. */
export const MAX_SEATS = 50;

/** `3` -> "03": seats are numbered with two digits (Name tags, the handout's folders). */
export function seatId(n: number): string {
  return String(n).padStart(2, "0");
}

/** Whether `text` is a seat id as the outputs write it: two digits, 01 to MAX_SEATS. */
export function isSeatId(text: string): boolean {
  return /^\d{2}$/.test(text) && Number(text) >= 1 && Number(text) <= MAX_SEATS;
}

/** The seat's key file as the handout writes it and sshCommand names it: `seat-03.pem`. */
export function keyFileOf(seat: string): string {
  return `seat-${seat}.pem`;
}

export type HostRole = "a" | "b";

/**
 * What `criu-lab scenario run migration --mode` takes (host/criu_lab/modes.py
 * MODE_CHOICES): `auto` runs, of pre-copy, page-server and cold, the one the two hosts can do with
 * the shortest downtime the advisor predicts (host/criu_lab/advise.py).
 */
export const MIGRATION_MODES = ["auto", "cold", "page-server", "pre-copy", "lazy"] as const;
export type MigrationMode = (typeof MIGRATION_MODES)[number];
/** A mode that runs: everything --mode takes but `auto`, which picks one of these. */
export type RanMode = Exclude<MigrationMode, "auto">;
/** The modes that run, in `criu-lab migrate`'s order (migrate.py MODES; a test holds them equal). */
export const RAN_MODES: readonly RanMode[] = MIGRATION_MODES.filter(
  (m): m is RanMode => m !== "auto",
);
const isRanMode = (mode: unknown): mode is RanMode =>
  typeof mode === "string" && (RAN_MODES as readonly string[]).includes(mode);

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

function str(
  obj: Json,
  key: string,
  path: string,
  pattern?: RegExp | ((text: string) => boolean),
  allowed?: string,
): string {
  const value = obj[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw bad(at(path, key), `should be a non-empty string, got ${kindOf(value)}`);
  }
  if (pattern && !(typeof pattern === "function" ? pattern(value) : pattern.test(value))) {
    // Values checked against a pattern are public (addresses, names, ids): safe to show.
    throw bad(at(path, key), `is '${value}'; allowed: ${allowed ?? String(pattern)}`);
  }
  return value;
}

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
  const region = isJsonObject(outputs) ? outputs.region : undefined;
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
  if (!isJsonObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
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
  if (!isJsonObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
  const seat = str(value, "seat", path, isSeatId, `two digits from 01 to ${seatId(MAX_SEATS)}`);
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
  if (!isJsonObject(value)) throw bad(path, `should be an object, got ${kindOf(value)}`);
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
  if (mode !== null && !isRanMode(mode)) {
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
    mode: isRanMode(mode) ? mode : null,
    downtimeMs: typeof downtimeMs === "number" && Number.isFinite(downtimeMs) ? downtimeMs : null,
  };
}

/**
 * A two-host seat's `migration` output from its post-deploy migration's stdout (the scenario's
 * JSON, last line). Throws a CheckOutputError when there is no JSON object in it.
 */
export function seatMigrationOutput(stdout: string, modeAsked: MigrationMode): SeatMigrationOutput {
  return { modeAsked, ...migrationFacts(lastJsonObject("migration", stdout)) };
}

/**
 * The single-host outputs (docs/design.md "Contracts") as seat "01" with host "a": for a stack
 * made before the `seats` output existed. Every stack this program makes has `seats`, but a
 * stack's outputs are written only by `pulumi up`: one made by an earlier version and not
 * updated since (its resources are kept across the upgrade, components/seat.ts Formerly) has
 * only these. Host "a" is named after the lab, as that lab's own outputs would name it.
 */
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
 * output, which every reader (criu-lab-verify, criu-lab-handout) reads through here; for a
 * stack from before it, the single-host outputs as seat "01", host "a" (see singleSeat).
 * Strict: seats numbered in order without duplicates, a key of its own per seat, 1 or 2 hosts in the order a, b,
 * addresses and names that are safe in a shell and an ssh_config, a parseable host key per host.
 */
export function parseSeatOutputs(outputs: unknown): SeatOutput[] {
  if (!isJsonObject(outputs)) {
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
  return seatId(n);
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
    contract: "migration",
  };
}
