/**
 * The one Pulumi mocks helper for all unit tests (the shape of awsx `ecr/repository.test.ts`):
 * records every resource's inputs by type, returns the computed fields the program reads
 * (publicIp, keys, Command stdout), answers the invokes the program makes and throws on any
 * other, so a new lookup cannot slip in unanswered. Call `setupMocks` before importing the
 * program's modules; mocks run with preview=false so computed fields are known.
 */
import * as pulumi from "@pulumi/pulumi";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { lookupAnswers, LookupValues } from "../../../plan/lookups";

/**
 * A resource's or invoke's property bag as the engine passes it: untyped by nature, and the
 * tests read it by path (`inputs.metadataOptions.httpTokens`), so `any` is the honest type.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Props = Record<string, any>;

export interface RecordedResource {
  type: string;
  name: string;
  /** Inputs with secrets unwrapped to their values. */
  inputs: Props;
  /** Inputs as the engine got them: secrets still wrapped (see `isSecretValue`). */
  rawInputs: Props;
  custom: boolean;
  id: string;
}

export interface RecordedInvoke {
  token: string;
  inputs: Props;
}

export type InvokeAnswer = (inputs: Props) => Record<string, unknown>;

export interface LabMocks {
  resources: RecordedResource[];
  invokes: RecordedInvoke[];
  /** Answers by invoke token; replace one to change what a lookup returns. */
  answers: Record<string, InvokeAnswer>;
  /**
   * stdout of remote Commands by role (the name's end: ready, cloud-init, check, doctor, demo,
   * scenario-training, scenario-game).
   */
  commandStdout: Record<string, string>;
  /**
   * What the state already holds for a Stash, by name: an existing stack's kept value. The
   * engine keeps a Stash's output when its input changes (pulumi/pulumi's builtin Stash
   * provider), so the program sees this value whatever the input; a Stash not listed is new
   * and holds its input.
   */
  stashed: Record<string, unknown>;
  /** Recorded custom resources of a type, optionally only those whose name starts with prefix. */
  ofType(type: string, prefix?: string): RecordedResource[];
  /** The single recorded resource of a type (under prefix); throws when there is not exactly one. */
  one(type: string, prefix?: string): RecordedResource;
  invokesOf(token: string): RecordedInvoke[];
}

/** The public address every mocked instance gets at launch (lost on stop; nothing uses it). */
export const MOCK_PUBLIC_IP = "203.0.113.10";
/** The address every mocked Elastic IP gets: what the lab's outputs and connections use. */
export const MOCK_ELASTIC_IP = "203.0.113.20";
/** What the mocked `curl checkip` answers. */
export const MOCK_DEPLOYER_IP = "198.51.100.7";
/** The VPC an existing subnet belongs to, as the mocked DescribeSubnets answers. */
export const MOCK_VPC = "vpc-0e1e1e1e1e1e1e1e1";
export const MOCK_ZONES = ["ap-southeast-1c", "ap-southeast-1a", "ap-southeast-1b"];
/**
 * An opted-in Local Zone: EC2 offers instance types there as an "availability-zone" location,
 * and its name sorts before the region's own zones. The mocked offerings include it; the
 * mocked DescribeAvailabilityZones leaves it out when asked for zone-type availability-zone.
 */
export const MOCK_LOCAL_ZONE = "ap-southeast-1-bkk-1a";

export const PASSING_CHECK = JSON.stringify({
  ok: true,
  criuVersion: "4.2",
  kernel: "6.8.0-1012-aws",
  output: "Looks good.",
});

export const PASSING_DEMO = JSON.stringify({
  ok: true,
  pid: 4242,
  restoredPid: 4242,
  lastBeforeDump: 17,
  firstAfterRestore: 18,
  dumpMs: 120,
  restoreMs: 80,
  frozenUs: 95000,
  imageBytes: 1048576,
  imagesDir: "/var/lib/criu-lab/demo/img",
  criuVersion: "4.2",
  kernel: "6.8.0-1012-aws",
});

/** Real stdout of the host command, captured on the test host (fixtures/criu-lab/README.md). */
export function capturedStdout(
  name: "doctor" | "training" | "game" | "training-refused" | "game-iptables" | "migration",
): string {
  return readFileSync(join(__dirname, "..", "fixtures", "criu-lab", `${name}.stdout`), "utf8");
}

export const PASSING_DOCTOR = capturedStdout("doctor");
/** `scenario run migration --mode auto --json`: auto picked page-server (no dirty tracking). */
export const PASSING_MIGRATION = capturedStdout("migration");

/** A real ED25519 public key line, and a private key block in OpenSSH's PEM armour. */
export function fakeOpensshKeyPair(comment: string): {
  publicKeyOpenssh: string;
  privateKeyOpenssh: string;
} {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([field(Buffer.from("ssh-ed25519")), field(raw)]);
  const body = Buffer.from(`mock private key for ${comment}`).toString("base64");
  return {
    publicKeyOpenssh: `ssh-ed25519 ${blob.toString("base64")}\n`,
    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`,
  };
}

/** The values the mocks' lookups answer from (the shared table, plan/lookups.ts). */
export const MOCK_LOOKUPS: LookupValues = {
  region: "ap-southeast-1",
  zones: MOCK_ZONES,
  localZones: [MOCK_LOCAL_ZONE],
  amis: { x86_64: "ami-0b8b8b8b8b8b8b8b8", arm64: "ami-0a4a4a4a4a4a4a4a4" },
  vpcId: MOCK_VPC,
  deployerIp: MOCK_DEPLOYER_IP,
};

/** The shared table's answers, as results: what the mocked provider returns per invoke. */
function defaultAnswers(): Record<string, InvokeAnswer> {
  return Object.fromEntries(
    Object.entries(lookupAnswers(MOCK_LOOKUPS)).map(([token, answer]) => [
      token,
      (inputs: Props) => answer(inputs).result,
    ]),
  );
}

/** The engine's marker of a secret value (sdk/nodejs/runtime/rpc.ts `specialSecretSig`). */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/**
 * The plain user-data an instance gets: its `userDataBase64` input decoded and gunzipped, as
 * cloud-init does on the host. Throws when the instance has none.
 */
export function userDataOf(instance: RecordedResource): string {
  const encoded: unknown = instance.inputs.userDataBase64;
  if (typeof encoded !== "string") {
    throw new Error(`mocks: ${instance.name} has no userDataBase64 input`);
  }
  return gunzipSync(Buffer.from(encoded, "base64")).toString("utf8");
}

/** True when `value` (e.g. `rawInputs.userDataBase64`) reached the engine marked secret. */
export function isSecretValue(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Props)[SIG_KEY] === SECRET_SIG &&
    "value" in value
  );
}

function unwrapSecrets(value: unknown): unknown {
  if (isSecretValue(value)) return unwrapSecrets((value as Props).value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

let nextId = 1;
let nextPrivate = 0;

function computedState(
  type: string,
  name: string,
  inputs: Props,
  mocks: LabMocks,
): Record<string, unknown> {
  switch (type) {
    case "aws:ec2/instance:Instance":
      return {
        ...inputs,
        // A distinct address in the subnet per instance, as EC2 hands them out.
        privateIp: `10.0.1.${10 + (nextPrivate++ % 240)}`,
        publicIp: MOCK_PUBLIC_IP,
        publicDns: `ec2-${MOCK_PUBLIC_IP.replace(/\./g, "-")}.ap-southeast-1.compute.amazonaws.com`,
      };
    case "aws:ec2/eip:Eip":
      return {
        ...inputs,
        allocationId: `eipalloc-${name}`,
        publicIp: MOCK_ELASTIC_IP,
        publicDns: `ec2-${MOCK_ELASTIC_IP.replace(/\./g, "-")}.ap-southeast-1.compute.amazonaws.com`,
      };
    case "pulumi:index:Stash":
      // The engine's builtin: a new stash's output is its input; an existing one keeps its own.
      return { ...inputs, output: name in mocks.stashed ? mocks.stashed[name] : inputs.input };
    case "aws:ec2/keyPair:KeyPair":
      return { ...inputs, keyName: inputs.keyName ?? `${name}-0a1b2c3` };
    case "tls:index/privateKey:PrivateKey":
      return { ...inputs, ...fakeOpensshKeyPair(name) };
    case "command:remote:Command": {
      const role = Object.keys(mocks.commandStdout).find((r) => name.endsWith(`-${r}`));
      if (role === undefined) throw new Error(`mocks: no stdout for remote Command ${name}`);
      return { ...inputs, stdout: mocks.commandStdout[role], stderr: "" };
    }
    default:
      return { ...inputs };
  }
}

/**
 * Installs the mocks (project criu-lab, stack dev, preview=false) and returns the recorder.
 * `config` holds the stack's `criu-lab:*` values (keys without the namespace).
 */
export async function setupMocks(config: Record<string, string> = {}): Promise<LabMocks> {
  const mocks: LabMocks = {
    resources: [],
    invokes: [],
    answers: defaultAnswers(),
    stashed: {},
    commandStdout: {
      // LabFiles' hand-over of the copied archive (cloud-init/receive-lab-files.sh deliver).
      ready: "receive-lab-files: the lab's files are on the host",
      "cloud-init": "status: done",
      check: PASSING_CHECK,
      demo: PASSING_DEMO,
      // A two-host seat's set-up of its peer, and the migration a -> b.
      peer: "criu-lab: criu-lab-seat-01-b is 10.0.1.11 here",
      migration: PASSING_MIGRATION,
      doctor: PASSING_DOCTOR,
      "scenario-training": capturedStdout("training"),
      "scenario-game": capturedStdout("game"),
    },
    ofType: (type, prefix = "") =>
      mocks.resources.filter((r) => r.custom && r.type === type && r.name.startsWith(prefix)),
    one: (type, prefix) => {
      const found = mocks.ofType(type, prefix);
      if (found.length !== 1) {
        throw new Error(`expected one ${type} under '${prefix ?? ""}', found ${found.length}`);
      }
      return found[0];
    },
    invokesOf: (token) => mocks.invokes.filter((i) => i.token === token),
  };
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
        const id = args.custom ? `${args.name}-id-${nextId++}` : "";
        mocks.resources.push({
          type: args.type,
          name: args.name,
          inputs: unwrapSecrets(args.inputs) as Props,
          rawInputs: args.inputs,
          custom: args.custom ?? false,
          id,
        });
        const state = args.custom
          ? computedState(args.type, args.name, unwrapSecrets(args.inputs) as Props, mocks)
          : {};
        return { id, state };
      },
      call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
        mocks.invokes.push({ token: args.token, inputs: args.inputs });
        // A failed invoke reaches the program as `new Error(grpcError.details)`
        // (runtime/invoke.ts): give the error `details`, as the engine's gRPC error has.
        const fail = (err: unknown): never => {
          const error = err instanceof Error ? err : new Error(String(err));
          throw Object.assign(error, { details: error.message });
        };
        const answer = mocks.answers[args.token];
        if (answer === undefined) {
          fail(new Error(`mocks: unmocked invoke ${args.token} ${JSON.stringify(args.inputs)}`));
        }
        try {
          return answer(args.inputs);
        } catch (err) {
          return fail(err);
        }
      },
    },
    "criu-lab",
    "dev",
    false,
  );
  setLabConfig(config);
  return mocks;
}

/** Replaces the stack's `criu-lab:*` config (keys without the namespace). */
export function setLabConfig(config: Record<string, string>): void {
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [`criu-lab:${k}`, v])),
  );
}

/**
 * The value of an Output (mocks run with preview=false, so every value is known). Uses the
 * SDK's internal `promise()`, as Pulumi's own testing guide does, so a throwing apply rejects.
 */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return (output as unknown as { promise(): Promise<T> }).promise();
}

/**
 * The error a failing Output rejects with. A throwing apply rejects all four promises of the
 * Output (value, isKnown, isSecret, resources); in a real program that unhandled rejection
 * is what fails `pulumi up`, so a test that expects the failure takes all four.
 */
export async function failureOf(output: pulumi.Output<unknown>): Promise<Error> {
  const internal = output as unknown as {
    isKnown: Promise<boolean>;
    isSecret: Promise<boolean>;
    allResources?: () => Promise<unknown>;
  };
  const ignore = () => undefined;
  internal.isKnown.catch(ignore);
  internal.isSecret.catch(ignore);
  internal.allResources?.().catch(ignore);
  try {
    await valueOf(output);
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the Output to fail, but it resolved");
}

/** Records construction options (dependsOn...) of every child of a component. */
export interface ConstructionLog {
  transformation: pulumi.ResourceTransformation;
  constructed: Array<{
    type: string;
    name: string;
    props: Props;
    opts: pulumi.ResourceOptions;
    resource: pulumi.Resource;
  }>;
  /** Waits until every constructed custom resource reached the mock monitor. */
  settled(mocks: LabMocks): Promise<void>;
}

export function constructionLog(): ConstructionLog {
  const log: ConstructionLog = {
    constructed: [],
    transformation: (args) => {
      log.constructed.push({
        type: args.type,
        name: args.name,
        props: args.props,
        opts: args.opts,
        resource: args.resource,
      });
      return undefined;
    },
    settled: async (mocks) => {
      const registered = () =>
        log.constructed
          .filter((c) => pulumi.CustomResource.isInstance(c.resource))
          .every((c) => mocks.resources.some((r) => r.type === c.type && r.name === c.name));
      // Registration is asynchronous (inputs resolve first); it needs no time, only turns
      // of the event loop, so this counts turns rather than waiting on a clock.
      for (let turn = 0; turn < 10_000 && !registered(); turn++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (!registered()) throw new Error("mocks: some resources never registered");
    },
  };
  return log;
}

/**
 * The resource name of a one-host lab's part by its name of old (`host-instance`,
 * `access-host-key`, `network-sg`): a class of one, the host's parts are seat 01's host a's
 * and the keys seat 01's (components/seat.ts Formerly keeps the old URNs as aliases).
 */
export function labChild(lab: string, part: string): string {
  if (/^(host|address|files|verify)(-|$)/.test(part)) return `${lab}-seat-01-a-${part}`;
  if (/^access-host-key$/.test(part)) return `${lab}-seat-01-access-host-key-a`;
  if (/^access(-|$)/.test(part)) return `${lab}-seat-01-${part}`;
  return `${lab}-${part}`;
}
