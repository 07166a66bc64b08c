/**
 * What a student gets: one folder per seat with the seat's key, a known_hosts with its hosts'
 * keys (no trust on first use), an ssh_config snippet, a one-page README.md card, and the Lab
 * guide the card points to. Pure functions of the parsed `seats` output (contract/seats.ts) and
 * criu-lab's README, so the files are tested as text. Every command on the card works as
 * printed from inside the seat's folder, and every file it names is in that folder.
 */
import { parseHostKey } from "../contract/hostKey";
import type { SeatHostOutput, SeatOutput } from "../contract/seats";
import pkg from "../package.json";

export interface HandoutFile {
  /** Relative to the seat's folder. */
  name: string;
  content: string;
  /** The key is 0600 (ssh refuses a key others can read); the rest 0644. */
  mode: number;
}

/** The seat's folder name: `seat-01`. */
export function seatFolder(seat: SeatOutput): string {
  return `seat-${seat.seat}`;
}

/** The key's file name, as the stack's `sshCommand` spells it: `seat-01.pem`. */
export function keyFile(seat: SeatOutput): string {
  return `seat-${seat.seat}.pem`;
}

/** The Lab guide in the seat's folder, which the card points to. */
export const GUIDE_FILE = "LAB-GUIDE.md";

/**
 * The project's repository when package.json names none: the one place this address is
 * written (the card links the guide there).
 */
export const DEFAULT_REPOSITORY = "https://github.com/criu-lab/criu-lab";

/**
 * The lab guide's web address: docs/lab-guide.md on the main branch of package.json's
 * `repository` (a GitHub URL, `git+https://...git`, or `github:owner/name`), else of
 * DEFAULT_REPOSITORY.
 */
export function guideWebUrl(repository: unknown): string {
  const text =
    typeof repository === "string"
      ? repository
      : ((repository as { url?: unknown } | undefined)?.url ?? "");
  const m =
    typeof text === "string"
      ? /^(?:git\+)?(?:https:\/\/github\.com\/|github:|git@github\.com:)([\w.-]+)\/([\w.-]+?)(?:\.git)?\/?$/.exec(
          text,
        )
      : null;
  const base = m ? `https://github.com/${m[1]}/${m[2]}` : DEFAULT_REPOSITORY;
  return `${base}/blob/main/docs/lab-guide.md`;
}

/** Where the card sends a student to read the guide online. */
export const GUIDE_WEB_URL = guideWebUrl((pkg as { repository?: unknown }).repository);

/** GitHub's anchor for a heading: what a `[text](#anchor)` link must match. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, "")
    .replace(/ /g, "-");
}

/**
 * The lab guide (docs/lab-guide.md) as the seat folder's file: a student has the seat's folder,
 * not the project. A link to another document keeps its text only, so that no link in the file
 * points nowhere.
 */
export function labGuide(guide: string): string {
  if (!guide.startsWith("# Lab guide\n"))
    throw new Error("docs/lab-guide.md does not start with '# Lab guide'");
  const body = guide.replace(/^# Lab guide\n/, "");
  const anchors = new Set(
    [...body.matchAll(/^#{2,6} (.+)$/gm)].map((m) => anchor((m[1] as string).replace(/`/g, ""))),
  );
  const linked = body.replace(/\[([^\]]+)\]\(([^)]+)\)/g, (link, text: string, target: string) =>
    /^https?:/.test(target) || (target.startsWith("#") && anchors.has(target.slice(1)))
      ? link
      : text,
  );
  return `# CRIU lab guide\n\nFrom criu-lab's docs/lab-guide.md: why checkpoint/restore, how CRIU works, the lab's exercises.\n${linked}`;
}

/** The host's alias in `config` and `known_hosts`: `seat-01-a`. */
export function hostAlias(seat: SeatOutput, host: SeatHostOutput): string {
  return `seat-${seat.seat}-${host.role}`;
}

/**
 * `seat-01-a,203.0.113.10 ssh-ed25519 AAAA...`: the alias (the config pins the key under it
 * with HostKeyAlias, whatever the address or port) and the address (plain `ssh -o
 * UserKnownHostsFile=known_hosts user@address`). The stack's own host field is not trusted:
 * it may name an old address.
 */
export function knownHostsLine(seat: SeatOutput, host: SeatHostOutput): string {
  const key = parseHostKey(host.knownHostsLine);
  return `${hostAlias(seat, host)},${host.publicIp} ${key.type} ${key.blob.toString("base64")}`;
}

export function sshConfig(seat: SeatOutput, stack: string): string {
  const blocks = seat.hosts.map((h) =>
    [
      `Host ${hostAlias(seat, h)}`,
      `  HostName ${h.publicIp}`,
      `  User ${seat.sshUser}`,
      // Relative paths are read from the current directory: run ssh in this folder.
      `  IdentityFile ${keyFile(seat)}`,
      "  IdentitiesOnly yes",
      "  UserKnownHostsFile known_hosts",
      `  HostKeyAlias ${hostAlias(seat, h)}`,
      "  StrictHostKeyChecking yes",
      "",
    ].join("\n"),
  );
  return [
    `# criu-lab, stack ${stack}, seat ${seat.seat}: from this folder, \`ssh -F config ${hostAlias(seat, seat.hosts[0] as SeatHostOutput)}\``,
    "",
    ...blocks,
  ].join("\n");
}

function autoStopText(minutes: number | undefined): string {
  if (minutes === 0) return "This seat does not stop by itself: log out when you are done.";
  const after =
    minutes === undefined
      ? "after the stack's `autoStopMinutes` (120 by default) minutes"
      : `after ${minutes} minutes`;
  return (
    `Each host powers itself off ${after} with no SSH session: stopped, not deleted, so your ` +
    "files stay. If you cannot connect after a break, ask your instructor to start it again."
  );
}

/** The one-page card, README.md in the seat's folder. */
export function card(seat: SeatOutput, stack: string): string {
  const [a, b] = seat.hosts as [SeatHostOutput, SeatHostOutput | undefined];
  const user = seat.sshUser;
  const hostRows = seat.hosts.map(
    (h) =>
      `| ${h.role} | \`${h.publicIp}\` | \`${h.name}\` | \`ssh -F config ${hostAlias(seat, h)}\` |`,
  );
  const lines = [
    // Which class and seat this is, at a glance: a student may hold folders of two classes.
    `# CRIU lab \`${stack}\`: seat ${seat.seat}`,
    "",
    `Your own lab ${seat.hosts.length === 2 ? "hosts" : "host"} (stack \`${stack}\`): Ubuntu with CRIU built from source, ` +
      "a counter program to checkpoint and restore, and the `criu-lab` command.",
    "",
    "| Host | Address | Name | Connect |",
    "| --- | --- | --- | --- |",
    ...hostRows,
    "",
    "## Connect",
    "",
    "Open a terminal **in this folder** and run:",
    "",
    "```sh",
    `ssh -F config ${hostAlias(seat, a)}`,
    "```",
    "",
    `\`config\` names the address, the user (\`${user}\`), your key (\`${keyFile(seat)}\`) and ` +
      "the host's own key (`known_hosts`): ssh checks it is really your host and asks nothing. " +
      "Without `config`:",
    "",
    "```sh",
    `ssh -i ${keyFile(seat)} -o UserKnownHostsFile=known_hosts ${user}@${a.publicIp}`,
    "```",
    "",
    `\`${keyFile(seat)}\` opens this seat only: keep it to yourself. If ssh says its permissions ` +
      `are too open, run \`chmod 600 ${keyFile(seat)}\`.`,
    "",
    "## The lab",
    "",
    "The login message repeats these steps; the full Lab guide (why checkpoint/restore, how " +
      `CRIU works, a tour of the image files, the other exercises) is [${GUIDE_FILE}](${GUIDE_FILE}) ` +
      `in this folder, and [online](${GUIDE_WEB_URL}). On the host, \`criu-lab guide\` prints it ` +
      "(`criu-lab guide training`: the section whose heading has that word), and " +
      "`sudo criu-lab progress` shows which exercises you have done.",
    "",
    "1. Two panes side by side: `tmux`, then `Ctrl-b %` (`Ctrl-b o` moves between them).",
    "2. Left pane: `./counter.py & echo $! > counter.pid` starts the counter and keeps its PID; " +
      "it prints `Counter: N` every 2 s.",
    "3. Right pane: `PID=$(cat counter.pid)`, `mkdir checkpoint_dir`, then " +
      '`sudo criu dump -t "$PID" -D checkpoint_dir -v4 --shell-job`. ' +
      "The counter stops: its whole state is in `checkpoint_dir`.",
    "4. `sudo criu restore -D checkpoint_dir -v4 --shell-job`: it counts on from the next " +
      "number, with the same PID. `Ctrl-C` ends it.",
    "5. `sudo criu-lab analyze checkpoint_dir` explains what was saved, file by file.",
    "",
    "`sudo criu-lab demo` runs the whole experiment in one go; `sudo criu-lab check` says " +
      "whether CRIU works on this kernel.",
    "",
  ];
  if (b) {
    const peer = `${user}@${b.name}`;
    lines.push(
      "## Migration: from host a to host b",
      "",
      `Your seat has a second host, **b** (\`${b.name}\`). On **a**, \`${b.name}\` is its ` +
        "private name, and a already trusts b's key and may log in to it: nothing to set up.",
      "",
      "On host a, start a detached counter, keeping its PID, and move it to b (the lab guide " +
        "does it by hand first):",
      "",
      "```sh",
      "setsid -f sh -c 'echo $$ >counter.pid; exec ./counter.py </dev/null >counter.log 2>&1'",
      "PID=$(cat counter.pid)",
      `sudo criu-lab migrate --to ${peer} --pid "$PID"`,
      "```",
      "",
      `Or the whole story unattended: \`sudo criu-lab scenario run migration --to ${peer}\`. ` +
        `Then see it counting on b: \`ssh -F config ${hostAlias(seat, b)}\` from this folder.`,
      "",
    );
  }
  lines.push("## Auto-stop", "", autoStopText(seat.autoStopMinutes), "");
  return lines.join("\n");
}

/**
 * The instructor's sheet (DIR/INSTRUCTOR.md, no key in it): every seat's hosts with their
 * instance ids, and the command that starts a seat again after its auto-stop (in the stack's
 * region, from the `region` output; without it the AWS CLI's default region).
 */
export function instructorSheet(seats: SeatOutput[], stack: string, region?: string): string {
  const where = region ? ` --region ${region}` : "";
  const rows = seats.flatMap((s) =>
    s.hosts.map(
      (h) =>
        `| ${s.seat} | ${h.role} | \`${h.name}\` | \`${h.publicIp}\` | \`${h.instanceId || "?"}\` |`,
    ),
  );
  const starts = seats.map((s) => {
    const ids = s.hosts.map((h) => h.instanceId).filter(Boolean);
    return ids.length
      ? `aws ec2 start-instances${where} --instance-ids ${ids.join(" ")}   # seat ${s.seat}`
      : `# seat ${s.seat}: no instance id in the stack outputs`;
  });
  return [
    `# criu-lab handout: stack \`${stack}\``,
    "",
    `Give each student their own \`seat-NN/\` folder only: it holds that seat's private key. ` +
      "This sheet holds no key.",
    "",
    "| Seat | Host | Name | Address | Instance |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
    "A seat that stopped itself (auto-stop) keeps its files; start it again with (or run " +
      "`pulumi up`, which starts every stopped host):",
    "",
    "```sh",
    ...starts,
    "```",
    "",
    "When the class is over: `pulumi destroy`, and delete this folder (the seats' keys).",
    "",
  ].join("\n");
}

/** The files of one seat's folder; GUIDE is labGuide() of docs/lab-guide.md. */
export function seatFiles(seat: SeatOutput, stack: string, guide: string): HandoutFile[] {
  const privateKey = seat.privateKey.endsWith("\n") ? seat.privateKey : `${seat.privateKey}\n`;
  return [
    { name: keyFile(seat), content: privateKey, mode: 0o600 },
    {
      name: "known_hosts",
      content: seat.hosts.map((h) => `${knownHostsLine(seat, h)}\n`).join(""),
      mode: 0o644,
    },
    { name: "config", content: sshConfig(seat, stack), mode: 0o644 },
    { name: "README.md", content: card(seat, stack), mode: 0o644 },
    { name: GUIDE_FILE, content: guide, mode: 0o644 },
  ];
}
