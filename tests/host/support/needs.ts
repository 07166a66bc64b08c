/** What a host suite needs of this machine, for cannotRun (tests/support/requirements.ts). */
import { needCommand, needRoot } from "../../support/requirements";
import { HOST } from "./lab-helpers";

const SETUP = "run `sudo npm run setup:host` first";

/** cannotRun's problems for a suite that needs root and what `setup:host` installs (TOOLS). */
export function needLabHost(...tools: Array<keyof typeof HOST>): Array<string | undefined> {
  return [needRoot(), ...tools.map((t) => needCommand(HOST[t], SETUP))];
}

/** cannotRun's problems for a suite that types into terminals: tmux, and sudo as the guide types it. */
export function needPanes(): Array<string | undefined> {
  return [needCommand("tmux"), needCommand("sudo")];
}
