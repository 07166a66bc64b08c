/**
 * Pinned SSH host keys: parsing an OpenSSH public key or known_hosts line, comparing it with the
 * key a server offers during the handshake, and naming keys by the fingerprint `ssh-keygen -lf`
 * prints (SHA256:<unpadded base64>), so a mismatch message matches what users see elsewhere.
 */
import { createHash } from "node:crypto";

/** A host key to pin: its algorithm name and the raw key blob (the base64 field, decoded). */
export interface PinnedHostKey {
  type: string;
  blob: Buffer;
  fingerprint: string;
}

/** Bad `--host-key` / `knownHostsLine` input; the message names the value's problem. */
export class HostKeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostKeyFormatError";
  }
}

/** Key types ssh2 can verify, each with the host key algorithms that present that key. */
const ALGORITHMS_BY_KEY_TYPE: Record<string, readonly string[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  // An RSA key is offered under any of its signature algorithms (RFC 8332).
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/** `SHA256:...` as `ssh-keygen -l` prints it for a raw key blob. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/**
 * Parses `ssh-ed25519 AAAA... [comment]` or a known_hosts line (`host[,host] type key`, with an
 * optional `@cert-authority`/`@revoked` marker refused, the host field ignored: the verifier
 * already knows which host it dials, and cloud-init's line may name the instance's old address).
 */
export function parseHostKey(text: string): PinnedHostKey {
  const fields = text.trim().split(/\s+/);
  if (fields[0]?.startsWith("@")) {
    throw new HostKeyFormatError(
      `host key: the known_hosts marker '${fields[0]}' is not supported; give a plain key line`,
    );
  }
  // Either "type blob [comment]" or "hosts type blob [comment]".
  const at = fields[0] !== undefined && fields[0] in ALGORITHMS_BY_KEY_TYPE ? 0 : 1;
  const type = fields[at];
  const base64 = fields[at + 1];
  if (type === undefined || base64 === undefined || !(type in ALGORITHMS_BY_KEY_TYPE)) {
    throw new HostKeyFormatError(
      `host key: expected an OpenSSH public key ('ssh-ed25519 AAAA...') or a known_hosts line, ` +
        `with a key type among ${Object.keys(ALGORITHMS_BY_KEY_TYPE).join(", ")}; got ${describe(text)}`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    throw new HostKeyFormatError(`host key: the ${type} key is not base64`);
  }
  const blob = Buffer.from(base64, "base64");
  // The blob starts with the key type as an SSH string (RFC 4253 6.6); a mismatch means the
  // line was cut or pasted wrongly, which would otherwise surface as a confusing mismatch.
  const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const blobType =
    typeLength >= 0 && 4 + typeLength <= blob.length
      ? blob.toString("latin1", 4, 4 + typeLength)
      : "";
  if (blobType !== type) {
    throw new HostKeyFormatError(
      `host key: the key data is not a ${type} key${blobType ? ` (it holds a ${blobType} key)` : ""}`,
    );
  }
  return { type, blob, fingerprint: fingerprint(blob) };
}

/** The host key algorithms to offer so that the server presents the pinned key's type. */
export function hostKeyAlgorithms(key: PinnedHostKey): string[] {
  return [...(ALGORITHMS_BY_KEY_TYPE[key.type] ?? [key.type])];
}

/** A short, safe description of bad input (it may be anything a user pasted). */
function describe(text: string): string {
  const oneLine = text.trim().replace(/\s+/g, " ");
  if (oneLine === "") return "an empty value";
  // Never echo a private key pasted into the wrong flag.
  if (oneLine.includes("PRIVATE KEY")) return "a private key (give the host's public key)";
  return `'${oneLine.length > 40 ? `${oneLine.slice(0, 40)}...` : oneLine}'`;
}
