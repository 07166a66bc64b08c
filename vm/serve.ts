/**
 * Serves one local file (the CRIU source tarball) to the guest over HTTP while the VM sets
 * itself up. Why HTTP on the host's loopback rather than a second drive: QEMU's user network
 * maps the guest's 10.0.2.2 to the host's 127.0.0.1, so the server is reachable by this VM
 * and not from the network, and the guest fetches and checks the tarball by the same
 * `criuTarballUrl` + `criuSha256` path that an EC2 host uses; a drive would need a mount
 * step that exists only in the VM's user-data.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";

/** The host's loopback as the guest sees it under QEMU user networking. */
export const GUEST_HOST_ADDRESS = "10.0.2.2";

export interface FileServer {
  /** The URL the guest uses. */
  guestUrl: string;
  /** Requests served (method path status), for the evidence when a fetch fails. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `file` at `/<its name>` on 127.0.0.1 (a free port); anything else is a 404. */
export function serveFile(file: string): Promise<FileServer> {
  const urlPath = `/${encodeURIComponent(path.basename(file))}`;
  const size = fs.statSync(file).size;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const ok = (req.method === "GET" || req.method === "HEAD") && req.url === urlPath;
    requests.push(`${req.method} ${req.url} ${ok ? 200 : 404}`);
    if (!ok) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    if (req.method === "HEAD") res.end();
    else fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address !== "object") {
        reject(new Error("the file server has no port"));
        return;
      }
      resolve({
        guestUrl: `http://${GUEST_HOST_ADDRESS}:${address.port}${urlPath}`,
        requests,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}
