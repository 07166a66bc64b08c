/**
 * cloud-init's own code, run on this host with Debian's cloud-init package: how it reads a
 * user-data blob (gunzip, then the content type by its first line: user_data.py
 * `UserDataProcessor`) and how it writes `write_files` (cc_write_files.py). So the host tests
 * check the user-data with the code that reads it on an instance, not with a copy of it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./lab-helpers";

// Runs under Debian's /usr/bin/python3: cloud-init's modules live in its dist-packages.
const READ_USER_DATA = `
import grp, json, os, pwd, sys
from cloudinit import helpers, user_data, util
from cloudinit.config import cc_write_files

blob_file, root = sys.argv[1], sys.argv[2]
with open(blob_file, "rb") as f:
    message = user_data.UserDataProcessor(helpers.Paths({})).process(f.read())
parts = [p for p in message.walk() if not user_data.is_skippable(p)]
out = {"contentTypes": [p.get_content_type() for p in parts], "written": []}
if out["contentTypes"] == ["text/cloud-config"]:
    out["cloudConfig"] = util.fully_decoded_payload(parts[0])
    if root != "-":
        config = util.load_yaml(out["cloudConfig"])
        files = [dict(f, path=root.rstrip("/") + f["path"]) for f in config["write_files"]]
        owner = pwd.getpwuid(os.getuid()).pw_name + ":" + grp.getgrgid(os.getgid()).gr_name
        cc_write_files.write_files("write_files", files, owner)
        out["written"] = [f["path"] for f in files]
print(json.dumps(out))
`;

export interface CloudInitReading {
  /** Content types of the parts cloud-init found, e.g. ["text/cloud-config"]. */
  contentTypes: string[];
  /** The cloud-config part's text, when that is the only part. */
  cloudConfig?: string;
  /** Files written by cc_write_files (with `writeUnder`). */
  written: string[];
}

/**
 * Reads `userData` (gzip-compressed or plain) as cloud-init does; with `writeUnder`, also
 * writes its `write_files` with cloud-init's module, every path prefixed by `writeUnder`
 * ("/" for the real paths), owned by the calling user. The blob holds a private key: it goes
 * through a file readable by the owner only, in `dir`.
 */
export function cloudInitRead(
  dir: string,
  userData: Buffer | string,
  writeUnder?: string,
): CloudInitReading {
  const blob = path.join(dir, "user-data.blob");
  fs.writeFileSync(blob, userData, { mode: 0o600 });
  const ran = run("/usr/bin/python3", ["-c", READ_USER_DATA, blob, writeUnder ?? "-"]);
  fs.rmSync(blob);
  if (ran.code !== 0) {
    throw new Error(`cloud-init's user-data code failed (exit ${ran.code}): ${ran.stderr}`);
  }
  return JSON.parse(ran.stdout) as CloudInitReading;
}
