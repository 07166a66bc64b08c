/**
 * The acceleration check boots a real (tiny) guest: under TCG the probe must print its marker,
 * a sector without the boot signature must not, and `auto` records its verdict for this boot.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { chooseAccel, probeBoots } from "../../vm/accel";
import { cannotRun, needCommand } from "../support/requirements";

describe.skipIf(
  cannotRun("VM acceleration probe", [
    process.arch === "x64" ? undefined : "the probe guest is x86_64 code",
    needCommand("qemu-system-x86_64", "apt-get install qemu-system-x86"),
  ]),
)("acceleration probe", () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "vm-accel-test-"));
  afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

  it("sees a guest run under software emulation", async () => {
    expect(await probeBoots("tcg", 60_000)).toBe(true);
  });

  it("does not take a guest that never reaches the sector for one that ran", async () => {
    const empty = Buffer.alloc(512); // no 0x55AA signature: the firmware will not run it
    expect(await probeBoots("tcg", 5_000, { kind: "sector", sector: empty })).toBe(false);
  });

  it("decides once per boot of the host and says why", async () => {
    // The boot-sector probe (no kernel given); the lab test covers the kernel probe.
    const first = await chooseAccel("auto", cacheDir);
    console.log(`acceleration here: ${first.accel} (${first.reason})`);
    expect(first.cached).toBe(false);
    expect(first.accel === "tcg" || (await probeBoots("kvm", 15_000))).toBe(true);
    const verdict = JSON.parse(fs.readFileSync(path.join(cacheDir, "accel.json"), "utf8"));
    expect(verdict.bootId).toBe(fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    const second = await chooseAccel("auto", cacheDir);
    expect(second).toEqual({ ...first, cached: true });
    expect(await chooseAccel("tcg", cacheDir)).toMatchObject({ accel: "tcg", cached: false });
  });
});
