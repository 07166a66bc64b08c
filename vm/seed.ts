/**
 * The NoCloud seed: a small ISO 9660 volume labelled `cidata` holding `user-data` and
 * `meta-data`, which cloud-init finds by its label
 * (https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html).
 * The user-data is the one EC2 gets; the seed adds only the instance identity.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./image";

/** NoCloud's `meta-data`: a new instance-id per VM makes cloud-init run as on a first boot. */
export function renderMetaData(instanceId: string, hostname: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(instanceId) || !/^[a-z0-9-]+$/.test(hostname)) {
    throw new Error(`meta-data: bad instance-id '${instanceId}' or hostname '${hostname}'`);
  }
  return `instance-id: ${instanceId}\nlocal-hostname: ${hostname}\n`;
}

/** genisoimage's argv for a cidata volume of `files` (all in `dir`). */
export function seedIsoArgs(iso: string, dir: string, files: string[]): string[] {
  return [
    "-quiet",
    "-output",
    iso,
    "-volid",
    "cidata",
    "-joliet",
    "-rock",
    ...files.map((f) => path.join(dir, f)),
  ];
}

/**
 * Writes `user-data` and `meta-data` into `dir` and the seed ISO next to them. All of them
 * hold the VM's private host key, so they are readable by the owner only.
 */
export async function writeSeed(
  dir: string,
  userData: string,
  metaData: string,
  logFile: string,
): Promise<string> {
  const files = { "user-data": userData, "meta-data": metaData };
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
  }
  const iso = path.join(dir, "seed.iso");
  await run("genisoimage", seedIsoArgs(iso, dir, Object.keys(files)), logFile);
  fs.chmodSync(iso, 0o600);
  return iso;
}
