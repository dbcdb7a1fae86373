import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "playwright-core";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import { launchChromium } from "./chromium";

/**
 * SSE in a real browser: an EventSource on /api/v1/stream, its gateway stopped under it (SIGTERM) and
 * another started on the same port, so the browser reconnects by itself with Last-Event-ID. Every
 * event published before, between and after arrives exactly once.
 */
let browser: Browser;
const RESUME_TOKEN_KEYS = "browser-test-resume-key-of-at-least-32-bytes";
beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

async function publish(url: string, topic: string, from: number, to: number): Promise<void> {
  const c = await connect({ url });
  for (let i = from; i < to; i++) await c.publish({ type: "sse.n", key: `k${i % 3}`, data: { i } }, { topic });
  c.close();
}

test("EventSource resumes with Last-Event-ID after its gateway is replaced: no gap, no duplicate", async () => {
  const brokers = await kafkaBrokers();
  const topic = `sse-browser-${Date.now()}`;
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS };
  const first: GatewayProcess = await startGateway(env);
  const port = first.port;
  await publish(first.wsUrl, topic, 0, 1); // creates the topic
  const page = await browser.newPage();
  await page.goto(`${first.url}/health`);
  await page.evaluate((src) => {
    // Runs in the page: the DOM's EventSource, not Bun's.
    const w = globalThis as unknown as { got: number[]; opens: number; lastIds: string[]; EventSource: new (url: string) => EventTarget };
    w.got = [];
    w.opens = 0;
    w.lastIds = [];
    const es = new w.EventSource(src);
    es.addEventListener("open", () => w.opens++);
    const take = (e: Event) => {
      const m = e as MessageEvent;
      const f = JSON.parse(m.data);
      for (const ev of f.events ?? [f]) w.got.push(ev.event.data.i);
      w.lastIds.push(m.lastEventId);
    };
    es.addEventListener("event", take);
    es.addEventListener("event_batch", take);
  }, `/api/v1/stream?topic=${topic}&start=earliest`);
  const got = () => page.evaluate(() => (globalThis as unknown as { got: number[] }).got.length);
  await publish(first.wsUrl, topic, 1, 40);
  for (let t = Date.now(); (await got()) < 40 && Date.now() - t < 30_000; ) await Bun.sleep(100);
  expect(await got()).toBe(40);

  await first.stop("SIGTERM");
  const second = await startGateway({ ...env, PORT: String(port) });
  try {
    await publish(second.wsUrl, topic, 40, 80);
    for (let t = Date.now(); (await got()) < 80 && Date.now() - t < 30_000; ) await Bun.sleep(100);
    await Bun.sleep(500);
    const w = await page.evaluate(() => {
      const g = globalThis as unknown as { got: number[]; opens: number; lastIds: string[] };
      return { got: g.got, opens: g.opens, lastIds: g.lastIds };
    });
    expect(w.opens).toBeGreaterThanOrEqual(2); // it did reconnect
    expect(w.got).toEqual(expect.arrayContaining(Array.from({ length: 80 }, (_, i) => i)));
    expect(w.got.length).toBe(80);
    expect(w.lastIds.every((id) => id.length > 0)).toBe(true);
    await page.screenshot({ path: `${process.env.TEST_ARTIFACTS_DIR ?? ".reports"}/sse-browser.png` });
  } finally {
    await page.close();
    await second.stop();
  }
}, 120_000);
