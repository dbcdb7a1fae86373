import { resolve } from "node:path";

/**
 * Starts ./slow-subscriber.cjs (a raw WebSocket whose TCP socket stops reading after `subscribed`, for
 * `pauseMs`); resolves once it is subscribed, with its JSON lines as they come (subscribed, lagged, …).
 */
export async function startSlowSubscriber(port: number, topic: string, pauseMs: number, policy: string, start?: string, share?: string) {
  const env = { ...process.env, ...(share ? { SHARE: share } : {}) };
  const proc = Bun.spawn(["node", resolve(import.meta.dir, "slow-subscriber.cjs"), String(port), topic, String(pauseMs), policy, ...(start ? [start] : [])], { stdout: "pipe", env });
  const lines: Array<Record<string, any>> = [];
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
      buf += Buffer.from(chunk).toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
  })();
  const deadline = Date.now() + 30_000;
  while (!lines.some((l) => l.subscribed)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`the slow subscriber did not subscribe: ${JSON.stringify(lines)}`);
    await Bun.sleep(20);
  }
  return { proc, lines };
}
