/**
 * One set-up for the tests that build a CriuLab under the Pulumi mocks (lab, seat, labFiles,
 * one-seat-urns): the stack's arguments as loadConfig would give them by default, and a lab
 * built with a construction log and settled (every resource reached the mocks).
 */
import type { CriuLab, CriuLabArgs } from "../../../components/lab";
import { ConstructionLog, LabMocks, constructionLog, valueOf } from "./mocks";

/** The CIDR SSH is allowed from in the tests' labs (RFC 5737 TEST-NET-3). */
export const LAB_CIDR = "203.0.113.7/32";

/** A lab's arguments: one seat of one t3.small on Ubuntu 24.04, CRIU v4.2, verify on. */
export function labArgs(overrides: Partial<CriuLabArgs> = {}): CriuLabArgs {
  return {
    instanceType: "t3.small",
    ubuntuRelease: "24.04",
    sshAllowedCidrs: [LAB_CIDR],
    rootVolumeGiB: 16,
    criu: { kind: "git", version: "v4.2", commit: "3c7d4fa013297b431da48eff821db7f2e8b90c27" },
    verify: true,
    autoStopMinutes: 120,
    ...overrides,
  };
}

export interface NewLab {
  lab: CriuLab;
  log: ConstructionLog;
}

/** Constructs the lab `name` (the class loaded after setupMocks) with a construction log. */
export function newLab(
  CriuLabClass: typeof CriuLab,
  name: string,
  overrides: Partial<CriuLabArgs> = {},
): NewLab {
  const log = constructionLog();
  const lab = new CriuLabClass(name, labArgs(overrides), { transformations: [log.transformation] });
  return { lab, log };
}

/** Waits until the lab's outputs resolved and all its resources reached the mocks. */
export async function settled<L extends NewLab>(mocks: LabMocks, made: L): Promise<L> {
  await valueOf(made.lab.knownHostsLine);
  await made.log.settled(mocks);
  return made;
}
