import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * Removes IPC sockets (kgw-<pid>-id.sock), and the Node worker bundles (kgw-worker-<pid>[-id]) of
 * earlier versions, (kgw-<pid>-id.sock) that gateways
 * killed without a clean stop left in `dir`. Only those of processes that no longer exist: a live
 * gateway's are its own business.
 */
export function removeStaleWorkerFiles(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^kgw-worker-(\d+)(?:-[0-9a-f]{8})?$/.exec(name) ?? /^kgw-(\d+)-[0-9a-f]{8}\.sock$/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
