import { defineConfig } from "vitest/config";

// Tiers: `unit` is pure code and Pulumi mocks (fast, no root, no network); `host` uses this
// Linux machine for real (CRIU, sshd, tmux, cloud-init schema; root); `vm` boots the lab in a
// local QEMU VM; `aws` is the opt-in real deploy. Host, vm and aws share machine state
// (installed CRIU, ports, processes), so their files run one at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["tests/unit/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "host",
          include: ["tests/host/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: "vm",
          include: ["tests/vm/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 45 * 60_000,
          hookTimeout: 45 * 60_000,
        },
      },
      {
        test: {
          name: "aws",
          include: ["tests/aws/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 60 * 60_000,
          hookTimeout: 30 * 60_000,
        },
      },
    ],
  },
});
