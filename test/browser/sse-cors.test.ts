import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import { connect } from "../../src/client";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";
import { ensureTopic } from "../support/kafka-broker";
import { launchChromium } from "./chromium";

/**
 * SSE across origins in a real browser: the page comes from one origin (a static server of its own)
 * and opens an EventSource on the gateway, another origin that ALLOWED_ORIGINS lets in. The gateway
 * is stopped under it (SIGTERM) and started again on its port: the browser reconnects by itself with
 * Last-Event-ID, and per partition the offsets it gets are exactly the topic's, with no gap and no
 * duplicate. A page from an origin not listed gets nothing.
 */
let browser: Browser;
const pages: Array<ReturnType<typeof Bun.serve>> = [];
const RESUME_TOKEN_KEYS = "browser-cors-resume-key-of-at-least-32-bytes";
let brokers: string;
beforeAll(async () => {
  // The broker's start-up (a JVM) is not part of any test's time.
  [browser, brokers] = await Promise.all([launchChromium(), kafkaBrokers()]);
}, 180_000);
afterAll(async () => {
  await browser?.close();
  for (const p of pages) p.stop(true);
});

/** A static server for one page: its origin is http://127.0.0.1:<its port>. */
function pageServer(): string {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("<!doctype html><title>sse</title>", { headers: { "content-type": "text/html" } }) });
  pages.push(s);
  return `http://127.0.0.1:${s.port}`;
}

interface PageState {
  got: Array<[number, number, number]>;
  opens: number;
  errors: number;
  state: number;
  lastIds: string[];
}

/** Opens, in the page, an EventSource on `src` (another origin) that records every event's partition, offset and data.i. */
async function listen(page: Page, src: string): Promise<void> {
  await page.evaluate((src) => {
    // Runs in the page: the DOM's EventSource, not Bun's.
    const w = globalThis as unknown as PageState & { es: EventTarget & { readyState: number }; EventSource: new (url: string) => EventTarget & { readyState: number } };
    Object.assign(w, { got: [], opens: 0, errors: 0, lastIds: [] });
    const es = new w.EventSource(src);
    w.es = es;
    es.addEventListener("open", () => w.opens++);
    es.addEventListener("error", () => w.errors++);
    const take = (e: Event) => {
      const m = e as MessageEvent;
      const f = JSON.parse(m.data);
      for (const ev of f.events ?? [f]) w.got.push([ev.partition, ev.offset, ev.event.data.i]);
      w.lastIds.push(m.lastEventId);
    };
    es.addEventListener("event", take);
    es.addEventListener("event_batch", take);
  }, src);
}

const state = (page: Page) =>
  page.evaluate(() => {
    const w = globalThis as unknown as PageState & { es: { readyState: number } };
    return { got: w.got, opens: w.opens, errors: w.errors, state: w.es.readyState, lastIds: w.lastIds };
  });

async function waitFor(page: Page, n: number): Promise<PageState> {
  for (const t = Date.now(); (await state(page)).got.length < n && Date.now() - t < 30_000; ) await Bun.sleep(100);
  return state(page);
}

async function publish(url: string, topic: string, from: number, to: number): Promise<Array<[number, number]>> {
  const c = await connect({ url });
  try {
    const acks = await Promise.all(Array.from({ length: to - from }, (_, k) => c.publish({ type: "sse.n", key: `k${(from + k) % 5}`, data: { i: from + k } }, { topic })));
    return acks.map((a) => [a.partition, a.offset]);
  } finally {
    c.close();
  }
}

/** Offsets by partition, in the order given (or sorted). */
const perPartition = (list: Array<[number, number, ...unknown[]]>, sort = false) => {
  const m = new Map<number, number[]>();
  for (const [p, o] of list) m.set(p, [...(m.get(p) ?? []), o]);
  if (sort) for (const offsets of m.values()) offsets.sort((a, b) => a - b);
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
};

test("a page of an allowed origin streams from the gateway; after the gateway is replaced, EventSource resumes with Last-Event-ID: no gap, no duplicate", async () => {
  const topic = freshTopic("sse-cors");
  await ensureTopic(brokers, topic, 3);
  const origin = pageServer();
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS, ALLOWED_ORIGINS: origin };
  const first: GatewayProcess = await startGateway(env);
  const page = await browser.newPage();
  let second: GatewayProcess | undefined;
  try {
    await page.goto(`${origin}/`);
    await listen(page, `${first.url}/api/v1/stream?topic=${topic}&start=earliest`);
    const acked = await publish(first.wsUrl, topic, 0, 60);
    expect((await waitFor(page, 60)).got).toHaveLength(60);

    await first.stop("SIGTERM");
    second = await startGateway({ ...env, PORT: String(first.port) });
    acked.push(...(await publish(second.wsUrl, topic, 60, 120)));
    const w = await waitFor(page, 120);
    await Bun.sleep(1000); // a repeat would arrive after the count was reached
    const after = await state(page);
    expect(w.opens).toBeGreaterThanOrEqual(2); // it did reconnect
    // Exactly the topic's records (all acked here), each once, in order within its partition.
    expect(perPartition(after.got)).toEqual(perPartition(acked, true));
    expect(after.got.map((g) => g[2]).toSorted((a, b) => a - b)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(after.lastIds.every((id) => id.length > 0)).toBe(true);
    await page.screenshot({ path: `${process.env.TEST_ARTIFACTS_DIR ?? ".reports"}/sse-cors-browser.png` });
  } finally {
    await page.close();
    await second?.stop();
    await first.stop("SIGKILL");
  }
}, 120_000);

test("a page of an origin not in ALLOWED_ORIGINS is refused: its EventSource fails and gets no event", async () => {
  const topic = freshTopic("sse-cors-no");
  await ensureTopic(brokers, topic, 1);
  const allowed = pageServer();
  const other = pageServer();
  const gw = await startGateway({ KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", ALLOWED_ORIGINS: allowed });
  const page = await browser.newPage();
  try {
    await publish(gw.wsUrl, topic, 0, 5);
    await page.goto(`${other}/`);
    await listen(page, `${gw.url}/api/v1/stream?topic=${topic}&start=earliest`);
    let w = await state(page);
    for (const t = Date.now(); w.state !== 2 && Date.now() - t < 15_000; w = await state(page)) await Bun.sleep(100);
    expect(w.state).toBe(2); // CLOSED: a refused EventSource does not retry
    expect(w.opens).toBe(0);
    expect(w.got).toEqual([]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(Number(/gateway_origins_refused_total\{transport="http"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  } finally {
    await page.close();
    await gw.stop();
  }
}, 120_000);
