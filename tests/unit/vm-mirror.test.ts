/**
 * The Debian mirror read from the host's apt configuration: both file formats, the
 * files apt reads and those it ignores, Debian's archive told apart from third-party
 * repositories and from the security archive, and the URL as the guest reaches it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  chooseMirrors,
  debianMirrors,
  guestSourcesList,
  guestUrl,
  hostAptSources,
  parseDeb822,
  parseSourcesList,
} from "../../vm/mirror";

// The shape of a Debian 12 host's /etc/apt/sources.list.d/debian.sources (as on this machine),
// with a local cache in place of Debian's own mirror.
const DEBIAN_SOURCES = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://127.0.0.1:3142/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

const THIRD_PARTY = `Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main
`;

describe("apt sources", () => {
  it("parses deb822 stanzas, continuation lines and Enabled: no", () => {
    const sources = parseDeb822(
      `${DEBIAN_SOURCES}\nTypes: deb deb-src\nURIs: http://a.example/debian\n  http://b.example/debian\nSuites: trixie\nEnabled: no\n`,
      "x.sources",
    );
    expect(sources).toHaveLength(2);
    expect(sources[0]).toEqual({
      types: ["deb"],
      uris: ["http://127.0.0.1:3142/debian"],
      suites: ["bookworm", "bookworm-updates"],
      components: ["main"],
      from: "x.sources",
    });
  });

  it("parses one-line entries with options and comments", () => {
    const sources = parseSourcesList(
      [
        "# a comment",
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example/debian trixie main contrib # note",
        "deb-src http://m.example/debian trixie main",
        "not an entry",
        "",
      ].join("\n"),
      "sources.list",
    );
    expect(sources.map((s) => [s.types[0], s.uris[0], s.suites[0], s.components])).toEqual([
      ["deb", "http://m.example/debian", "trixie", ["main", "contrib"]],
      ["deb-src", "http://m.example/debian", "trixie", ["main"]],
    ]);
  });

  it("reads sources.list and the *.list/*.sources parts apt reads, not disabled files", () => {
    const etc = fs.mkdtempSync(path.join(os.tmpdir(), "vm-mirror-"));
    afterAll(() => fs.rmSync(etc, { recursive: true, force: true }));
    fs.mkdirSync(path.join(etc, "sources.list.d"));
    fs.writeFileSync(path.join(etc, "sources.list"), "deb http://one.example/debian trixie main\n");
    fs.writeFileSync(path.join(etc, "sources.list.d/debian.sources"), DEBIAN_SOURCES);
    fs.writeFileSync(path.join(etc, "sources.list.d/extra.list"), "deb http://two.example/x y z\n");
    fs.writeFileSync(
      path.join(etc, "sources.list.d/off.sources.disabled"),
      "Types: deb\nURIs: http://off.example/debian\nSuites: trixie\n",
    );
    const uris = hostAptSources(etc).map((s) => s.uris[0]);
    expect(uris).toEqual([
      "http://one.example/debian",
      "http://127.0.0.1:3142/debian",
      "http://security.mirror.example/debian-security",
      "http://two.example/x",
    ]);
    expect(hostAptSources(path.join(etc, "nowhere"))).toEqual([]);
  });
});

describe("Debian mirrors", () => {
  const deb822 = (text: string) => parseDeb822(text, "debian.sources");

  it("takes Debian's archive and security mirror, skipping third-party repositories", () => {
    expect(debianMirrors([...deb822(THIRD_PARTY), ...deb822(DEBIAN_SOURCES)])).toEqual({
      archive: "http://127.0.0.1:3142/debian",
      security: "http://security.mirror.example/debian-security",
      updates: true,
      from: "debian.sources",
    });
  });

  it("knows the old security suite name and a host without -updates or security", () => {
    const old = parseSourcesList(
      "deb http://m.example/debian/ bullseye main\ndeb http://s.example/ bullseye/updates main\n",
      "sources.list",
    );
    expect(debianMirrors(old)).toEqual({
      archive: "http://m.example/debian",
      security: "http://s.example",
      updates: false,
      from: "sources.list",
    });
  });

  it("finds none on a host without Debian's archive, and then asks for --mirror", () => {
    const ubuntu = parseSourcesList("deb http://archive.ubuntu.example/ubuntu noble main\n", "s");
    expect(debianMirrors(ubuntu)).toBeUndefined();
    expect(() => chooseMirrors(undefined, ubuntu)).toThrow(/names none: pass --mirror URL/);
    expect(chooseMirrors("http://cache.example:3142/debian/", ubuntu)).toEqual({
      archive: "http://cache.example:3142/debian",
      security: undefined,
      updates: true,
      from: "--mirror",
    });
  });

  it("--mirror wins over the host's archive, which keeps its security mirror", () => {
    const m = chooseMirrors("http://m.example/debian", deb822(DEBIAN_SOURCES));
    expect(m.archive).toBe("http://m.example/debian");
    expect(m.security).toBe("http://security.mirror.example/debian-security");
  });

  it("points the guest at the host's loopback through QEMU's 10.0.2.2", () => {
    expect(guestUrl("http://127.0.0.1:3142/debian")).toBe("http://10.0.2.2:3142/debian");
    expect(guestUrl("http://localhost/debian/")).toBe("http://10.0.2.2/debian");
    expect(guestUrl("https://m.example/debian")).toBe("https://m.example/debian");
    const m = chooseMirrors(undefined, deb822(DEBIAN_SOURCES));
    expect(guestSourcesList("trixie", m)).toBe(
      [
        "deb http://10.0.2.2:3142/debian trixie main",
        "deb http://10.0.2.2:3142/debian trixie-updates main",
        "deb http://security.mirror.example/debian-security trixie-security main",
        "",
      ].join("\n"),
    );
  });
});
