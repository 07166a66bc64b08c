/**
 * The user-data EC2 gets (lab files "copied"), with this machine's cloud-init and
 * on this host: `cloud-init schema` on it; cloud-init's own code reads the gzip form and
 * writes its one file; then its runcmd runs here for real while the test plays `pulumi up`
 * (LabFiles): the archive lands as the SSH user's file and `receive-lab-files.sh deliver`
 * hands it to root, as the hand-over Command does with sudo. The runcmd must then unpack it
 * and run setup-lab.sh (the lab that results is checked, and the host put back with
 * setup-host.sh), give up with its message when nothing comes, and refuse a changed archive.
 * Not here: the late set-up through systemd-run (this host's PID 1 is not systemd).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  compressUserData,
  LAB_DIR,
  LAB_FILES,
  labFilesArchive,
  RECEIVE_SCRIPT,
  renderUserData,
  type UserDataOptions,
} from "../../cloud-init/userData";
import { generateKey } from "../../vm/keys";
import { cannotRun, needCommand } from "../support/requirements";
import { cloudInitRead } from "./support/cloud-init";
import { CLOUD_INIT, criuTarball, HOST, REPO, run, tempDir, type Ran } from "./support/lab-helpers";
import { needLabHost } from "./support/needs";

const LAB_USER = "ubuntu";

describe.skipIf(
  cannotRun("copied user-data", [
    ...needLabHost("criu"),
    needCommand("cloud-init", "apt-get install cloud-init"),
  ]),
)("the user-data with copied lab files, on this host", () => {
  let dir: string;
  let root: string;
  let options: UserDataOptions;
  /** The runcmd as cloud-init would run it, the script where write_files put it under `root`. */
  let runcmd: string[];
  let setUp = false;
  const incoming = (name: string) => path.join(dir, name);

  beforeAll(() => {
    dir = tempDir("copied");
    root = path.join(dir, "root");
    const tarball = criuTarball();
    options = {
      criu: { kind: "tarball", url: tarball.path, sha256: tarball.sha256 },
      hostKey: generateKey(path.join(dir, "host_ed25519"), "test"),
      autoStopMinutes: 0,
      labFiles: "copied",
    };
    const read = cloudInitRead(dir, compressUserData(renderUserData(options)), root);
    expect(read.written).toEqual([path.join(root, LAB_DIR, RECEIVE_SCRIPT)]);
    const [commands] = [parse(read.cloudConfig ?? "").runcmd as string[][]];
    expect(commands).toHaveLength(1);
    runcmd = commands[0].map((arg) => (arg === `${LAB_DIR}/${RECEIVE_SCRIPT}` ? root + arg : arg));
  });

  afterAll(() => {
    if (setUp) {
      // Back to the host as `npm run setup:host` leaves it.
      const restore = run("bash", [path.join(REPO, "scripts/setup-host.sh")]);
      expect(restore.code, restore.stdout + restore.stderr).toBe(0);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** `receive-lab-files.sh ARGS` as root, with its incoming directory in the test's. */
  const receive = (args: string[], inbox: string): Ran =>
    run(runcmd[0], [runcmd[1], ...args], { env: { ...process.env, CRIU_LAB_INCOMING: inbox } });

  /** What CopyToRemote leaves: the archive as a file of the SSH user, in a folder of theirs. */
  const upload = (content: Buffer): string => {
    const home = fs.mkdtempSync(path.join(dir, "home-"));
    const file = path.join(home, ".criu-lab-files.tar");
    fs.writeFileSync(file, content);
    const user = run("id", ["-u", LAB_USER]).stdout.trim();
    const group = run("id", ["-g", LAB_USER]).stdout.trim();
    for (const p of [home, file]) fs.chownSync(p, Number(user), Number(group));
    return file;
  };

  it("passes `cloud-init schema`, and cloud-init writes only the receiving script", () => {
    const file = path.join(dir, "user-data.yaml");
    fs.writeFileSync(file, renderUserData(options), { mode: 0o600 });
    const ran = run("cloud-init", ["schema", "-c", file]);
    expect(ran.stdout + ran.stderr).toContain("Valid cloud-config");
    expect(ran.code).toBe(0);
    const written = path.join(root, LAB_DIR, RECEIVE_SCRIPT);
    expect(fs.readFileSync(written).equals(fs.readFileSync(path.join(CLOUD_INIT, RECEIVE_SCRIPT))));
    expect((fs.statSync(written).mode & 0o777).toString(8)).toBe("755");
  });

  it("waits, then gives up with its message when no files arrive, keeping its arguments", () => {
    const inbox = incoming("incoming-timeout");
    const setupArgs = runcmd.slice(runcmd.indexOf("--") + 1);
    const args = runcmd.slice(2);
    args[args.indexOf("--wait-seconds") + 1] = "2";
    const ran = receive(args, inbox);
    expect(ran.code, ran.stderr).toBe(3);
    expect(ran.stdout).toContain("waiting up to 2s for the lab's files");
    expect(ran.stderr).toContain(`the lab's files did not arrive in ${inbox} within 2s`);
    expect(ran.stderr).toContain("run `pulumi up` again");
    const kept = fs.readFileSync(path.join(inbox, "gave-up"), "utf8").split("\0").slice(0, -1);
    expect(kept.slice(kept.indexOf("--") + 1)).toEqual(setupArgs);
    expect((fs.statSync(inbox).mode & 0o777).toString(8)).toBe("700");
  });

  it("refuses an archive that is not the one the user-data pins, and keeps nothing of it", () => {
    const inbox = incoming("incoming-changed");
    const tampered = Buffer.from(labFilesArchive().tar);
    tampered[600] ^= 1;
    const staged = upload(tampered);
    const sha256 = runcmd[runcmd.indexOf("--sha256") + 1];
    const ran = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain(`expected ${sha256}`);
    expect(fs.readdirSync(inbox).filter((f) => !f.startsWith(".lock"))).toEqual([]);
  });

  it("a delivery `pulumi up` did not record succeeds again without its file; a missing or different archive fails clearly", () => {
    const inbox = incoming("incoming-again");
    const sha256 = runcmd[runcmd.indexOf("--sha256") + 1];
    const staged = upload(labFilesArchive().tar);
    const first = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(first.code, first.stderr).toBe(0);
    expect(fs.existsSync(staged)).toBe(false);
    // The SSH connection dropped before the engine recorded it: the same step runs again.
    const again = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`the lab's files (${sha256}) were already delivered`);

    // Another archive was pinned since: the one in place is not it.
    const other = "0".repeat(64);
    const different = receive(["deliver", "--sha256", other, staged], inbox);
    expect(different.code).toBe(2);
    expect(different.stderr).toContain(`has SHA-256 ${sha256}, not the expected ${other}`);

    // Unpacked from another archive (what the waiting step records): not these files.
    fs.writeFileSync(path.join(inbox, "unpacked"), `${other}\n`);
    const unpacked = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(unpacked.code).toBe(2);
    expect(unpacked.stderr).toContain(`were unpacked from an archive with SHA-256 ${other}`);

    // Nothing was ever delivered here.
    const none = receive(["deliver", "--sha256", sha256, staged], incoming("incoming-none"));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`${staged} is not a file, and no archive was delivered`);
  });

  it("sets the host up when the copy arrives while it waits: the same lab as setup:host", async () => {
    const inbox = incoming("incoming");
    const waiting = new Promise<Ran>((resolve, reject) => {
      const child = spawn(runcmd[0], runcmd.slice(1), {
        env: { ...process.env, CRIU_LAB_INCOMING: inbox },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }));
    });
    // The copy, then the hand-over, as `pulumi up` does them (the runcmd is waiting).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const staged = upload(labFilesArchive().tar);
    const sha256 = runcmd[runcmd.indexOf("--sha256") + 1];
    const delivered = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(delivered.code, delivered.stderr).toBe(0);
    expect(delivered.stdout).toContain("the lab's files");
    expect(fs.existsSync(staged)).toBe(false);
    const archive = fs.statSync(path.join(inbox, "lab-files.tar"));
    expect([archive.uid, archive.mode & 0o777]).toEqual([0, 0o600]);

    const ran = await waiting;
    setUp = true;
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    expect(ran.stdout).toContain("waiting up to");
    expect(ran.stdout).toContain("the lab is ready");
    for (const { name, mode, source } of LAB_FILES) {
      const file = path.join(LAB_DIR, name);
      const same = fs.readFileSync(file).equals(fs.readFileSync(source));
      expect(same, `${file} differs from ${source}`).toBe(true);
      expect((fs.statSync(file).mode & 0o777).toString(8).padStart(4, "0"), name).toBe(mode);
      expect(fs.statSync(file).uid, name).toBe(0);
    }
    expect(fs.realpathSync(HOST.criuLab)).toBe(path.join(LAB_DIR, "criu-lab"));
    const setup = JSON.parse(fs.readFileSync("/var/lib/criu-lab/setup.json", "utf8"));
    expect(setup).toMatchObject({ ok: true, user: LAB_USER, error: "" });
    // What the files in LAB_DIR were unpacked from: a repeated hand-over checks it.
    expect(fs.readFileSync(path.join(inbox, "unpacked"), "utf8")).toBe(`${sha256}\n`);
    const again = receive(["deliver", "--sha256", sha256, staged], inbox);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`unpacked into ${LAB_DIR}`);
  }, 900_000);
});
