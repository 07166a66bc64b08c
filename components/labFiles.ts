import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LAB_DIR, labFilesArchive, RECEIVE_SCRIPT } from "../cloud-init/userData";
import { PinnedConnectionArgs, pinnedConnection } from "./verification";

export interface LabFilesArgs extends PinnedConnectionArgs {
  /** The instance: a new one gets the files again. */
  instanceId: pulumi.Input<string>;
  /** What the copy waits for (the instance, its address). */
  dependsOn?: pulumi.Resource[];
}

/**
 * Where the SSH user's upload lands: relative, so in that user's home directory (sshd starts
 * the SFTP server there), which only that user and root can write, and where the hand-over
 * (`deliver`) looks for it.
 */
export const STAGED_ARCHIVE = ".criu-lab-files.tar";

/**
 * The lab's files on an EC2 host, whose user-data has no room for them: the archive
 * of cloud-init/userData.ts LAB_FILES, copied over SFTP with the host key pinned, then handed
 * to root by `receive-lab-files.sh deliver`, which checks it against the SHA-256 the user-data
 * carries and renames it into place at once, for the runcmd waiting on it (or, when that gave
 * up, starts the set-up itself). Runs with or without `verify`; the verification waits for
 * `ready`. Both re-run for new files (which also change the user-data, so a new instance) and
 * for a new instance.
 */
export class LabFiles extends pulumi.ComponentResource {
  public readonly copy: command.remote.CopyToRemote;
  /** Succeeds once root holds the checked archive (and started the set-up if it must). */
  public readonly ready: command.remote.Command;
  /** SHA-256 of the archive, as pinned in the user-data. */
  public readonly sha256: string;

  constructor(name: string, args: LabFilesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:files:LabFiles", name, {}, opts);
    const connection = pinnedConnection(args);
    const archive = labFilesArchive();
    this.sha256 = archive.sha256;
    const triggers = [archive.sha256, args.instanceId];

    this.copy = new command.remote.CopyToRemote(
      `${name}-copy`,
      {
        connection,
        // A file: the archive is binary, and CopyToRemote 1.2.1 takes a FileAsset, a text
        // StringAsset or a FileArchive (its Check refuses an AssetArchive).
        source: new pulumi.asset.FileAsset(writeArchive(archive)),
        remotePath: STAGED_ARCHIVE,
        triggers,
      },
      { parent: this, dependsOn: args.dependsOn },
    );

    this.ready = new command.remote.Command(
      `${name}-ready`,
      {
        connection,
        create:
          `sudo bash ${LAB_DIR}/${RECEIVE_SCRIPT} deliver ` +
          `--sha256 ${archive.sha256} "$HOME/${STAGED_ARCHIVE}"`,
        triggers,
        logging: "stdoutAndStderr",
        // sshd refuses unknown environment variables; sending them only adds warnings.
        addPreviousOutputInEnv: false,
      },
      // Short work on the host (a copy, a hash, a rename, maybe starting a unit): the limits
      // cover dialling a host that is still booting, as the verification's do.
      { parent: this, dependsOn: [this.copy], customTimeouts: { create: "15m", update: "15m" } },
    );

    this.registerOutputs({ sha256: this.sha256 });
  }
}

/**
 * The archive as a file for the FileAsset, named by its hash in the temporary folder and
 * written whole (a rename) unless it is there already: the engine hashes the file's content,
 * so the path may differ between deployers without a diff.
 */
function writeArchive(archive: { tar: Buffer; sha256: string }): string {
  const file = path.join(os.tmpdir(), `criu-lab-files-${archive.sha256.slice(0, 16)}.tar`);
  const current = fs.existsSync(file) ? fs.readFileSync(file) : undefined;
  if (current === undefined || !current.equals(archive.tar)) {
    const partial = `${file}.${process.pid}.new`;
    fs.writeFileSync(partial, archive.tar, { mode: 0o644 });
    fs.renameSync(partial, file);
  }
  return file;
}
