/**
 * The lab host's user-data: a pure function from typed options to a `#cloud-config` document,
 * built as data and serialised with the `yaml` package (as pulumi-eks `nodes/userdata.ts`
 * does), never by string concatenation.
 *
 * cloud-init writes the lab's files (this folder's scripts and host/'s command and programs,
 * read at render time, comments and all, so learners on the host read them as written here) into LAB_DIR and runs
 * `setup-lab.sh` from there: the same script `npm run setup:host` runs on any Debian/Ubuntu
 * machine, so a cloud host and a local host are set up by one code path.
 *
 * EC2 takes 16 KB of user-data "in raw form, before it is base64-encoded"
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html), and
 * the lab's files outgrew it. So the user-data comes in two forms (`labFiles`):
 * - "embedded" (the local VM's NoCloud seed, no size limit): every lab file in `write_files`.
 * - "copied" (EC2): only the bootstrap, i.e. the users, the host key, `receive-lab-files.sh`
 *   and the SHA-256 of the lab's files as one tar archive (`labFilesArchive`). `pulumi up`
 *   copies that archive over SSH with the host key pinned (components/labFiles.ts); the runcmd
 *   waits for it, checks it against the SHA-256, unpacks it into LAB_DIR and runs the same
 *   `setup-lab.sh` with the same arguments. The files' hash is in the user-data, so a changed
 *   lab file changes the user-data exactly as an embedded one did (a new host, re-verified).
 * Either way EC2 gets it gzip-compressed (`compressUserData`), which cloud-init uncompresses
 * itself and then reads as if it were not compressed ("User-data formats" -> "Gzip compressed
 * content", https://docs.cloud-init.io/en/latest/explanation/format/gzip.html). The plain text
 * is what `cloud-init schema` checks.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { gzip } from "pako";
import { stringify } from "yaml";

export type CriuSource =
  | { kind: "git"; version: string; commit: string; repository?: string } // default repository https://github.com/checkpoint-restore/criu.git
  | { kind: "tarball"; url: string; sha256: string }; // url: http(s):// URL or absolute path on the host

export interface UserDataOptions {
  criu: CriuSource;
  /** Generated ED25519 SSH host key: OpenSSH private key and its public key line. */
  hostKey: { privateKeyOpenssh: string; publicKeyOpenssh: string };
  /** Extra authorized keys for the lab user (config sshPublicKey; the VM's generated key). */
  authorizedKeys?: string[];
  /** Idle minutes with no SSH session before power-off; 0 = never. */
  autoStopMinutes: number;
  /** The lab user (default "ubuntu"); on images whose default user differs (Debian VM) cloud-init must still make this user with passwordless sudo. */
  labUser?: string;
  /**
   * How the lab's files reach the host (default "embedded"): in the user-data itself, or
   * "copied" by `pulumi up` (components/labFiles.ts) while the runcmd waits for them.
   */
  labFiles?: "embedded" | "copied";
  /**
   * "copied" only: how long the runcmd waits for the files before it gives up with a message
   * (cloud-init then reports an error; the copy, when it comes, starts the set-up itself).
   * Default LAB_FILES_WAIT_SECONDS.
   */
  labFilesWaitSeconds?: number;
}

/** How long a host waits for its copied lab files by default: an interrupted `pulumi up`
 * resumed within the hour sets it up as cloud-init's own run. */
export const LAB_FILES_WAIT_SECONDS = 3600;

/** The host's side of "copied": written by the user-data, run by its runcmd and by the copy. */
export const RECEIVE_SCRIPT = "receive-lab-files.sh";

/** EC2 refuses user-data larger than this, counted before base64 (compressed, here). */
export const USER_DATA_LIMIT_BYTES = 16384;

/** CRIU's upstream repository, used when a git source names none. */
export const DEFAULT_CRIU_REPOSITORY = "https://github.com/checkpoint-restore/criu.git";

/** Where the lab's files land on the host; `setup-lab.sh` installs them from here. */
export const LAB_DIR = "/usr/local/lib/criu-lab";

/**
 * The host command's folder in the repository (docs/design.md "Layout"): the launcher
 * `criu-lab`, its package and the lab's programs. On the host every lab file lands in LAB_DIR.
 */
export const HOST_DIR = path.join(__dirname, "..", "host");

/** The host command's package (its modules); `criu-lab` is the launcher beside it. */
const LAB_PACKAGE = "criu_lab";

/** A lab file: `name` is its path in LAB_DIR, `source` where it is read from here. */
export interface LabFile {
  name: string;
  mode: string;
  source: string;
}

const fromHere = (name: string, mode: string): LabFile => ({
  name,
  mode,
  source: path.join(__dirname, name),
});
const fromHost = (name: string, mode: string): LabFile => ({
  name,
  mode,
  source: path.join(HOST_DIR, name),
});

/** The files the host gets: the set-up scripts of this folder, the host command's of host/. */
export const LAB_FILES: ReadonlyArray<LabFile> = [
  fromHere("motd", "0644"),
  fromHost("counter.py", "0755"),
  fromHost("trainer.py", "0755"),
  fromHost("game_server.py", "0755"),
  fromHost("game_client.py", "0755"),
  fromHost("criu-lab", "0755"),
  ...fs
    .readdirSync(path.join(HOST_DIR, LAB_PACKAGE))
    // rules.json: the checks' rules (a link to contract/rules.json), read by `criu-lab judge`.
    .filter((file) => file.endsWith(".py") || file === "rules.json")
    .sort()
    .map((file) => fromHost(`${LAB_PACKAGE}/${file}`, "0644")),
  fromHere("install-criu.sh", "0755"),
  fromHere("setup-lab.sh", "0755"),
];

/** The arguments of `setup-lab.sh` for these options (also used by `npm run setup:host`). */
export function setupLabArgs(options: UserDataOptions): string[] {
  const { criu } = options;
  const source =
    criu.kind === "git"
      ? [
          "--criu-git",
          criu.repository ?? DEFAULT_CRIU_REPOSITORY,
          "--criu-version",
          criu.version,
          "--criu-commit",
          criu.commit,
        ]
      : ["--criu-tarball", criu.url, "--criu-sha256", criu.sha256];
  return [
    "--user",
    options.labUser ?? "ubuntu",
    "--auto-stop-minutes",
    String(options.autoStopMinutes),
    ...source,
  ];
}

/**
 * LAB_FILES as one ustar archive (POSIX.1-1988 headers, https://www.gnu.org/software/tar/manual/html_node/Standard.html),
 * byte for byte the same for the same files: sorted, owner root, mtime 0, modes from
 * LAB_FILES. Written here rather than by a `tar` binary so that its SHA-256 (which the
 * user-data pins) does not depend on the deployer's tar, and because @pulumi/command's
 * CopyToRemote takes only path-based archives (a FileArchive of a folder would also carry
 * userData.ts and __pycache__), so the program copies this archive as one file.
 */
export function labFilesArchive(): { tar: Buffer; sha256: string } {
  const blocks: Buffer[] = [];
  const dirs = [...new Set(LAB_FILES.map((f) => path.dirname(f.name)).filter((d) => d !== "."))];
  for (const dir of dirs.sort()) blocks.push(tarHeader(`${dir}/`, "0755", 0, "5"));
  for (const { name, mode, source } of LAB_FILES) {
    const content = fs.readFileSync(source);
    blocks.push(tarHeader(name, mode, content.length, "0"), content);
    blocks.push(Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // the end-of-archive marker: two zero blocks
  const tar = Buffer.concat(blocks);
  return { tar, sha256: createHash("sha256").update(tar).digest("hex") };
}

function tarHeader(name: string, mode: string, size: number, type: "0" | "5"): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`lab file name too long for tar: ${name}`);
  const header = Buffer.alloc(512);
  const put = (offset: number, length: number, text: string) =>
    header.write(text, offset, length, "ascii");
  const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, "0") + "\0";
  put(0, 100, name);
  put(100, 8, octal(parseInt(mode, 8), 8));
  put(108, 8, octal(0, 8)); // uid
  put(116, 8, octal(0, 8)); // gid
  put(124, 12, octal(size, 12));
  put(136, 12, octal(0, 12)); // mtime
  put(148, 8, "        "); // the checksum counts its own field as spaces
  put(156, 1, type);
  put(257, 8, "ustar\x0000");
  put(265, 32, "root");
  put(297, 32, "root");
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}

/** Renders the `#cloud-config` user-data. Throws on bad options, naming the field. */
export function renderUserData(options: UserDataOptions): string {
  validate(options);
  const labUser = options.labUser ?? "ubuntu";
  const config = {
    // "default" keeps the image's default user (EC2 puts the key pair's key there); the
    // entry below makes the lab user, or merges into the default one when the names match
    // (cloudinit/distros/ug_util.py `_normalize_users`).
    users: [
      "default",
      {
        name: labUser,
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        shell: "/bin/bash",
        lock_passwd: true,
        ...(options.authorizedKeys?.length
          ? { ssh_authorized_keys: options.authorizedKeys.map((k) => k.trim()) }
          : {}),
      },
    ],
    // The generated host key is the only one, so the key pinned by the deployer (known_hosts
    // line, @pulumi/command hostKey) is the key sshd presents. When `ssh_keys` is given, cc_ssh
    // writes those keys and never reads ssh_genkeytypes (its `if "ssh_keys" in cfg` branch
    // has no key generation), so listing ed25519 generates nothing (the schema wants >= 1 type).
    ssh_deletekeys: true,
    ssh_genkeytypes: ["ed25519"],
    ssh_keys: {
      ed25519_private: ensureTrailingNewline(options.hostKey.privateKeyOpenssh),
      ed25519_public: options.hostKey.publicKeyOpenssh.trim(),
    },
    // No `packages:` (it would pull recommends): install-criu.sh installs what CRIU's docs
    // list itself, with --no-install-recommends, retries and a wait for the dpkg lock.
    ...(options.labFiles === "copied" ? copiedLabFiles(options) : embeddedLabFiles(options)),
  };
  return "#cloud-config\n" + stringify(config, { lineWidth: 0 });
}

/** Each file as written in the repository; setup-lab.sh, run from LAB_DIR, installs the rest. */
function embeddedLabFiles(options: UserDataOptions) {
  return {
    write_files: LAB_FILES.map(({ name, mode, source }) => ({
      path: `${LAB_DIR}/${name}`,
      permissions: mode,
      content: fs.readFileSync(source, "utf8"),
    })),
    runcmd: [["bash", `${LAB_DIR}/setup-lab.sh`, ...setupLabArgs(options)]],
  };
}

/** Only the receiving script; its runcmd waits for the archive, then runs setup-lab.sh. */
function copiedLabFiles(options: UserDataOptions) {
  return {
    write_files: [
      {
        path: `${LAB_DIR}/${RECEIVE_SCRIPT}`,
        permissions: "0755",
        content: fs.readFileSync(path.join(__dirname, RECEIVE_SCRIPT), "utf8"),
      },
    ],
    runcmd: [
      [
        "bash",
        `${LAB_DIR}/${RECEIVE_SCRIPT}`,
        "wait",
        "--sha256",
        labFilesArchive().sha256,
        "--wait-seconds",
        String(options.labFilesWaitSeconds ?? LAB_FILES_WAIT_SECONDS),
        "--",
        ...setupLabArgs(options),
      ],
    ],
  };
}

/**
 * The user-data as EC2 gets it: `text` gzip-compressed (level 9). Throws, naming the size and
 * the limit, when the compressed bytes exceed USER_DATA_LIMIT_BYTES.
 *
 * pako, not node:zlib: Node bundles Chromium's zlib, whose output differs between Node
 * versions and CPU features (SIMD match finding). With `userDataReplaceOnChange`, different
 * bytes for the same document would replace the lab host when someone else deploys it; pako
 * is plain JavaScript, so its bytes depend on the text and the locked pako version only.
 */
export function compressUserData(text: string): Buffer {
  const compressed = Buffer.from(gzip(text, { level: 9 }));
  if (compressed.length > USER_DATA_LIMIT_BYTES) {
    throw new Error(
      `user-data is ${compressed.length} bytes gzip-compressed ` +
        `(${Buffer.byteLength(text, "utf8")} bytes plain), over EC2's limit of ` +
        `${USER_DATA_LIMIT_BYTES} bytes`,
    );
  }
  return compressed;
}

function ensureTrailingNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);

function validate(options: UserDataOptions): void {
  const fail = (key: string, value: unknown, allowed: string): never => {
    throw new Error(`user-data: invalid ${key} ${JSON.stringify(value)}: ${allowed}`);
  };
  const { criu } = options;
  if (criu.kind === "git") {
    // These reach a shell command line and a `git fetch` refspec: keep them to tag syntax.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(criu.version)) {
      fail("criu.version", criu.version, "expected a tag name such as v4.2");
    }
    if (!HEX(40).test(criu.commit)) {
      fail("criu.commit", criu.commit, "expected a full 40-character lowercase hex commit id");
    }
    if (criu.repository !== undefined && !/^(https?:\/\/|\/)\S+$/.test(criu.repository)) {
      fail("criu.repository", criu.repository, "expected an http(s):// URL or an absolute path");
    }
  } else if (criu.kind === "tarball") {
    if (!/^(https?:\/\/|\/)\S+$/.test(criu.url)) {
      fail("criu.url", criu.url, "expected an http(s):// URL or an absolute path on the host");
    }
    if (!HEX(64).test(criu.sha256)) {
      fail("criu.sha256", criu.sha256, "expected 64 lowercase hex characters");
    }
  } else {
    fail("criu.kind", (criu as { kind: unknown }).kind, 'expected "git" or "tarball"');
  }
  const { privateKeyOpenssh, publicKeyOpenssh } = options.hostKey;
  if (
    !/^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\s*$/.test(
      privateKeyOpenssh,
    )
  ) {
    fail("hostKey.privateKeyOpenssh", "<redacted>", "expected an OpenSSH private key (PEM block)");
  }
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$/.test(publicKeyOpenssh.trim())) {
    fail("hostKey.publicKeyOpenssh", publicKeyOpenssh, "expected an 'ssh-ed25519 AAAA...' line");
  }
  for (const [i, key] of (options.authorizedKeys ?? []).entries()) {
    if (
      !/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/=]+( .*)?$/.test(key.trim()) ||
      key.trim().includes("\n")
    ) {
      fail(`authorizedKeys[${i}]`, key, "expected one OpenSSH public key line");
    }
  }
  if (!Number.isInteger(options.autoStopMinutes) || options.autoStopMinutes < 0) {
    fail("autoStopMinutes", options.autoStopMinutes, "expected a whole number >= 0 (0 = never)");
  }
  if (options.labFiles !== undefined && !["embedded", "copied"].includes(options.labFiles)) {
    fail("labFiles", options.labFiles, 'expected "embedded" or "copied"');
  }
  const wait = options.labFilesWaitSeconds;
  if (wait !== undefined && (!Number.isInteger(wait) || wait < 1)) {
    fail("labFilesWaitSeconds", wait, "expected a whole number of seconds >= 1");
  }
  const labUser = options.labUser ?? "ubuntu";
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(labUser) || labUser === "root") {
    fail("labUser", labUser, "expected a Linux user name other than root ([a-z_][a-z0-9_-]*)");
  }
}
