/**
 * The Debian mirror for the VM's image: read from the host's own apt configuration
 * (`/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.list|*.sources`), so that a local
 * mirror or cache the host already uses serves debootstrap and the guest too, or given with
 * `--mirror URL`. No mirror host is written in this project's code.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { GUEST_HOST_ADDRESS } from "./serve";

/** One apt source: a URI serving some suites (binary `deb` entries only matter here). */
export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** Where it was read, for messages. */
  from: string;
}

/** The Debian mirrors the image uses: the archive, and security updates when configured. */
export interface DebianMirrors {
  archive: string;
  /** The host's mirror of Debian's security archive, if it has one. */
  security?: string;
  /** Whether the archive carries `<suite>-updates` (the host lists it there). */
  updates: boolean;
  /** Where the archive mirror came from, for the log ("--mirror", or the file). */
  from: string;
}

/** Debian's release names and aliases: a suite `<name>[-updates|-security|...]` on a URI
 * makes it a Debian archive (a third-party repository uses its own suite names). */
const DEBIAN_SUITES = new Set([
  "buster",
  "bullseye",
  "bookworm",
  "trixie",
  "forky",
  "duke",
  "sid",
  "oldoldstable",
  "oldstable",
  "stable",
  "testing",
  "unstable",
]);

/** `trixie-updates` -> trixie, updates; `bullseye/updates` (security before Debian 11's
 * successor renamed it) -> bullseye, security. */
function suiteBase(suite: string): { base: string; pocket: string } {
  const m = /^([a-z]+)(?:([-/])(.+))?$/.exec(suite);
  const pocket = m?.[2] === "/" && m[3] === "updates" ? "security" : (m?.[3] ?? "");
  return { base: m?.[1] ?? suite, pocket };
}

/** Parses the one-line format (`deb [options] URI suite component...`), comments skipped. */
export function parseSourcesList(text: string, from: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    // Options in brackets may hold spaces: `deb [arch=amd64 signed-by=/k.gpg] URI ...`.
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    sources.push({
      types: [m[1]],
      uris: [m[2]],
      suites: [m[3]],
      components: (m[4] ?? "").split(/\s+/).filter(Boolean),
      from,
    });
  }
  return sources;
}

/** Parses the deb822 format (`Types:`/`URIs:`/`Suites:`/`Components:` stanzas); a stanza
 * with `Enabled: no` is skipped, as apt skips it. */
export function parseDeb822(text: string, from: string): AptSource[] {
  const sources: AptSource[] = [];
  const stanzas = text
    .split("\n")
    .filter((line) => !line.startsWith("#"))
    .join("\n")
    .split(/\n\s*\n/);
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    let last = "";
    for (const line of stanza.split("\n")) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) {
        last = m[1].toLowerCase();
        fields.set(last, m[2].trim());
      }
    }
    const list = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean);
    if ((fields.get("enabled") ?? "yes").toLowerCase() === "no") continue;
    if (list("types").length === 0 || list("uris").length === 0) continue;
    sources.push({
      types: list("types"),
      uris: list("uris"),
      suites: list("suites"),
      components: list("components"),
      from,
    });
  }
  return sources;
}

/** Every source apt reads on this host (files apt ignores, such as `*.disabled`, skipped). */
export function hostAptSources(etcApt = "/etc/apt"): AptSource[] {
  const sources: AptSource[] = [];
  const list = path.join(etcApt, "sources.list");
  if (fs.existsSync(list)) sources.push(...parseSourcesList(fs.readFileSync(list, "utf8"), list));
  const parts = path.join(etcApt, "sources.list.d");
  const names = fs.existsSync(parts) ? fs.readdirSync(parts).sort() : [];
  for (const name of names) {
    const file = path.join(parts, name);
    if (name.endsWith(".list")) {
      sources.push(...parseSourcesList(fs.readFileSync(file, "utf8"), file));
    } else if (name.endsWith(".sources")) {
      sources.push(...parseDeb822(fs.readFileSync(file, "utf8"), file));
    }
  }
  return sources;
}

const trimSlash = (uri: string) => uri.replace(/\/+$/, "");

/**
 * The Debian archive and security mirrors among `sources`: the first binary source whose
 * suites are Debian's (bookworm, trixie-updates...), its security pocket (`trixie-security`,
 * `bullseye/updates` of old) telling the security mirror apart. Undefined when there is no Debian archive
 * (an Ubuntu host, say): then `--mirror` is needed.
 */
export function debianMirrors(sources: AptSource[]): DebianMirrors | undefined {
  let archive: { uri: string; from: string; pockets: Set<string> } | undefined;
  let security: string | undefined;
  for (const source of sources) {
    if (!source.types.includes("deb")) continue;
    const debian = source.suites.map(suiteBase).filter((s) => DEBIAN_SUITES.has(s.base));
    if (debian.length === 0) continue;
    const uri = source.uris.find((u) => /^https?:\/\//.test(u));
    if (uri === undefined) continue;
    if (debian.every((s) => s.pocket === "security")) {
      security ??= trimSlash(uri);
      continue;
    }
    if (archive === undefined) {
      archive = { uri: trimSlash(uri), from: source.from, pockets: new Set() };
    }
    if (trimSlash(uri) === archive.uri) for (const s of debian) archive.pockets.add(s.pocket);
  }
  if (archive === undefined) return undefined;
  return {
    archive: archive.uri,
    security,
    updates: archive.pockets.has("updates"),
    from: archive.from,
  };
}

/** `--mirror URL`: checked before anything is created. */
export function checkMirrorUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `--mirror: '${url}' is not a URL: use http://HOST/PATH or https://HOST/PATH`;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return `--mirror: '${url}' is not allowed: use an http:// or https:// URL (the VM fetches from it too)`;
  }
  return undefined;
}

/**
 * The mirrors for the image: `--mirror` when given (with the host's security mirror, if any),
 * else the host's own. Throws a message saying what to do when neither names one.
 */
export function chooseMirrors(
  flag: string | undefined,
  sources: AptSource[] = hostAptSources(),
): DebianMirrors {
  const host = debianMirrors(sources);
  if (flag !== undefined) {
    return { archive: trimSlash(flag), security: host?.security, updates: true, from: "--mirror" };
  }
  if (host === undefined) {
    throw new Error(
      "--image debian needs a Debian mirror and the host's apt configuration " +
        "(/etc/apt/sources.list, /etc/apt/sources.list.d/) names none: pass --mirror URL " +
        "(a Debian archive mirror or cache, e.g. the one your network uses)",
    );
  }
  return host;
}

/**
 * A mirror URL as the guest reaches it: under QEMU's user network the host's loopback is
 * 10.0.2.2, so a cache on the host's 127.0.0.1 (apt-cacher-ng, say) serves the guest too.
 */
export function guestUrl(url: string): string {
  const parsed = new URL(url);
  if (["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname)) {
    parsed.hostname = GUEST_HOST_ADDRESS;
  }
  return trimSlash(parsed.toString());
}

/** The guest's /etc/apt/sources.list for `suite`, from the chosen mirrors. */
export function guestSourcesList(suite: string, mirrors: DebianMirrors): string {
  const archive = guestUrl(mirrors.archive);
  const lines = [`deb ${archive} ${suite} main`];
  if (mirrors.updates) lines.push(`deb ${archive} ${suite}-updates main`);
  if (mirrors.security !== undefined) {
    lines.push(`deb ${guestUrl(mirrors.security)} ${suite}-security main`);
  }
  return `${lines.join("\n")}\n`;
}
