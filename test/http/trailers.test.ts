import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { type GatewayProcess, startGateway } from "../support/gateway";

/**
 * A chunked body with a trailer section (legal HTTP/1.1): Bun reads the body to its end, hands it to
 * the handler, then takes the trailer for a request of its own, answers that `400 Bad Request` and
 * closes the connection. The client reads the 400 as its publish's answer ("not written, do not
 * retry") while the handler went on and wrote its event (outside tester: every time, single and
 * batch). Nothing whose requester can no longer be answered is published now.
 */
let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ KAFKA_BROKERS: "" });
});
afterAll(async () => {
  await gw.stop();
});

/** Sends `raw` on a fresh connection; resolves with everything that came back until it closed (or 3 s). */
function exchange(raw: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = "";
    const sock = net.connect({ port: gw.port, host: "127.0.0.1" }, () => sock.write(raw));
    const done = () => resolve(answer);
    sock.on("data", (d) => void (answer += d.toString("latin1")));
    sock.on("error", done);
    sock.on("close", done);
    setTimeout(() => (sock.destroy(), done()), 3000);
  });
}

const chunked = (path: string, body: string, trailer: string) =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n${trailer}\r\n`;

/** How many events `topic` holds (embedded log; every event of these tests has key "k", so one partition): a marker's offset. */
async function written(topic: string): Promise<number> {
  const res = await fetch(`${gw.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "marker", key: "k" }) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { offset: number }).offset;
}

for (const [kind, path, events] of [
  ["an event", "/api/v1/events", 1],
  ["a batch", "/api/v1/events/batch", 2],
] as const) {
  test(`${kind} sent chunked with a trailer section is either answered 202 and written, or not written`, async () => {
    const body = JSON.stringify(events === 1 ? { type: "trailed", key: "k" } : { events: [{ type: "trailed", key: "k" }, { type: "trailed", key: "k" }] });
    for (const [i, trailer] of ["X-Trailer: 1\r\n", "X-One: 1\r\nX-Two: 2\r\n", "not a header\r\n"].entries()) {
      const topic = `trailer-${events}-${i}-${Date.now()}`;
      const answer = await exchange(chunked(`${path}?topic=${topic}`, body, trailer));
      await Bun.sleep(200);
      const n = await written(topic);
      console.log(`${kind}, trailer ${JSON.stringify(trailer)}: ${JSON.stringify(answer.split("\r\n")[0])}; ${n} written`);
      expect(n).toBe(answer.startsWith("HTTP/1.1 202") ? events : 0);
    }
  });
}
