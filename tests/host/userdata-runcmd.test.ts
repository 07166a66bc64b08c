/**
 * What cloud-init does with the user-data EC2 gets, done on this host: cloud-init's own code
 * gunzips it and writes `write_files` (support/cloud-init.ts), then `runcmd` runs as listed.
 * The lab that results must be the one `npm run setup:host` makes, plus the auto-stop timer
 * (600 minutes here, so it can never fire during tests). The host is put back with
 * `setup-host.sh` afterwards.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { LAB_DIR, LAB_FILES, renderUserData } from "../../cloud-init/userData";
import { cannotRun, needCommand } from "../support/requirements";
import { cloudInitRead } from "./support/cloud-init";
import { criuTarball, HOST, HOST_DIR, REPO, run, tempDir, type Ran } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";
import { generateKey } from "../../vm/keys";

const UNITS = "/etc/systemd/system/criu-lab-autostop";

describe.skipIf(
  cannotRun("user-data runcmd", [
    ...needLabHost("criu"),
    needCommand("systemd-analyze"),
    needCommand("cloud-init", "apt-get install cloud-init"),
  ]),
)("the user-data's write_files and runcmd, run on this host", () => {
  let dir: string;
  let runcmd: string[][];
  const results: Ran[] = [];
  const runAll = () => runcmd.map(([command, ...args]) => run(command, args));

  beforeAll(() => {
    dir = tempDir("runcmd");
    const tarball = criuTarball();
    const text = renderUserData({
      criu: { kind: "tarball", url: tarball.path, sha256: tarball.sha256 },
      hostKey: generateKey(path.join(dir, "host_ed25519"), "test"),
      autoStopMinutes: 600,
    });
    // The embedded form, plain, as a VM's NoCloud seed carries it (EC2's copied form has its
    // own test: userdata-copied.test.ts).
    const read = cloudInitRead(dir, text, "/");
    expect(read.written).toEqual(LAB_FILES.map((f) => path.join(LAB_DIR, f.name)));
    runcmd = parse(read.cloudConfig ?? "").runcmd;
    results.push(...runAll());
  });

  afterAll(() => {
    // Back to the host as `npm run setup:host` leaves it (no auto-stop).
    const restore = run("bash", [path.join(REPO, "scripts/setup-host.sh")]);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(restore.code, restore.stdout + restore.stderr).toBe(0);
    expect(fs.existsSync(`${UNITS}.timer`)).toBe(false);
  });

  it("runs every command successfully", () => {
    results.forEach((r, i) =>
      expect(r.code, `${runcmd[i].join(" ")}: ${r.stdout}${r.stderr}`).toBe(0),
    );
    expect(results.at(-1)!.stdout).toContain("the lab is ready");
  });

  it("installs the files it carries, as in the repository, criu-lab on PATH", () => {
    for (const { name, mode, source } of LAB_FILES) {
      const file = path.join(LAB_DIR, name);
      expect(fs.readFileSync(file, "utf8"), name).toBe(fs.readFileSync(source, "utf8"));
      expect((fs.statSync(file).mode & 0o777).toString(8).padStart(4, "0"), name).toBe(mode);
    }
    expect(fs.realpathSync(HOST.criuLab)).toBe(path.join(LAB_DIR, "criu-lab"));
    expect(fs.readFileSync("/home/ubuntu/counter.py", "utf8")).toBe(
      fs.readFileSync(path.join(HOST_DIR, "counter.py"), "utf8"),
    );
    // `criu-lab guide` reads it there.
    expect(fs.readFileSync("/usr/local/share/criu-lab/lab-guide.md", "utf8")).toBe(
      fs.readFileSync(path.join(REPO, "docs", "lab-guide.md"), "utf8"),
    );
  });

  it("records a passing setup and check", () => {
    const setup = JSON.parse(fs.readFileSync("/var/lib/criu-lab/setup.json", "utf8"));
    expect(setup).toMatchObject({ ok: true, user: "ubuntu", autoStopMinutes: 600, error: "" });
    const check = JSON.parse(fs.readFileSync("/var/lib/criu-lab/check.json", "utf8"));
    expect(check.ok).toBe(true);
  });

  it("writes an auto-stop timer and service that systemd accepts", () => {
    const service = fs.readFileSync(`${UNITS}.service`, "utf8");
    expect(service).toContain("ExecStart=/usr/local/bin/criu-lab autostop --minutes 600");
    expect(fs.readFileSync(`${UNITS}.timer`, "utf8")).toContain("OnUnitActiveSec=1min");
    const verify = run("systemd-analyze", ["verify", `${UNITS}.timer`, `${UNITS}.service`]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it("shows the lab's steps at login", () => {
    // Named to come after Ubuntu's own update-motd.d scripts; the old name is removed.
    expect(fs.existsSync("/etc/update-motd.d/60-criu-lab")).toBe(false);
    const motd = run("/etc/update-motd.d/99-criu-lab", []);
    expect(motd.code).toBe(0);
    expect(motd.stdout).toBe(fs.readFileSync(path.join(LAB_DIR, "motd"), "utf8"));
    expect(motd.stdout).toContain("sudo criu restore -D checkpoint_dir -v4 --shell-job");
  });

  it("does nothing new when run again (cloud-init may rerun it)", () => {
    const again = runAll();
    again.forEach((r) => expect(r.code, r.stdout + r.stderr).toBe(0));
    expect(again.at(-1)!.stdout).toContain("nothing to do");
  });
});
