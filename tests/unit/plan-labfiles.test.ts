/**
 * The lab's files in the offline plan of the real program: the plan runs index.ts
 * under Pulumi's own runtime, so it sees what mocks cannot, such as `dependsOn` as the engine
 * gets it and the CopyToRemote's asset. EC2 gets the files by a CopyToRemote and a hand-over
 * Command under LabFiles, on the pinned connection, before the verification.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { LAB_DIR, labFilesArchive, RECEIVE_SCRIPT } from "../../cloud-init/userData";
import { buildReport, PlanReport, ReportResource } from "../../plan/printer";
import { loadProject } from "../../plan/project";
import { runPlan } from "../../plan/runner";
import { SECRET, UNKNOWN } from "../../plan/values";
import { PLAN_TIMEOUT_MS, ROOT } from "./fixtures/plan-cli";

const T = {
  labFiles: "criu-lab:files:LabFiles",
  lab: "criu-lab:lab:CriuLab",
  seat: "criu-lab:seat:LabSeat",
  instance: "aws:ec2/instance:Instance",
  copy: "command:remote:CopyToRemote",
  command: "command:remote:Command",
} as const;

describe("plan: the lab's files copied to the host", () => {
  let report: PlanReport;

  beforeAll(async () => {
    const result = await runPlan({ project: loadProject({ dir: ROOT, stack: "dev" }) });
    report = buildReport(result);
    if (!report.ok) console.error(result.stdout, result.stderr);
  }, PLAN_TIMEOUT_MS);

  const ofType = (type: string) => report.resources.filter((r) => r.type === type);
  const one = (type: string, nameEnds = ""): ReportResource => {
    const found = ofType(type).filter((r) => r.name.endsWith(nameEnds));
    expect(found, `${type} *${nameEnds}`).toHaveLength(1);
    return found[0];
  };
  const byUrn = (urn: string | undefined) => report.resources.find((r) => r.urn === urn);

  it("runs the program to the end", () => {
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("has a LabFiles component in the lab with the copy and the hand-over", () => {
    const copy = one(T.copy);
    const ready = one(T.command, "-files-ready");
    const component = byUrn(copy.parent);
    expect(component?.type).toBe(T.labFiles);
    // Seat 01's: one seat of one host is a class of one.
    expect(byUrn(component?.parent)?.type).toBe(T.seat);
    expect(byUrn(byUrn(component?.parent)?.parent)?.type).toBe(T.lab);
    expect(ready.parent).toBe(component?.urn);
  });

  it("copies after the instance, hands over after the copy, verifies after the hand-over", () => {
    const copy = one(T.copy);
    const ready = one(T.command, "-files-ready");
    expect(copy.dependsOn).toContain(one(T.instance).urn);
    expect(ready.dependsOn).toContain(copy.urn);
    expect(one(T.command, "-verify-cloud-init").dependsOn).toContain(ready.urn);
  });

  it("uses a secret (or not yet known) connection, the archive's hash and the instance as triggers", () => {
    const { sha256 } = labFilesArchive();
    const copy = one(T.copy);
    const ready = one(T.command, "-files-ready");
    for (const r of [copy, ready]) {
      expect([SECRET, UNKNOWN], r.name).toContain(r.inputs.connection);
      expect(r.inputs.triggers, r.name).toEqual([sha256, UNKNOWN]);
    }
    expect(copy.inputs.remotePath).toBe(".criu-lab-files.tar");
    expect(ready.inputs.create).toBe(
      `sudo bash ${LAB_DIR}/${RECEIVE_SCRIPT} deliver --sha256 ${sha256} "$HOME/.criu-lab-files.tar"`,
    );
  });
});
