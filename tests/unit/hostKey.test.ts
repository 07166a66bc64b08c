import { describe, expect, it } from "vitest";
import {
  HostKeyFormatError,
  fingerprint,
  hostKeyAlgorithms,
  parseHostKey,
} from "../../contract/hostKey";

// Made with `ssh-keygen -t ed25519` / `-t rsa -b 1024`; fingerprints as `ssh-keygen -lf` printed them.
const ED25519 =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs+lsyjLhF6WNSYyc1XOWc/ZX0o1P2XsU/Rvvymo70+ fixture";
const ED25519_FP = "SHA256:AL7ebcx21nMezwMlNQBOHEvKfTJWsfj8vR/jeeIZuFE";
const RSA =
  "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC4Z1H2ZplZWfjIcvZdeqSUSNSMoCo3vmmpgHJM2rsPNZPJAXR9DjERvAeQeTSwFAak9CZnRxIRASNPQvOdvK2dSzi40QaU1+XBp5D3LmfL0A00pcQ/zzyp33l3Funs/DaaOyrbOTk8UQT6qTFiSWuFDMCFGOwkdZD2QO1e++px1w== rsa";
const RSA_FP = "SHA256:rQEhbjsEE+aZUxhoY1X2N+Sp4eqPQzlyqVvuWBwoU3c";
const ED25519_BLOB = ED25519.split(" ")[1] as string;

describe("parseHostKey", () => {
  it("reads an OpenSSH public key line, with the fingerprint ssh-keygen prints", () => {
    const key = parseHostKey(ED25519);
    expect(key.type).toBe("ssh-ed25519");
    expect(key.blob.equals(Buffer.from(ED25519_BLOB, "base64"))).toBe(true);
    expect(key.fingerprint).toBe(ED25519_FP);
    expect(parseHostKey(RSA).fingerprint).toBe(RSA_FP);
  });

  it("reads a known_hosts line and ignores its host field (plain, bracketed or hashed)", () => {
    for (const host of ["203.0.113.9", "[lab]:2222,10.0.0.5", "|1|c2FsdA==|aGFzaA=="]) {
      expect(parseHostKey(`${host} ${ED25519}`).fingerprint).toBe(ED25519_FP);
    }
    expect(parseHostKey(`  ${ED25519}\n`).fingerprint).toBe(ED25519_FP);
  });

  it("refuses known_hosts markers, unknown types, non-base64 and cut keys, naming the problem", () => {
    expect(() => parseHostKey(`@cert-authority * ${ED25519}`)).toThrow(
      /marker '@cert-authority' is not supported/,
    );
    expect(() => parseHostKey("ssh-dss AAAAB3NzaC1kc3M=")).toThrow(/key type among ssh-ed25519/);
    expect(() => parseHostKey("")).toThrow(/got an empty value/);
    expect(() => parseHostKey("ssh-ed25519 not*base64")).toThrow(
      /the ssh-ed25519 key is not base64/,
    );
    expect(() => parseHostKey(`ssh-ed25519 ${ED25519_BLOB.slice(0, 12)}`)).toThrow(
      /not a ssh-ed25519 key/,
    );
    // An RSA blob labelled ed25519: pasted wrongly, said so rather than a confusing mismatch.
    expect(() => parseHostKey(`ssh-ed25519 ${RSA.split(" ")[1]}`)).toThrow(
      /not a ssh-ed25519 key \(it holds a ssh-rsa key\)/,
    );
    expect(() => parseHostKey("garbage")).toThrow(HostKeyFormatError);
  });

  it("never echoes a private key pasted into --host-key", () => {
    const pasted =
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n";
    expect(() => parseHostKey(pasted)).toThrow(/got a private key \(give the host's public key\)/);
    try {
      parseHostKey(pasted);
    } catch (err) {
      expect((err as Error).message).not.toContain("b3BlbnNzaC1rZXktdjEA");
    }
  });

  it("shortens long bad input in the message", () => {
    expect(() => parseHostKey(`x-type ${"A".repeat(200)}`)).toThrow(/got 'x-type A{33}\.\.\.'/);
  });
});

describe("hostKeyAlgorithms", () => {
  it("asks the server for the pinned key's type (all RSA signature algorithms for RSA)", () => {
    expect(hostKeyAlgorithms(parseHostKey(ED25519))).toEqual(["ssh-ed25519"]);
    expect(hostKeyAlgorithms(parseHostKey(RSA))).toEqual([
      "rsa-sha2-512",
      "rsa-sha2-256",
      "ssh-rsa",
    ]);
  });
});

describe("fingerprint", () => {
  it("is unpadded base64 of SHA-256, as OpenSSH prints it", () => {
    expect(fingerprint(Buffer.from(ED25519_BLOB, "base64"))).toBe(ED25519_FP);
    expect(fingerprint(Buffer.from(""))).toBe("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
  });
});
