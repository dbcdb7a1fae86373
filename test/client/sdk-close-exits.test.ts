import { expect, test } from "bun:test";
import { SECRET } from "../auth/support";
import { behindProxy } from "./behind-proxy.support";

/**
 * The SDK's close() as an application's process sees it: what waits (a reconnect's getToken or
 * backoff, the subscribe rate) ends at once, and the process exits. Split from
 * sdk-lifecycle-edges.test.ts: these two time the exit, so they run alone (scripts/test-plan.ts),
 * and the rest of that file need not.
 */
/**
 * A client in a process of its own, as an application runs it: connected through `proxy`, whose
 * connection is then cut; once the reconnect `waits` (for its getToken, which never answers, or for
 * its backoff), a subscribe() is made and the client closed. Resolves with what the process printed
 * and how long it took to exit after the close, or null if it had not exited 5 s after.
 */
async function closedWhileReconnecting(proxy: { url: string; dropAll(): void }, waits: "getToken" | "backoff"): Promise<{ out: string; exitMs: number } | null> {
  const root = new URL("../..", import.meta.url).pathname;
  const script = `
    import { connect } from "${root}src/client";
    import { hsToken } from "${root}test/auth/support";
    let calls = 0;
    const getToken = () => (++calls === 1 || ${waits === "backoff"} ? hsToken({ sub: "closer", kgw: { publish: ["*"], subscribe: ["*"] } }) : new Promise(() => {}));
    const states = [];
    const reconnect = ${waits === "backoff"} ? { minMs: 30_000, maxMs: 30_000 } : { minMs: 10, maxMs: 20 };
    const c = await connect({ url: ${JSON.stringify(proxy.url)}, getToken, connectTimeoutMs: 30_000, reconnect, onState: (s) => states.push(s) });
    console.log("open");
    while (!states.includes("reconnecting") || (${waits === "getToken"} && calls < 2)) await Bun.sleep(5);
    const pending = c.subscribe("closing").then(() => "resolved", (e) => e.code);
    await Bun.sleep(50);
    c.close();
    console.log("closed at", Date.now());
    console.log("subscribe:", await pending, "states:", states.join(","));
  `;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  while (!out.includes("open\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the child ended before it connected: ${out}`);
    out += new TextDecoder().decode(value);
  }
  proxy.dropAll();
  const exited = await Promise.race([child.exited.then(() => true), Bun.sleep(8_000).then(() => false)]);
  for (;;) {
    const { value, done } = await Promise.race([reader.read(), Bun.sleep(100).then(() => ({ value: undefined, done: true }))]);
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  if (!exited) {
    child.kill("SIGKILL");
    return null;
  }
  const closedAt = Number(/closed at (\d+)/.exec(out)?.[1]);
  return { out, exitMs: Date.now() - closedAt };
}

test("client.close() while a reconnect's getToken is still pending (or its backoff is): a subscribe() waiting rejects CLIENT_CLOSED at once, no timer is left running, and the process exits", async () => {
  await behindProxy({ AUTH_JWT_SECRET: SECRET }, async (_gw, proxy) => {
    for (const waits of ["getToken", "backoff"] as const) {
      const run = await closedWhileReconnecting(proxy, waits);
      console.log(waits, JSON.stringify(run));
      expect(run).not.toBeNull();
      expect(run!.out).toContain("subscribe: CLIENT_CLOSED states: open,reconnecting,closed");
      expect(run!.exitMs).toBeLessThan(2_000);
    }
  });
}, 60_000);

test("client.close() while subscribe() calls wait for the subscribe rate: each rejects CLIENT_CLOSED at once, and the process exits without waiting their turns out", async () => {
  // A bucket of 2 subscribes at 1 a second: past it, the third waits a second, the fourth two...
  await behindProxy({ SUBSCRIBE_RATE_LIMIT: "1", MAX_SUBSCRIPTIONS_PER_CONNECTION: "2" }, async (gw) => {
    const root = new URL("../..", import.meta.url).pathname;
    const script = `
      import { connect } from "${root}src/client";
      const c = await connect({ url: ${JSON.stringify(gw.wsUrl)}, heartbeat: false });
      for (const s of [await c.subscribe("rate-a"), await c.subscribe("rate-b")]) await s.close();
      const pending = ["c", "d", "e"].map((t) => c.subscribe("rate-" + t).then(() => "resolved", (e) => e.code));
      await Bun.sleep(50);
      const closedAt = Date.now();
      c.close();
      const codes = await Promise.all(pending);
      console.log("rejected in", Date.now() - closedAt, "ms:", codes.join(","));
      console.log("closed at", closedAt);
    `;
    const started = Date.now();
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    const exited = await Promise.race([child.exited.then(() => Date.now()), Bun.sleep(10_000).then(() => null)]);
    if (exited === null) child.kill("SIGKILL");
    const out = await new Response(child.stdout as ReadableStream).text();
    const closedAt = Number(/closed at (\d+)/.exec(out)?.[1] ?? started);
    console.log(out.trim(), `exit ${exited === null ? "none" : exited - closedAt} ms after close`);
    // Before: rejected when each wait was over (about 1-3 s), and the process lived as long.
    expect(out).toContain("CLIENT_CLOSED,CLIENT_CLOSED,CLIENT_CLOSED");
    expect(Number(/rejected in (\d+) ms/.exec(out)?.[1])).toBeLessThan(300);
    expect(exited !== null && exited - closedAt < 1_000).toBe(true);
  });
}, 30_000);
