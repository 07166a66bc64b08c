/**
 * LabFiles under mocks: the lab's files reach an EC2 host by a CopyToRemote of
 * their archive and a hand-over Command, over the same connection as the verification, host
 * key pinned; they run with or without `verify`, re-run for new files or a new instance, and
 * the verification waits for them. The user-data pins the same archive's SHA-256.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import type { CriuLab, CriuLabArgs } from "../../components/lab";
import { LAB_DIR, labFilesArchive, RECEIVE_SCRIPT } from "../../cloud-init/userData";
import {
  type ConstructionLog,
  type LabMocks,
  MOCK_ELASTIC_IP,
  setupMocks,
  userDataOf,
  valueOf,
} from "./support/mocks";
import { newLab, settled } from "./support/lab";

const T = {
  copy: "command:remote:CopyToRemote",
  command: "command:remote:Command",
  instance: "aws:ec2/instance:Instance",
} as const;

let mocks: LabMocks;
let CriuLabClass: typeof CriuLab;

const build = (name: string, overrides: Partial<CriuLabArgs> = {}) =>
  settled(mocks, newLab(CriuLabClass, name, overrides));

const constructed = (log: ConstructionLog, name: string) => {
  const found = log.constructed.find((c) => c.name === name);
  if (!found) throw new Error(`not constructed: ${name}`);
  return found;
};

beforeAll(async () => {
  mocks = await setupMocks();
  CriuLabClass = (await import("../../components/lab")).CriuLab;
});

describe("LabFiles", () => {
  it("copies exactly the lab's archive to the SSH user's home, host key pinned", async () => {
    const { lab } = await build("files");
    const copy = mocks.one(T.copy, "files-");
    expect(copy.name).toBe("files-seat-01-a-files-copy");
    const hostKey = await valueOf(lab.access.hostPublicKey);
    expect(copy.inputs.connection).toMatchObject({
      host: MOCK_ELASTIC_IP, // the Elastic IP: every connection uses it
      user: "ubuntu",
      hostKey,
      privateKey: await valueOf(lab.privateKey),
    });
    expect(copy.inputs.remotePath).toBe(".criu-lab-files.tar");
    // A path-based FileAsset (the provider refuses an AssetArchive) holding the archive.
    // rawInputs: the asset as the program made it (its path is a promise).
    const source = copy.rawInputs.source as pulumi.asset.FileAsset;
    expect(pulumi.asset.FileAsset.isInstance(source)).toBe(true);
    const file = await source.path;
    expect(fs.readFileSync(file).equals(labFilesArchive().tar)).toBe(true);
    // The connection carries the private key: it reaches the engine as a secret.
    expect(JSON.stringify(copy.rawInputs.connection)).toContain("4dabf18193072939515e22adb298388d");
  });

  it("hands the copy to root with the SHA-256 the user-data pins, after the copy", async () => {
    const { lab, log } = await build("handover");
    const ready = mocks.one(T.command, "handover-seat-01-a-files-ready");
    const { sha256 } = labFilesArchive();
    expect(ready.inputs.create).toBe(
      `sudo bash ${LAB_DIR}/${RECEIVE_SCRIPT} deliver --sha256 ${sha256} "$HOME/.criu-lab-files.tar"`,
    );
    expect(ready.inputs.connection.hostKey).toBe(await valueOf(lab.access.hostPublicKey));
    expect(userDataOf(mocks.one(T.instance, "handover-"))).toContain(sha256);
    expect(constructed(log, "handover-seat-01-a-files-ready").opts.dependsOn).toEqual([
      constructed(log, "handover-seat-01-a-files-copy").resource,
    ]);
    // The Elastic IP answers for this instance only once it is associated, the instance once
    // it runs (a host the auto-stop powered off is started first).
    expect(constructed(log, "handover-seat-01-a-files-copy").opts.dependsOn).toEqual([
      constructed(log, "handover-seat-01-a-host-instance").resource,
      constructed(log, "handover-seat-01-a-host-running").resource,
      constructed(log, "handover-seat-01-a-address-assoc").resource,
    ]);
    const timeouts = constructed(log, "handover-seat-01-a-files-ready").opts.customTimeouts;
    expect(timeouts?.update).toBe(timeouts?.create);
  });

  it("re-runs for new files or a new instance: triggers are the archive's hash and the instance", async () => {
    await build("triggers");
    const instance = mocks.one(T.instance, "triggers-");
    const { sha256 } = labFilesArchive();
    expect(mocks.one(T.copy, "triggers-").inputs.triggers).toEqual([sha256, instance.id]);
    expect(mocks.one(T.command, "triggers-seat-01-a-files-ready").inputs.triggers).toEqual([
      sha256,
      instance.id,
    ]);
    // New files change the user-data as well, so the verification re-runs too.
    const hash = createHash("sha256").update(userDataOf(instance)).digest("hex");
    expect(mocks.one(T.command, "triggers-seat-01-a-verify-demo").inputs.triggers).toEqual([
      hash,
      instance.id,
    ]);
  });

  it("the verification waits for the files", async () => {
    const { log } = await build("order");
    expect(constructed(log, "order-seat-01-a-verify-cloud-init").opts.dependsOn).toContain(
      constructed(log, "order-seat-01-a-files-ready").resource,
    );
  });

  it("runs without verify too", async () => {
    const { lab } = await build("noverify", { verify: false });
    expect(mocks.ofType(T.copy, "noverify-")).toHaveLength(1);
    expect(mocks.ofType(T.command, "noverify-").map((c) => c.name)).toEqual([
      "noverify-seat-01-a-files-ready",
    ]);
    expect(lab.verification).toBeUndefined();
    expect(pulumi.Resource.isInstance(lab.files.ready)).toBe(true);
  });

  it("gives EC2 the copied form of the user-data, which does not carry the lab's files", async () => {
    await build("userdata", { verify: false });
    const userData = userDataOf(mocks.one(T.instance, "userdata-"));
    expect(userData).toContain(`${LAB_DIR}/${RECEIVE_SCRIPT}`);
    expect(userData).not.toContain(`${LAB_DIR}/counter.py`);
  });
});
