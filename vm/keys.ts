/**
 * The VM's SSH keys, generated per VM with ssh-keygen (OpenSSH's own format, which
 * cloud-init's `ssh_keys` and the verifier take as they are): a host key, pinned by the
 * verifier and the printed known_hosts line, and the lab user's key. Both stay in the VM's
 * state directory, owner-only (ssh refuses a private key others can read).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";

export interface KeyPair {
  /** Path of the private key; the public key is at `${path}.pub`. */
  path: string;
  privateKeyOpenssh: string;
  publicKeyOpenssh: string;
}

/** Generates an ED25519 key at `file` (replacing any), mode 600. */
export function generateKey(file: string, comment: string): KeyPair {
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}.pub`, { force: true });
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  fs.chmodSync(file, 0o600);
  return readKey(file);
}

export function readKey(file: string): KeyPair {
  return {
    path: file,
    privateKeyOpenssh: fs.readFileSync(file, "utf8"),
    publicKeyOpenssh: fs.readFileSync(`${file}.pub`, "utf8").trim(),
  };
}
