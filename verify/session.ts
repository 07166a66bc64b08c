/**
 * The SSH side of the verifier: connecting with retries until a deadline (a fresh instance's
 * sshd comes up late), pinning the host key, and running a command with a timeout of its own.
 * node-ssh's `execCommand` neither rejects on a non-zero exit nor times out
 * (https://github.com/steelbrain/node-ssh#api), so both are handled here.
 */
import { NodeSSH } from "node-ssh";
import { ExitCode } from "../contract/checks";
import { PinnedHostKey, fingerprint, hostKeyAlgorithms } from "../contract/hostKey";

/**
 * A failure with the exit code it maps to (docs/design.md "Contracts": 1 lab broken, 2 bad input,
 * 3 unreachable).
 */
export class VerifyError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = "VerifyError";
  }
}

/** A remote command that ran past its timeout; it was signalled and its channel closed. */
export class CommandTimeoutError extends Error {
  constructor(
    readonly command: string,
    readonly seconds: number,
  ) {
    super(`timed out after ${seconds} s`);
    this.name = "CommandTimeoutError";
  }
}

export interface ConnectParams {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey?: PinnedHostKey;
  /** Epoch milliseconds after which no further attempt is made. */
  deadline: number;
  /** Called before each wait between attempts (only when another attempt follows it). */
  onRetry?: (attempt: number, reason: string, waitMs: number) => void;
  /**
   * A host that powers itself off (the auto-stop): when no attempt has reached its TCP port
   * for `afterMs`, give up (exit 3) saying `message` instead of retrying to the deadline. A
   * host that accepts the TCP connection is up, whatever happens after: it never counts.
   */
  stopped?: { afterMs: number; message: string };
}

/** Socket-level error codes worth another attempt: the host or its sshd is not up yet. */
const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 10_000;
/** Per attempt: TCP connect + SSH handshake + authentication. */
const MAX_ATTEMPT_MS = 20_000;

interface SshErrorFields {
  code?: unknown;
  level?: unknown;
  message?: unknown;
}

function fieldsOf(err: unknown): SshErrorFields {
  return err !== null && typeof err === "object" ? (err as SshErrorFields) : {};
}

/** Whether a failed connection attempt may succeed later (as opposed to auth or key failures). */
export function isRetryable(err: unknown): boolean {
  const { code, level, message } = fieldsOf(err);
  if (typeof code === "string" && RETRYABLE_CODES.has(code)) return true;
  // ssh2's error levels: https://github.com/mscdex/ssh2#client-events ('error').
  if (level === "client-socket" || level === "client-timeout" || level === "client-dns") {
    return true;
  }
  // sshd accepted the TCP connection but dropped it (still starting, or MaxStartups).
  return typeof message === "string" && /Connection lost before handshake/i.test(message);
}

function describeError(err: unknown): string {
  const { code, message } = fieldsOf(err);
  const text = typeof message === "string" ? message : String(err);
  return typeof code === "string" && !text.includes(code) ? `${text} (${code})` : text;
}

/** Why a connection was lost, for the message of the command that was running. */
const lostWith = new WeakMap<NodeSSH, string>();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Connects, retrying with exponential backoff while the host is unreachable, until the deadline.
 * A host key mismatch and an authentication failure end it at once: retrying cannot fix them,
 * and a mismatch may be an attack.
 */
export async function connect(params: ConnectParams): Promise<NodeSSH> {
  const where = `${params.user}@${params.host}:${params.port}`;
  let wait = FIRST_RETRY_MS;
  let lastReason = "no attempt was made";
  // Until some attempt reaches the TCP port, the host may be powered off (params.stopped).
  let answered = false;
  const silentUntil = params.stopped ? Date.now() + params.stopped.afterMs : Infinity;
  /** Milliseconds left before a host that never answered counts as stopped. */
  const silentLeft = () => (answered ? Infinity : silentUntil - Date.now());
  const looksStopped = (attempts: number, reason: string) =>
    new VerifyError(
      `cannot reach ${where}: no answer on its port for ${Math.round((params.stopped?.afterMs ?? 0) / 1000)} s ` +
        `(${attempts} attempts; last error: ${reason}): ${params.stopped?.message ?? ""}`,
      ExitCode.unreachable,
    );
  for (let attempt = 1; ; attempt++) {
    const remaining = params.deadline - Date.now();
    if (remaining <= 0) {
      throw new VerifyError(
        `cannot reach ${where} before the deadline (${attempt - 1} attempts); last error: ${lastReason}`,
        ExitCode.unreachable,
      );
    }
    let offered: Buffer | undefined;
    const pinned = params.hostKey;
    const ssh = new NodeSSH();
    try {
      const connecting = ssh.connect({
        host: params.host,
        port: params.port,
        username: params.user,
        privateKey: params.privateKey,
        // A silent host's attempt ends with its window, so that "stopped" comes on time.
        readyTimeout: Math.max(1_000, Math.min(MAX_ATTEMPT_MS, remaining, silentLeft())),
        // Detects a host that vanished mid-command (e.g. the instance stopped) within a minute.
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        ...(pinned
          ? {
              // Ask for the pinned key's type, or the server may present another of its keys.
              algorithms: { serverHostKey: hostKeyAlgorithms(pinned) },
              // ssh2 passes the raw key blob when hostHash is unset
              // (https://github.com/mscdex/ssh2#client-methods, hostVerifier).
              hostVerifier: (key: Buffer) => {
                offered = key;
                return key.equals(pinned.blob);
              },
            }
          : {}),
      });
      // ssh2's Client emits 'connect' once the TCP connection is up, before the handshake
      // (https://github.com/mscdex/ssh2#client-events). node-ssh 13 creates that Client and
      // calls its connect() before its first await when the key is given as text
      // (lib/cjs/index.js connect()), so the listener is in place before any socket event.
      ssh.connection?.once("connect", () => {
        answered = true;
      });
      await connecting;
      // node-ssh stops listening for 'error' once connected; an unheard 'error' (a reset, a
      // keepalive timeout) would crash the process. The 'close' that follows fails runCommand.
      ssh.connection?.on("error", (error: unknown) => lostWith.set(ssh, describeError(error)));
      return ssh;
    } catch (err) {
      ssh.dispose();
      if (pinned && offered && !offered.equals(pinned.blob)) {
        throw new VerifyError(
          `host key mismatch for ${params.host}:${params.port}: expected ${pinned.type} ${pinned.fingerprint}, ` +
            `the server offered ${fingerprint(offered)}; refusing to connect (a rebuilt host or a man in the middle)`,
          ExitCode.unreachable,
        );
      }
      const reason = describeError(err);
      if (pinned && /no matching host key format/i.test(reason)) {
        throw new VerifyError(
          `host key mismatch for ${params.host}:${params.port}: the server has no ${pinned.type} host key ` +
            `(expected ${pinned.fingerprint}); refusing to connect`,
          ExitCode.unreachable,
        );
      }
      if (fieldsOf(err).level === "client-authentication") {
        throw new VerifyError(
          `authentication failed for ${where}: the server refused the private key (${reason})`,
          ExitCode.unreachable,
        );
      }
      if (/privateKey|private key|passphrase/i.test(reason) && fieldsOf(err).level === undefined) {
        // ssh2 throws these while reading the key, before any network traffic.
        throw new VerifyError(`the private key cannot be used: ${reason}`, ExitCode.usage);
      }
      if (!isRetryable(err)) {
        throw new VerifyError(`cannot connect to ${where}: ${reason}`, ExitCode.unreachable);
      }
      lastReason = reason;
      // Never reached the port for the whole window, and it ends before the deadline does: a
      // host powered off (by the auto-stop) answers no retry, so say so now.
      const silent = silentLeft();
      if (silent <= wait && silent < params.deadline - Date.now()) {
        throw looksStopped(attempt, reason);
      }
      if (params.deadline - Date.now() <= wait) {
        // No attempt would follow the pause: give up now instead of announcing a retry that
        // never comes.
        throw new VerifyError(
          `cannot reach ${where} before the deadline (${attempt} attempts); last error: ${reason}`,
          ExitCode.unreachable,
        );
      }
      params.onRetry?.(attempt, reason, wait);
      await sleep(wait);
      wait = Math.min(wait * 2, MAX_RETRY_MS);
    }
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command died of a signal. */
  code: number | null;
  signal: string | null;
}

/** The part of ssh2's ClientChannel used to abandon a command. */
interface ClosableChannel {
  close(): unknown;
}

/** The first stderr line of every command: its process group, so a hung one can be stopped. */
const PGID_MARKER = "criu-lab-verify: pgid ";
const STOP_TIMEOUT_MS = 10_000;

/**
 * Runs `command` with a timeout; rejects when the connection is lost.
 *
 * On timeout the command's process group gets SIGTERM and its channel is closed, so neither
 * the verifier nor the host keeps waiting on it. The SSH "signal" channel request cannot do
 * this: ssh2 drops it once stdin is closed (node-ssh closes it at once), and sshd sends it
 * as the login user, who may not signal the root `sudo` running the check. sshd starts each
 * command in a new session, so the shell's PID ($$), reported first on stderr, is the
 * process group of everything the command started, and a second command kills it.
 */
export function runCommand(
  ssh: NodeSSH,
  command: string,
  timeoutSeconds: number,
): Promise<CommandResult> {
  const connection = ssh.connection;
  if (!connection) return Promise.reject(new Error("the SSH connection is closed"));
  const wrapped = `printf '${PGID_MARKER}%s\\n' "$$" >&2\n${command}`;
  return new Promise<CommandResult>((resolve, reject) => {
    let channel: ClosableChannel | undefined;
    let stderrSoFar = "";
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      connection.removeListener("close", onClose);
      fn();
    };
    const onClose = () =>
      finish(() => {
        const why = lostWith.get(ssh);
        reject(
          new Error(`the SSH connection was lost while the command ran${why ? `: ${why}` : ""}`),
        );
      });
    connection.on("close", onClose);
    const timer = setTimeout(() => {
      finish(() => {
        const pgid = /criu-lab-verify: pgid (\d+)/.exec(stderrSoFar)?.[1];
        stopProcessGroup(ssh, pgid)
          .catch(() => undefined)
          .finally(() => {
            try {
              channel?.close();
            } catch {
              // the channel is already gone
            }
            reject(new CommandTimeoutError(command, timeoutSeconds));
          });
      });
    }, timeoutSeconds * 1000);
    ssh
      .execCommand(wrapped, {
        // Keep output as sent: log tails are compared byte for byte with the files.
        noTrim: true,
        onChannel: (c: ClosableChannel) => {
          channel = c;
        },
        onStderr: (chunk: Buffer) => {
          if (stderrSoFar.length < 4096) stderrSoFar += chunk.toString();
        },
      })
      .then(
        (r) =>
          finish(() =>
            resolve({
              stdout: r.stdout,
              stderr: r.stderr.replace(/^criu-lab-verify: pgid \d+\n/, ""),
              code: r.code,
              signal: r.signal,
            }),
          ),
        (err: unknown) => finish(() => reject(err instanceof Error ? err : new Error(String(err)))),
      );
  });
}

/** SIGTERM to a remote process group, as the user and, for sudo's part, as root. Bounded. */
async function stopProcessGroup(ssh: NodeSSH, pgid: string | undefined): Promise<void> {
  if (!pgid || !ssh.connection) return;
  const kill = `kill -TERM -- -${pgid} 2>/dev/null; sudo -n kill -TERM -- -${pgid} 2>/dev/null; true`;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    ssh.execCommand(kill),
    new Promise((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS))),
  ]).finally(() => clearTimeout(timer));
}
