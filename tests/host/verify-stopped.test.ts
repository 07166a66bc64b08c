/**
 * The verifier on a host that never answers, as one the auto-stop powered off: the real CLI
 * (`criu-lab-verify --stack`, as CI runs it) against real loopback sockets. A port nothing
 * listens on, with the stack's auto-stop on, looks stopped after --stopped-after: exit 3 and
 * the command that starts it. A port that accepts the connection but speaks no SSH is a host
 * that is up: never "stopped". The stack's outputs come from a stand-in `pulumi` first on
 * PATH, which insists on the exact arguments (the pulumi CLI is not on this machine).
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { Server, Socket, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../vm/qemu";
import { cannotRun, needCommand } from "../support/requirements";
import { fakePulumi, keyMaterial, runVerifyCli, writeStack } from "./support/verify-cli";

const HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJs+lsyjLhF6WNSYyc1XOWc/ZX0o1P2XsU/Rvvymo70+ fixture";
const INSTANCE_ID = "i-0123456789abcdef0";

describe.skipIf(cannotRun("criu-lab-verify on a stopped host", [needCommand("sh")]))(
  "criu-lab-verify --stack on a host that never answers",
  () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    // A key ssh2 accepts, so that the attempts reach the network.
    const privateKey = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "pkcs1", format: "pem" },
    }).privateKey;

    const stack = (name: string, outputs: Record<string, unknown>) =>
      writeStack(dir, name, outputs);

    /** A one-host stack's outputs for the lab host on 127.0.0.1, auto-stop on. */
    const outputs = (extra: Record<string, unknown> = {}) => ({
      instanceId: INSTANCE_ID,
      publicIp: "127.0.0.1",
      sshUser: "ubuntu",
      privateKey,
      knownHostsLine: `127.0.0.1 ${HOST_KEY}`,
      seats: [
        {
          seat: "01",
          sshUser: "ubuntu",
          privateKey,
          autoStopMinutes: 120,
          hosts: [
            {
              role: "a",
              name: "criu-lab",
              instanceId: INSTANCE_ID,
              publicIp: "127.0.0.1",
              sshCommand: "ssh -i criu-lab.pem ubuntu@127.0.0.1",
              knownHostsLine: `127.0.0.1 ${HOST_KEY}`,
            },
          ],
        },
      ],
      ...extra,
    });

    const run = (args: string[]) => runVerifyCli(args, 120_000, env);

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "criulab-verify-stopped-"));
      env = fakePulumi(dir);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("a port nothing listens on: exit 3 after --stopped-after, with the command that starts it", async () => {
      stack("stopped", outputs({ region: "ap-southeast-1" }));
      const port = await freePort();
      const r = await run(["--stack", "stopped", "--port", String(port), "--stopped-after", "2"]);
      expect(r.hung).toBe(false);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stdout).toMatch(
        new RegExp(
          `^criu-lab-verify: FAILED \\(exit 3\\): ubuntu@127\\.0\\.0\\.1:${port}: cannot reach ` +
            `ubuntu@127\\.0\\.0\\.1:${port}: no answer on its port for 2 s \\(\\d+ attempts; last ` +
            "error: .*ECONNREFUSED.*\\): the host looks stopped by the auto-stop \\(it powers off " +
            "after 120 idle minutes\\); start it: aws ec2 start-instances --instance-ids " +
            `${INSTANCE_ID} --region ap-southeast-1, then verify again$`,
          "m",
        ),
      );
      for (const line of keyMaterial(privateKey)) expect(r.stdout + r.stderr).not.toContain(line);
    });

    it("a stack without the region output: `pulumi up` starts it", async () => {
      stack("older", outputs());
      const port = await freePort();
      const r = await run(["--stack", "older", "--port", String(port), "--stopped-after", "1"]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stdout).toContain("start it: run `pulumi up`, which starts stopped hosts");
    });

    it("a port that answers but speaks no SSH is up, not stopped: retried until the deadline", async () => {
      stack("up", outputs({ region: "ap-southeast-1" }));
      // Accepts every connection and closes it at once: the host is up, its sshd is not.
      const sockets = new Set<Socket>();
      const server: Server = createServer((socket) => {
        sockets.add(socket);
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      try {
        const r = await run([
          "--stack",
          "up",
          "--port",
          String(port),
          "--stopped-after",
          "1",
          "--timeout",
          "4",
        ]);
        expect(r.code, r.stderr).toBe(3);
        expect(sockets.size).toBeGreaterThan(0);
        expect(r.stdout).toMatch(/before the deadline \(\d+ attempts\)/);
        expect(r.stdout).not.toContain("stopped");
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  },
);
