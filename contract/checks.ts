/**
 * The one definition of the remote checks of a lab host and the one parser of their results.
 * The Pulumi program's post-deploy Commands (components/verification.ts) and the node-ssh
 * verifier (verify/) both run these commands and read their output through these parsers,
 * so a deploy and a CI run judge the lab the same way; the rules each result must keep are
 * rules.json's (./rules.ts), which the host's own judge reads too.
 */
import {
  CONTRACTS,
  CheckOutputError,
  ContractName,
  brokenRules,
  hasType,
  judgeContract,
  lastJsonObject,
} from "./rules";

/** Exit codes everywhere (host scripts and the local CLI), as in docs/design.md "Contracts". */
export const ExitCode = {
  ok: 0,
  /** The lab does not work: `criu check` or the checkpoint/restore demo failed. */
  labBroken: 1,
  /** Usage or bad input. */
  usage: 2,
  /** Not reachable, not ready, not installed; authentication or host key failure. */
  unreachable: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The worst of several exit codes; 0 only when all are 0. Severity 1 > 2 > 3: a broken lab
 * (1) is a definite failure that no retry fixes, and it must not hide behind a seat that is
 * merely not ready (3), the one outcome a CI loop may retry; bad input for a seat (2) means
 * that seat was not verified at all and needs a fix, not a retry, so it outranks 3 too.
 */
export function worstExitCode(codes: ExitCode[]): ExitCode {
  for (const code of [ExitCode.labBroken, ExitCode.usage, ExitCode.unreachable]) {
    if (codes.includes(code)) return code;
  }
  return ExitCode.ok;
}

/** `value` as one word for a POSIX shell, whatever it holds. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Where the lab keeps its logs on the host. */
export const REMOTE_LOG_DIR = "/var/log/criu-lab";

export interface RemoteCheck {
  /** Short name for progress lines and reports. */
  name: string;
  /** A POSIX shell command run as the lab user (it uses sudo itself where it must). */
  command: string;
  /** How long the command may run before it counts as hung. */
  timeoutSeconds: number;
  /**
   * The rules (rules.json) its JSON, the last JSON object line of stdout, must keep to pass:
   * `ok: true`, the fields with their types, the comparisons. Judged on the host by `criu-lab
   * judge NAME` (components/verification.ts) and here by judgeContract.
   */
  contract?: ContractName;
}

/** Where `pulumi up` puts the lab's files and the set-up it may start (cloud-init/receive-lab-files.sh). */
const INCOMING_DIR = "/var/lib/criu-lab/incoming";

/**
 * Waits for cloud-init (`cloud-init status`, polled: 0 done, 2 done but degraded, 1 error);
 * a host where cloud-init is missing or never ran (set up by hand) has nothing to wait for.
 * On error it prints the tails of the cloud-init and CRIU install logs to stderr and exits 1.
 * A degraded run is accepted: the lab's own checks
 * below decide whether the lab works.
 */
const waitForCloudInit = [
  // A host made a lab by `npm run setup:host` may have no cloud-init at all, or one that never
  // ran (and `status --wait` would wait for it forever): either way there is nothing to wait
  // for, and the lab's own checks below say whether it works. A cloud-init host is never seen
  // in the second state over SSH: sshd starts after cloud-init.service. ("not run" up to
  // cloud-init 23.3, "not started" since.)
  "if ! command -v cloud-init >/dev/null 2>&1; then",
  "  echo 'cloud-init is not installed on this host (set up without it): nothing to wait for'; exit 0",
  "fi",
  "if sudo cloud-init status 2>/dev/null | grep -Eq '^status: (not run|not started)$'; then",
  "  echo 'cloud-init has not run on this host (set up without it): nothing to wait for'; exit 0",
  "fi",
  // Polled every 5 s rather than `status --wait`: since cloud-init 24 (Ubuntu 24.04, Debian 13)
  // each of --wait's polls, four a second, runs systemctl six times. In the VM tier `top` showed
  // it beside the compiler of the CRIU build it waited for; on a small EC2 instance it spends
  // burst credits the build needs. Without --wait the exit code is the same once done.
  "while :; do",
  "  rc=0; out=$(sudo cloud-init status 2>/dev/null) || rc=$?",
  '  case "$out" in *"status: running"*) sleep 5 ;; *) break ;; esac',
  "done",
  // An EC2 host whose runcmd gave up waiting for its copied files (an interrupted `pulumi up`)
  // is set up when the files come, by criu-lab-setup.service (cloud-init/receive-lab-files.sh):
  // cloud-init keeps its error, and the set-up's own record says whether the lab was built.
  `if [ "$rc" -eq 1 ] && sudo test -e ${INCOMING_DIR}/resumed; then`,
  "  echo 'cloud-init gave up waiting for the lab files; waiting for the set-up that started when they came (criu-lab-setup.service)'",
  "  while systemctl is-active --quiet criu-lab-setup.service; do sleep 10; done",
  `  if sudo grep -q '"ok": true' /var/lib/criu-lab/setup.json 2>/dev/null; then echo 'the set-up finished'; exit 0; fi`,
  "  echo 'the set-up that started when the lab files came did not finish' >&2",
  `  sudo tail -n 40 ${REMOTE_LOG_DIR}/setup.log >&2; exit 1`,
  "fi",
  'if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then',
  '  echo "cloud-init failed (status exit $rc)" >&2',
  "  echo '--- tail of /var/log/cloud-init-output.log' >&2; sudo tail -n 40 /var/log/cloud-init-output.log >&2",
  `  echo '--- tail of ${REMOTE_LOG_DIR}/install.log' >&2; sudo tail -n 40 ${REMOTE_LOG_DIR}/install.log >&2`,
  "  exit 1",
  "fi",
  "sudo cloud-init status --long 2>/dev/null | head -n 5; true",
].join("\n");

/** The checks in the order they must run. */
export const REMOTE_CHECKS = {
  cloudInit: {
    name: "cloud-init",
    command: waitForCloudInit,
    // Cold boot, apt and a CRIU build from source on a small instance.
    timeoutSeconds: 40 * 60,
  },
  check: {
    name: "criu check",
    command: "sudo criu-lab check --json",
    timeoutSeconds: 120,
    contract: "check",
  },
  doctor: {
    name: "doctor",
    command: "sudo criu-lab doctor --json",
    timeoutSeconds: 300,
    contract: "doctor",
  },
  demo: {
    name: "checkpoint/restore demo",
    command: "sudo criu-lab demo --json",
    timeoutSeconds: 300,
    contract: "demo",
  },
} as const satisfies Record<string, RemoteCheck>;

/** The scenarios one host can run (`criu-lab scenario run NAME --json`), in the order they run. */
export const SCENARIOS = ["training", "game"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Scenarios that need more than one host, and why they cannot be asked of one. */
export const MULTI_HOST_SCENARIOS: Record<string, string> = {
  migration:
    "it needs a second host (`criu-lab scenario run migration --to USER@HOST`); a two-host " +
    "seat's verification runs it",
};

export interface ScenarioCheck extends RemoteCheck {
  /** The doctor's exercise (`exercises` in `criu-lab doctor --json`) the scenario needs. */
  exercise: string;
}

/** Each scenario as a remote check with its contract; run after the demo, by choice. */
export const SCENARIO_CHECKS = {
  training: {
    name: "scenario training",
    command: "sudo criu-lab scenario run training --json",
    // 256 MiB of state filled, three checkpoints 5 s apart, a crash, a restore: 26 s here,
    // minutes on a small instance's disk.
    timeoutSeconds: 900,
    contract: "training",
    // The scenario takes incremental dumps only where the doctor says they work.
    exercise: "training-full",
  },
  game: {
    name: "scenario game",
    command: "sudo criu-lab scenario run game --json",
    timeoutSeconds: 600,
    contract: "game",
    exercise: "game",
  },
} as const satisfies Record<ScenarioName, ScenarioCheck>;

/**
 * Reads a list of scenario names (`--scenarios training,game`, the `verifyScenarios` config):
 * unknown names and the ones a single host cannot run are refused with the reason and what
 * is allowed; duplicates are dropped; the result is in SCENARIOS' order. Returns the problems
 * instead of the list when there are any.
 */
export function parseScenarioNames(
  names: readonly string[],
): { scenarios: ScenarioName[] } | { problems: string[] } {
  const problems: string[] = [];
  const wanted = new Set<string>();
  const allowed = `allowed: ${SCENARIOS.join(", ")}`;
  for (const raw of names) {
    const name = raw.trim();
    if ((SCENARIOS as readonly string[]).includes(name)) {
      wanted.add(name);
    } else if (Object.hasOwn(MULTI_HOST_SCENARIOS, name)) {
      problems.push(`'${name}' cannot run on one host: ${MULTI_HOST_SCENARIOS[name]}; ${allowed}`);
    } else {
      problems.push(`'${name}' is not a scenario; ${allowed}`);
    }
  }
  if (problems.length > 0) return { problems };
  return { scenarios: SCENARIOS.filter((s) => wanted.has(s)) };
}

/** `criu-lab check --json`. */
export interface CheckResult {
  ok: boolean;
  criuVersion: string;
  kernel: string;
  /** `criu check` output (its last lines). */
  output?: string;
  error?: string;
}

/** `criu-lab demo --json`, field for field as docs/design.md "Contracts" specifies. */
export interface DemoResult {
  ok: boolean;
  pid: number;
  restoredPid: number;
  lastBeforeDump: number;
  firstAfterRestore: number;
  dumpMs: number;
  restoreMs: number;
  /** From `crit show stats-dump`: how long the process was frozen, in microseconds. */
  frozenUs: number;
  imageBytes: number;
  imagesDir: string;
  criuVersion: string;
  kernel: string;
  /** On failure: what failed, with the tail of the CRIU log. */
  error?: string;
}

function field<T extends "string" | "number" | "boolean">(
  what: string,
  obj: Record<string, unknown>,
  key: string,
  type: T,
  raw: string,
): T extends "string" ? string : T extends "number" ? number : boolean {
  const value = obj[key];
  if (typeof value !== type || (type === "number" && !Number.isFinite(value))) {
    throw new CheckOutputError(
      `${what}: field '${key}' should be a ${type}, got ${JSON.stringify(value)}`,
      raw,
    );
  }
  return value as never;
}

function optionalString(obj: Record<string, unknown>, key: string): string | undefined {
  const value = obj[key];
  return typeof value === "string" ? value : undefined;
}

/** Parses `criu-lab check --json`. */
export function parseCheck(stdout: string): CheckResult {
  const what = "criu-lab check";
  const obj = lastJsonObject(what, stdout);
  return {
    ok: field(what, obj, "ok", "boolean", stdout),
    criuVersion: field(what, obj, "criuVersion", "string", stdout),
    kernel: field(what, obj, "kernel", "string", stdout),
    output: optionalString(obj, "output"),
    error: optionalString(obj, "error"),
  };
}

/**
 * Parses `criu-lab demo --json`. A result that claims `ok` is held to the contract itself:
 * the restored process has the same PID and counts on from the next number. Anything else
 * is reported as a failed demo, never as a pass.
 */
export function parseDemo(stdout: string): DemoResult {
  const what = "criu-lab demo";
  const obj = lastJsonObject(what, stdout);
  const ok = field(what, obj, "ok", "boolean", stdout);
  const error = optionalString(obj, "error");
  if (!ok) {
    // A failed demo may stop before some numbers exist: keep what is there.
    const num = (key: string) => (typeof obj[key] === "number" ? (obj[key] as number) : NaN);
    return {
      ok: false,
      pid: num("pid"),
      restoredPid: num("restoredPid"),
      lastBeforeDump: num("lastBeforeDump"),
      firstAfterRestore: num("firstAfterRestore"),
      dumpMs: num("dumpMs"),
      restoreMs: num("restoreMs"),
      frozenUs: num("frozenUs"),
      imageBytes: num("imageBytes"),
      imagesDir: optionalString(obj, "imagesDir") ?? "",
      criuVersion: optionalString(obj, "criuVersion") ?? "",
      kernel: optionalString(obj, "kernel") ?? "",
      error: error ?? "the demo failed without saying why",
    };
  }
  const result: DemoResult = {
    ok,
    pid: field(what, obj, "pid", "number", stdout),
    restoredPid: field(what, obj, "restoredPid", "number", stdout),
    lastBeforeDump: field(what, obj, "lastBeforeDump", "number", stdout),
    firstAfterRestore: field(what, obj, "firstAfterRestore", "number", stdout),
    dumpMs: field(what, obj, "dumpMs", "number", stdout),
    restoreMs: field(what, obj, "restoreMs", "number", stdout),
    frozenUs: field(what, obj, "frozenUs", "number", stdout),
    imageBytes: field(what, obj, "imageBytes", "number", stdout),
    imagesDir: field(what, obj, "imagesDir", "string", stdout),
    criuVersion: field(what, obj, "criuVersion", "string", stdout),
    kernel: field(what, obj, "kernel", "string", stdout),
    error,
  };
  const problem = demoContractViolation(result);
  if (problem) return { ...result, ok: false, error: problem };
  return result;
}

/** Why a demo that says ok does not show a real restore (rules.json "demo"), or undefined. */
export function demoContractViolation(r: DemoResult): string | undefined {
  return brokenRules(CONTRACTS.demo, r as unknown as Record<string, unknown>)[0];
}

/** One exercise in the doctor's result. */
export interface DoctorExercise {
  ok: boolean;
  /** Why it cannot run here ("" when it can). */
  reason: string;
  /** The known fix, when it cannot. */
  fix?: string;
}

/**
 * `criu-lab doctor --json`, the part that says what the host can do: plain data without
 * secrets, exported as the stack output `doctor` and put in the verifier's report.
 */
export interface DoctorResult {
  ok: boolean;
  criuVersion: string;
  kernel: string;
  /** The network-lock backend CRIU uses here (iptables, nftables), or null: none. */
  networkLock: string | null;
  /** `criu check --feature NAME` -> supported. */
  features: Record<string, boolean>;
  exercises: Record<string, DoctorExercise>;
  /** What to do about what is missing. */
  fixes: string[];
  /** The space the lab's kept runs use in its log directory and what is free there (a host
   * whose criu-lab predates it says nothing). */
  disk?: DoctorDisk;
  error?: string;
}

/** `disk` in `criu-lab doctor --json`: bytes the lab's directory uses, free and total there. */
export interface DoctorDisk {
  dir: string;
  usedBytes: number;
  freeBytes: number;
  totalBytes: number;
}

/** Parses `criu-lab doctor --json`; a result that breaks the contract is a failed doctor. */
export function parseDoctor(stdout: string): DoctorResult {
  const verdict = judgeContract("criu-lab doctor", CONTRACTS.doctor, stdout);
  const r = verdict.result;
  const text = (v: unknown) => (typeof v === "string" ? v : "");
  const entries = (v: unknown): Array<[string, Record<string, unknown>]> =>
    hasType(v, "object")
      ? Object.entries(v as Record<string, unknown>).filter(
          (e): e is [string, Record<string, unknown>] => hasType(e[1], "object"),
        )
      : [];
  return {
    ok: verdict.ok,
    criuVersion: text(r.criuVersion),
    kernel: text(r.kernel),
    networkLock: typeof r.networkLock === "string" ? r.networkLock : null,
    features: Object.fromEntries(entries(r.features).map(([k, v]) => [k, v.ok === true])),
    exercises: Object.fromEntries(
      entries(r.exercises).map(([k, v]) => [
        k,
        {
          ok: v.ok === true,
          reason: text(v.reason),
          ...(typeof v.fix === "string" ? { fix: v.fix } : {}),
        },
      ]),
    ),
    fixes: Array.isArray(r.fixes) ? r.fixes.filter((f): f is string => typeof f === "string") : [],
    ...doctorDisk(r.disk),
    ...(verdict.error === undefined ? {} : { error: verdict.error }),
  };
}

function doctorDisk(v: unknown): { disk?: DoctorDisk } {
  if (!hasType(v, "object")) return {};
  const d = v as Record<string, unknown>;
  const n = (k: string) => (hasType(d[k], "number") ? (d[k] as number) : undefined);
  const [usedBytes, freeBytes, totalBytes] = [n("usedBytes"), n("freeBytes"), n("totalBytes")];
  if (
    typeof d.dir !== "string" ||
    usedBytes === undefined ||
    freeBytes === undefined ||
    totalBytes === undefined
  ) {
    return {};
  }
  return { disk: { dir: d.dir, usedBytes, freeBytes, totalBytes } };
}

/** A scenario's JSON judged by its contract: the verdict and the host's fields as they came. */
export interface ScenarioResult {
  ok: boolean;
  error?: string;
  /** Where the scenario kept its images and logs on the host (also on failure). */
  imagesDir?: string;
  result: Record<string, unknown>;
}

/** Parses `criu-lab scenario run NAME --json` and holds it to the scenario's contract. */
export function parseScenario(name: ScenarioName, stdout: string): ScenarioResult {
  const verdict = judgeContract(
    `criu-lab scenario run ${name}`,
    CONTRACTS[SCENARIO_CHECKS[name].contract],
    stdout,
  );
  const imagesDir = optionalString(verdict.result, "imagesDir");
  return { ...verdict, ...(imagesDir ? { imagesDir } : {}) };
}

export { CheckOutputError };
