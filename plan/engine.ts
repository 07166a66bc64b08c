/**
 * The local engine and resource monitor an offline plan runs the program against: one gRPC
 * server on 127.0.0.1 (a port from the OS) with the services that ship in @pulumi/pulumi/proto
 * (ResourceMonitor from resource_grpc_pb, Engine from engine_grpc_pb). It answers what the
 * Node.js SDK calls during a preview (`--dry-run`): supportsFeature, registerResource,
 * registerResourceOutputs, registerPackage, invoke (answered with provider_pb's InvokeResponse,
 * by the table in plan/lookups.ts with plan/placeholders.ts's values) and
 * signalAndWaitForShutdown; and the engine's log, getRootResource and setRootResource. Anything else fails the plan loudly.
 *
 * Like `pulumi preview`, a custom resource's outputs are its inputs, and every other output is
 * unknown: the SDK treats outputs missing from the response as unknown in a dry run.
 */
import * as grpc from "@grpc/grpc-js";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";
import { JavaScriptValue, Struct } from "google-protobuf/google/protobuf/struct_pb";
import { EngineService, IEngineServer } from "@pulumi/pulumi/proto/engine_grpc_pb";
import {
  GetRootResourceResponse,
  LogSeverity,
  RequirePulumiVersionResponse,
  SetRootResourceResponse,
} from "@pulumi/pulumi/proto/engine_pb";
import { CheckFailure, InvokeResponse } from "@pulumi/pulumi/proto/provider_pb";
import {
  IResourceMonitorServer,
  ResourceMonitorService,
} from "@pulumi/pulumi/proto/resource_grpc_pb";
import {
  RegisterPackageResponse,
  RegisterResourceRequest,
  RegisterResourceResponse,
  SupportsFeatureResponse,
} from "@pulumi/pulumi/proto/resource_pb";
import { UnknownInvokeError } from "./lookups";
import { answerInvoke, InvokeContext } from "./placeholders";
import { PlanValue, SECRET, toPlanObject, toPlanValue } from "./values";

export const STACK_TYPE = "pulumi:pulumi:Stack";
/** The engine's builtin resource that keeps a value in the state (pulumi.Stash). */
const STASH_TYPE = "pulumi:index:Stash";

export interface PlannedResource {
  urn: string;
  type: string;
  name: string;
  /** URN of the parent (undefined only for the stack itself). */
  parent?: string;
  /** A custom resource (a cloud object) rather than a component. */
  custom: boolean;
  /** Explicit provider reference, when the program passed one. */
  provider?: string;
  /** URNs the resource depends on explicitly or through its inputs. */
  dependsOn: string[];
  /** Resource options that shape later updates and destroys; only those the program set. */
  options: PlannedOptions;
  inputs: Record<string, PlanValue>;
  /** Outputs a component or the stack registered (registerResourceOutputs). */
  outputs?: Record<string, PlanValue>;
}

/**
 * The resource options that decide what a later `pulumi up` or `destroy` does to a resource
 * (replace or update, in which order, how long to wait): what `pulumi preview` cannot show on
 * a first deploy, and what the program's tests must see.
 */
export interface PlannedOptions {
  ignoreChanges?: string[];
  replaceOnChanges?: string[];
  /** The value whose change replaces the resource (components/pulumiCli.ts: which CLI). */
  replacementTrigger?: PlanValue;
  deleteBeforeReplace?: boolean;
  customTimeouts?: { create?: string; update?: string; delete?: string };
  protect?: boolean;
  retainOnDelete?: boolean;
  /**
   * The URNs the resource was known by (its `aliases`, as the engine resolves them): a later
   * `pulumi up` moves the state found under one of them rather than replacing the resource.
   */
  aliases?: string[];
}

/**
 * The URNs of a resource's aliases. The SDK sends alias specs (the monitor supports
 * `aliasSpecs`); an unset part is the resource's own, as the engine fills it in: its name,
 * type, stack, project and parent (`noParent`: none).
 */
function aliasUrnsOf(req: RegisterResourceRequest, stack: string, project: string): string[] {
  const urns = [...req.getAliasurnsList()];
  for (const alias of req.getAliasesList()) {
    const spec = alias.getSpec();
    if (spec === undefined) {
      urns.push(alias.getUrn());
      continue;
    }
    const type = spec.getType() || req.getType();
    const parent = spec.getNoparent() ? "" : spec.getParenturn() || req.getParent();
    // A URN's third part is its qualified type; the stack's own type is left out of it.
    const parentType = parent ? parent.split("::")[2] : undefined;
    const qualified =
      parentType !== undefined && parentType !== STACK_TYPE ? `${parentType}$${type}` : type;
    urns.push(
      `urn:pulumi:${spec.getStack() || stack}::${spec.getProject() || project}::${qualified}::` +
        (spec.getName() || req.getName()),
    );
  }
  return urns;
}

/** The options a RegisterResourceRequest carries, leaving out what the program did not set. */
function optionsOf(req: RegisterResourceRequest, stack: string, project: string): PlannedOptions {
  const options: PlannedOptions = {};
  if (req.getIgnorechangesList().length > 0) options.ignoreChanges = req.getIgnorechangesList();
  if (req.getReplaceonchangesList().length > 0) {
    options.replaceOnChanges = req.getReplaceonchangesList();
  }
  const trigger = req.getReplacementTrigger();
  if (trigger !== undefined) options.replacementTrigger = toPlanValue(trigger.toJavaScript());
  if (req.getDeletebeforereplacedefined()) {
    options.deleteBeforeReplace = req.getDeletebeforereplace();
  }
  const timeouts = req.getCustomtimeouts();
  if (timeouts !== undefined) {
    const set = Object.entries({
      create: timeouts.getCreate(),
      update: timeouts.getUpdate(),
      delete: timeouts.getDelete(),
    }).filter(([, value]) => value !== "");
    if (set.length > 0) options.customTimeouts = Object.fromEntries(set);
  }
  if (req.getProtect() === true) options.protect = true;
  if (req.getRetainondelete() === true) options.retainOnDelete = true;
  const aliases = aliasUrnsOf(req, stack, project);
  if (aliases.length > 0) options.aliases = aliases;
  return options;
}

export interface PlannedLookup {
  token: string;
  args: Record<string, PlanValue>;
  /** What the placeholder answer stands for. */
  note: string;
  /** Placeholder strings in the answer: marked wherever they appear in resource inputs. */
  placeholders: string[];
}

export type Severity = "debug" | "info" | "warning" | "error";

export interface EngineLog {
  severity: Severity;
  message: string;
  urn?: string;
}

/** Everything the program told the engine. */
export interface PlanRecord {
  resources: PlannedResource[];
  lookups: PlannedLookup[];
  logs: EngineLog[];
  /** Calls this engine cannot honour offline (unknown lookups, remote components...). */
  problems: string[];
  /** The Pulumi CLI range the program asked for (requirePulumiVersion), when it did. */
  pulumiVersionRange?: string;
}

/**
 * Features the SDK asks about (settings.js awaitFeatureSupport). Secrets must be supported so
 * secret inputs arrive marked (and are hidden); transforms, hooks and invoke transforms need
 * callback servers this engine does not run, so the SDK is told they are unavailable.
 */
const FEATURES: Record<string, boolean> = {
  secrets: true,
  resourceReferences: true,
  outputValues: false,
  deletedWith: true,
  replaceWith: true,
  aliasSpecs: true,
  transforms: false,
  invokeTransforms: false,
  parameterization: true,
  resourceHooks: false,
  errorHooks: false,
};

const SEVERITIES: Record<LogSeverity, Severity> = {
  [LogSeverity.DEBUG]: "debug",
  [LogSeverity.INFO]: "info",
  [LogSeverity.WARNING]: "warning",
  [LogSeverity.ERROR]: "error",
};

export interface PlanEngineOptions {
  project: string;
  stack: string;
  invokeContext: InvokeContext;
}

export interface PlanEngine {
  /** `127.0.0.1:<port>`: both the monitor and the engine address. */
  address: string;
  record: PlanRecord;
  close(): Promise<void>;
}

/** Records a call the plan refuses and makes the gRPC error the SDK reports in the program. */
function unimplemented(
  record: PlanRecord,
  what: string,
  code: grpc.status = grpc.status.UNIMPLEMENTED,
): grpc.ServiceError {
  const message = `the offline plan cannot ${what}`;
  record.problems.push(message);
  return Object.assign(new Error(message), {
    code,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

/** JSON-safe copy (drops `undefined`, which Struct.fromJavaScript rejects). */
function jsonSafe(value: Record<string, unknown>): Record<string, JavaScriptValue> {
  return JSON.parse(JSON.stringify(value)) as Record<string, JavaScriptValue>;
}

/**
 * Invoke arguments arrive with secrets already unwrapped (invoke.js unwrapSecretValues), so a
 * secret cannot be told apart here: arguments that commonly carry one are left out of the plan.
 */
const PRIVATE_INVOKE_ARGS = ["environment", "stdin", "password", "privateKey", "token", "secret"];

function withoutPrivateArgs(args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(args).map(([k, v]) => [k, PRIVATE_INVOKE_ARGS.includes(k) ? SECRET : v]),
  );
}

export async function startPlanEngine(options: PlanEngineOptions): Promise<PlanEngine> {
  const record: PlanRecord = { resources: [], lookups: [], logs: [], problems: [] };
  /** URN to qualified type (parent types joined by `$`, as the engine builds URNs). */
  const qualifiedTypes = new Map<string, string>();
  const byUrn = new Map<string, PlannedResource>();
  /** What registerResource answered, for the engine's own `pulumi:pulumi:getResource`. */
  const states = new Map<string, Record<string, JavaScriptValue>>();
  let rootUrn = "";
  let packages = 0;

  const urnOf = (type: string, name: string, parent: string): string => {
    const parentType = parent ? qualifiedTypes.get(parent) : undefined;
    const qualified =
      parentType !== undefined && parentType !== STACK_TYPE ? `${parentType}$${type}` : type;
    const urn = `urn:pulumi:${options.stack}::${options.project}::${qualified}::${name}`;
    qualifiedTypes.set(urn, qualified);
    return urn;
  };

  const monitor: IResourceMonitorServer = {
    supportsFeature(call, callback) {
      callback(
        null,
        new SupportsFeatureResponse().setHassupport(FEATURES[call.request.getId()] ?? false),
      );
    },
    registerResource(call, callback) {
      const req = call.request;
      const type = req.getType();
      if (req.getRemote()) {
        callback(
          unimplemented(record, `construct the remote component ${type} '${req.getName()}'`),
        );
        return;
      }
      const urn = urnOf(type, req.getName(), req.getParent());
      if (byUrn.has(urn)) {
        // The engine's own check (pulumi up fails the same way).
        callback(
          unimplemented(
            record,
            `register '${urn}' twice: duplicate resource URN (give it a unique name)`,
            grpc.status.ALREADY_EXISTS,
          ),
        );
        return;
      }
      const object = req.getObject()?.toJavaScript() ?? {};
      const dependsOn = new Set(req.getDependenciesList());
      for (const deps of req.getPropertydependenciesMap().values()) {
        for (const dep of deps.getUrnsList()) dependsOn.add(dep);
      }
      const resource: PlannedResource = {
        urn,
        type,
        name: req.getName(),
        parent: req.getParent() || undefined,
        custom: req.getCustom(),
        provider: req.getProvider() || undefined,
        dependsOn: [...dependsOn],
        options: optionsOf(req, options.stack, options.project),
        inputs: toPlanObject(object),
      };
      record.resources.push(resource);
      byUrn.set(urn, resource);
      // A preview's answer: no id yet (unknown), inputs as outputs for custom resources; a new
      // Stash (the engine's builtin) also holds its input as its output.
      const state = req.getCustom() ? object : {};
      if (type === STASH_TYPE && !("output" in state)) state.output = object.input ?? null;
      states.set(urn, state);
      const response = new RegisterResourceResponse().setUrn(urn).setId("");
      response.setObject(Struct.fromJavaScript(state));
      callback(null, response);
    },
    registerResourceOutputs(call, callback) {
      const resource = byUrn.get(call.request.getUrn());
      if (resource === undefined) {
        callback(
          unimplemented(record, `register outputs of unknown resource ${call.request.getUrn()}`),
        );
        return;
      }
      resource.outputs = toPlanObject(call.request.getOutputs()?.toJavaScript() ?? {});
      callback(null, new Empty());
    },
    invoke(call, callback) {
      const token = call.request.getTok();
      const args = call.request.getArgs()?.toJavaScript() ?? {};
      const response = new InvokeResponse();
      // The SDK rehydrates a resource reference it receives back (an input that was a whole
      // Resource) with this engine-implemented invoke (runtime/resource.js getResource).
      if (token === "pulumi:pulumi:getResource" && states.has(String(args.urn))) {
        const urn = String(args.urn);
        response.setReturn(Struct.fromJavaScript({ urn, id: "", state: states.get(urn) ?? {} }));
        callback(null, response);
        return;
      }
      try {
        const answer = answerInvoke(token, args, options.invokeContext);
        record.lookups.push({
          token,
          args: toPlanObject(withoutPrivateArgs(args)),
          note: answer.note,
          placeholders: answer.placeholders,
        });
        response.setReturn(Struct.fromJavaScript(jsonSafe(answer.result)));
      } catch (err) {
        if (!(err instanceof UnknownInvokeError)) throw err;
        record.problems.push(err.message);
        // Reported to the program the way a provider reports a failed lookup: the SDK throws
        // "Invoke of '<token>' failed: ..." inside the program.
        response.setFailuresList([new CheckFailure().setProperty("").setReason(err.message)]);
      }
      callback(null, response);
    },
    registerPackage(call, callback) {
      packages += 1;
      callback(
        null,
        new RegisterPackageResponse().setRef(`plan-package-${packages}-${call.request.getName()}`),
      );
    },
    signalAndWaitForShutdown(_call, callback) {
      callback(null, new Empty());
    },
    getDeploymentInfo(_call, callback) {
      callback(unimplemented(record, "report deployment info"));
    },
    call(call, callback) {
      callback(unimplemented(record, `call the component method ${call.request.getTok()}`));
    },
    readResource(call, callback) {
      callback(
        unimplemented(
          record,
          `read the existing resource ${call.request.getType()} '${call.request.getName()}' (get)`,
        ),
      );
    },
    registerStackTransform(_call, callback) {
      callback(unimplemented(record, "run stack transforms"));
    },
    registerStackInvokeTransform(_call, callback) {
      callback(unimplemented(record, "run invoke transforms"));
    },
    registerResourceHook(_call, callback) {
      callback(unimplemented(record, "run resource hooks"));
    },
    registerErrorHook(_call, callback) {
      callback(unimplemented(record, "run error hooks"));
    },
  };

  const engine: IEngineServer = {
    log(call, callback) {
      const req = call.request;
      // Debug messages are dropped unread: the SDK's debug lines echo whole RPC responses,
      // secret values included.
      if (req.getSeverity() === LogSeverity.DEBUG) {
        callback(null, new Empty());
        return;
      }
      record.logs.push({
        severity: SEVERITIES[req.getSeverity()] ?? "info",
        message: req.getMessage(),
        urn: req.getUrn() || undefined,
      });
      callback(null, new Empty());
    },
    getRootResource(_call, callback) {
      callback(null, new GetRootResourceResponse().setUrn(rootUrn));
    },
    setRootResource(call, callback) {
      rootUrn = call.request.getUrn();
      callback(null, new SetRootResourceResponse());
    },
    startDebugging(_call, callback) {
      callback(unimplemented(record, "attach a debugger"));
    },
    requirePulumiVersion(call, callback) {
      // No Pulumi CLI is involved: there is no CLI version to check against. The range is
      // recorded so that the plan says which CLI `pulumi up` needs.
      record.pulumiVersionRange = call.request.getPulumiVersionRange();
      callback(null, new RequirePulumiVersionResponse());
    },
  };

  const server = new grpc.Server();
  server.addService(ResourceMonitorService, monitor);
  server.addService(EngineService, engine);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });

  return {
    address: `127.0.0.1:${port}`,
    record,
    close: () =>
      new Promise<void>((resolve) => {
        // A runner that was killed mid-call may leave a call open: stop waiting after a while.
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
