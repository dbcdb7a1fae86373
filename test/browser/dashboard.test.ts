import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { connect } from "../../src/client/index";
import { SECRET, hsToken } from "../auth/support";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import { startSlowSubscriber } from "../support/slow-subscriber";
import { launchChromium } from "./chromium";

/**
 * The dashboard in headless Chromium, as a person would use it: subscribe with a filter, see the
 * matching events published meanwhile (and not the others), inspect one, see a bad filter's error
 * from the server, publish from the page, and read a deliberately slow subscriber's row in the
 * delivery-health view. Screenshots go to test-artifacts/dashboard/ (git-ignored).
 */
const ARTIFACTS = resolve(import.meta.dir, "../../test-artifacts/dashboard");
let browser: Browser;
beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

async function shot(page: Page, name: string): Promise<void> {
  const path = `${ARTIFACTS}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

const text = async (page: Page, sel: string) => (await page.locator(sel).textContent()) ?? "";
/** Types in the table's rows that exist in the DOM (the visible ones: it is virtualised). */
const shownTypes = (page: Page) => page.$$eval("#events .rows .row:not([hidden])", (rows) => rows.map((r) => r.children[2]!.textContent ?? ""));
/** How many events the table holds, from its caption "N of the last M kept". */
const keptCount = async (page: Page) => Number((await text(page, "#event-count")).split(" ")[0]);

const BUFFER_BYTES = 4 * 1024 * 1024;

/** Waits until the text of the first element matching `selector` satisfies `how`; a timeout says what it was, and the subscription's state. */
async function waitText(page: Page, selector: string, how: "starts" | "includes" | "equals" | "nonempty" | "positive", want: string, timeout = 30_000): Promise<void> {
  try {
    await waitTextOnce(page, selector, how, want, timeout);
  } catch (e) {
    const now = await page.evaluate(([sel]) => {
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document;
      return { text: doc.querySelector(sel!)?.textContent ?? null, subState: doc.querySelector("#sub-state")?.textContent ?? null };
    }, [selector]);
    throw new Error(`${selector} did not ${how} "${want}" within ${timeout} ms: it is ${JSON.stringify(now.text)}, the subscription ${JSON.stringify(now.subState)} (${String((e as Error).message).split("\n")[0]})`);
  }
}

async function waitTextOnce(page: Page, selector: string, how: "starts" | "includes" | "equals" | "nonempty" | "positive", want: string, timeout: number): Promise<void> {
  await page.waitForFunction(
    ([selector, how, want]) => {
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document;
      const t = doc.querySelector(selector!)?.textContent ?? "";
      if (how === "starts") return t.startsWith(want!);
      if (how === "includes") return t.includes(want!);
      if (how === "equals") return t === want;
      if (how === "nonempty") return t.length > 0;
      return Number(t) > 0;
    },
    [selector, how, want],
    { timeout },
  );
}

async function openDashboard(gw: GatewayProcess): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, permissions: ["clipboard-read", "clipboard-write"] });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  (page as Page & { errors?: string[] }).errors = errors;
  await page.goto(`${gw.url}/dashboard`);
  return page;
}

async function subscribe(page: Page, topic: string, filter: string): Promise<void> {
  await page.fill("#topic", topic);
  await page.fill("#filter", filter);
  await page.click("#subscribe");
}

test("subscribe with a filter, see matching events only, inspect, a bad filter's error, publish from the page, and a slow subscriber's delivery health", async () => {
  // Room for the page's own burst below: at 64 KB, a page slowed by a loaded machine (a fresh-clone
  // CI) had events of it dropped (drop-oldest), and its count never reached what was published.
  const gw = await startGateway({ SUBSCRIBER_BUFFER_BYTES: String(BUFFER_BYTES), RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });
  const pub = await connect({ url: gw.wsUrl });
  try {
    const topic = `dash-${Date.now()}`;
    await pub.publish({ type: "warm.up" }, { topic }); // creates the topic
    const page = await openDashboard(gw);
    await waitText(page, "#conn-state", "starts", "connected");

    await subscribe(page, topic, '{"types":["order.*"]}');
    await waitText(page, "#sub-state", "includes", "live");
    for (let i = 0; i < 40; i++) {
      await pub.publish({ type: i % 2 === 0 ? "order.created" : "user.login", key: `user-${i % 5}`, data: { i, total: i * 10 } }, { topic });
    }
    await waitText(page, "#event-count", "starts", "20 ");
    await Bun.sleep(500); // any non-matching event would have arrived by now
    expect(await keptCount(page)).toBe(20);
    const types = await shownTypes(page);
    expect(types.length).toBeGreaterThanOrEqual(10);
    expect(types.every((t) => t === "order.created")).toBe(true);

    await page.click("#events .rows .row:not([hidden])");
    expect(await page.locator("#inspector").isVisible()).toBe(true);
    const inspected = JSON.parse(await text(page, "#inspect-json"));
    expect(inspected).toMatchObject({ topic, event: { type: "order.created" } });
    await page.click("#copy");
    const copied = await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
    expect(JSON.parse(copied)).toEqual(inspected);
    await shot(page, "events");

    // A filter the server refuses: its code and message are shown, and the running subscription stays.
    await page.fill("#filter", '{"where":"data.total >"}');
    await page.click("#subscribe");
    await waitText(page, "#sub-error", "nonempty", "");
    expect(await text(page, "#sub-error")).toMatch(/^INVALID_FILTER: /);
    await page.fill("#filter", "{not json");
    await page.click("#subscribe");
    await waitText(page, "#sub-error", "starts", "the filter is not JSON", 10_000);
    await shot(page, "bad-filter");

    // Publishing from the page: acked, and its ack latencies charted.
    await page.fill("#pub-type", "order.paid");
    await page.fill("#pub-count", "25");
    await page.click("#pub-form button[type=submit]");
    await waitText(page, "#pub-result", "starts", "25 acked");
    await waitText(page, "#event-count", "starts", "45 ");

    // A burst the page must keep up with: the table stays a few dozen DOM rows over a bounded ring.
    const frames = await page.evaluate(() => {
      const w = globalThis as unknown as { frames: number };
      w.frames = 0;
      const raf = (globalThis as unknown as { requestAnimationFrame: (f: () => void) => void }).requestAnimationFrame;
      const tick = () => (w.frames++, raf(tick));
      raf(tick);
      return 0;
    });
    for (let i = 0; i < 10_000; i += 500) {
      await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "order.burst", key: `k${j % 13}`, data: { i: i + j } })), { topic });
    }
    await waitText(page, "#event-count", "starts", "10045 ", 60_000);
    const rows = await page.$$eval("#events .rows .row", (r) => r.length);
    expect(rows).toBeLessThan(100);
    const painted = await page.evaluate(() => (globalThis as unknown as { frames: number }).frames);
    console.log(`burst of 10,000 events: ${rows} row elements, ${painted - frames} animation frames meanwhile`);
    expect(painted).toBeGreaterThan(5);
    const inked = await page.$eval("#chart-rate", (el) => {
      type Canvas = { width: number; height: number; getContext(k: "2d"): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } };
      const c = el as unknown as Canvas;
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(100);

    // A subscriber that stops reading, past which ~24 MB are published: its row shows what it costs.
    const slow = await startSlowSubscriber(gw.port, topic, 60_000, "drop-oldest");
    const data = "x".repeat(1000);
    for (let i = 0; i < 24_000; i += 500) {
      await pub.publishBatch(Array.from({ length: 500 }, (_, j) => ({ type: "flood", key: `f${j % 7}`, data: { i: i + j, data } })), { topic });
    }
    await waitText(page, '#deliveries tr[data-sub="slow"] td[data-col="dropped"]', "positive", "");
    const row = await page.$$eval('#deliveries tr[data-sub="slow"] td', (tds) => Object.fromEntries(tds.map((td) => [(td as unknown as { dataset: Record<string, string> }).dataset.col, td.textContent])));
    console.log(`slow subscriber's row: ${JSON.stringify(row)}`);
    expect(row).toMatchObject({ topics: topic, policy: "drop-oldest", state: "live" });
    expect(Number(row.dropped)).toBeGreaterThan(0);
    expect(Number(row.queued!.split(" / ")[0])).toBeGreaterThan(0);
    expect(row.queued!.split(" / ")[1]).toBe(String(BUFFER_BYTES));
    expect(await text(page, "#health-status")).toStartWith("ready");
    // The page's own subscription is listed too, with its filter's selectivity.
    expect(await page.locator('#deliveries td[data-col="filter"]', { hasText: "order.*" }).count()).toBeGreaterThanOrEqual(1);
    await shot(page, "delivery-health");
    slow.proc.kill();
    expect((page as Page & { errors?: string[] }).errors).toEqual([]);
    await page.context().close();
  } finally {
    pub.close();
    await gw.stop();
  }
}, 120_000);

test("with authentication on: the page asks for a token; with one it subscribes, reads the delivery-health view, and replays from a token and a time", async () => {
  const started = Date.now();
  const gw = await startGateway({ AUTH_JWT_SECRET: SECRET });
  const token = await hsToken({ kgw: { publish: ["*"], subscribe: ["*"], admin: true } });
  const pub = await connect({ url: gw.wsUrl, token });
  try {
    const topic = `dash-auth-${Date.now()}`;
    await pub.publish({ type: "warm.up" }, { topic });
    const page = await openDashboard(gw);
    await waitText(page, "#conn-state", "includes", "authentication is on");
    await waitText(page, "#health-error", "starts", "UNAUTHENTICATED");
    await page.fill("#token", token);
    await page.click("#connect");
    await waitText(page, "#conn-state", "starts", "connected");
    await subscribe(page, topic, "");
    await waitText(page, "#sub-state", "includes", "live");
    await pub.publish({ type: "order.created", data: { ok: true } }, { topic });
    await waitText(page, "#event-count", "starts", "1 ");
    await waitText(page, '#deliveries td[data-col="principal"]', "equals", "alice");
    expect(await text(page, "#health-error")).toBe("");
    await shot(page, "auth");

    // Replay from a token: unsubscribing shows the token of the last event seen; from it, exactly what came after.
    await page.click("#unsubscribe");
    await waitText(page, "#sub-state", "starts", "unsubscribed; resume token: ");
    const resume = (await text(page, "#sub-state")).slice("unsubscribed; resume token: ".length);
    for (let i = 0; i < 3; i++) await pub.publish({ type: "order.later", data: { i } }, { topic });
    await page.selectOption("#start-kind", "token");
    await page.fill("#start-value", resume);
    await page.click("#subscribe");
    await waitText(page, "#event-count", "starts", "3 ");
    expect(await shownTypes(page)).toEqual(["order.later", "order.later", "order.later"]);
    // Replay from a time before all of it: every event of the topic.
    await page.selectOption("#start-kind", "time");
    await page.fill("#start-value", new Date(started - 60_000).toISOString());
    await page.click("#subscribe");
    await waitText(page, "#event-count", "starts", "5 ");
    expect((await shownTypes(page)).toSorted()).toEqual(["order.created", "order.later", "order.later", "order.later", "warm.up"]);
    await shot(page, "replay");
    await page.context().close();
  } finally {
    pub.close();
    await gw.stop();
  }
}, 60_000);

test("on Kafka: the view shows each worker's state and its brokers, and the page gets its filtered events", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: await kafkaBrokers(), KAFKA_WORKERS: "1" });
  try {
    const page = await openDashboard(gw);
    await waitText(page, "#instance", "includes", "worker 0: ready, brokers up");
    expect(await text(page, "#instance")).toContain("log kafka");
    // And events through Kafka to the page's table, its subscription listed with its lag.
    const topic = `dash-kafka-${Date.now()}`;
    const pub = await connect({ url: gw.wsUrl });
    await pub.publish({ type: "warm.up" }, { topic });
    await subscribe(page, topic, '{"types":["order.*"]}');
    await waitText(page, "#sub-state", "includes", "live");
    for (let i = 0; i < 6; i++) await pub.publish({ type: i % 2 ? "order.created" : "other", data: { i } }, { topic });
    await waitText(page, "#event-count", "starts", "3 ");
    await waitText(page, '#deliveries td[data-col="lag"]', "equals", "0");
    pub.close();
    await shot(page, "kafka");
    await page.context().close();
  } finally {
    await gw.stop();
  }
}, 120_000);

/**
 * Found by an outside tester: after the gateway restarted, the page read "open" where it says
 * "connected · session …", and while it was down the subscription still read "live".
 */
test("while its gateway restarts the page says it is disconnected, then connected to the new session, its subscription live again", async () => {
  const brokers = await kafkaBrokers();
  const env = { KAFKA_BROKERS: brokers, KAFKA_WORKERS: "1", RESUME_TOKEN_KEYS: "k".repeat(32) };
  let gw = await startGateway(env);
  const port = String(gw.port);
  try {
    const page = await openDashboard(gw);
    const topic = `dash-restart-${Date.now()}`;
    const pub = await connect({ url: gw.wsUrl });
    await pub.publish({ type: "warm.up" }, { topic });
    pub.close();
    await subscribe(page, topic, "");
    await waitText(page, "#sub-state", "includes", "live");
    await waitText(page, "#conn-state", "starts", "connected · session ");
    const before = await text(page, "#conn-state");
    await gw.stop();
    await waitText(page, "#conn-state", "starts", "reconnecting");
    await waitText(page, "#sub-state", "includes", "disconnected");
    gw = await startGateway({ ...env, PORT: port });
    await waitText(page, "#conn-state", "starts", "connected · session ");
    expect(await text(page, "#conn-state")).not.toBe(before); // a new session
    await waitText(page, "#sub-state", "includes", "live");
    const pub2 = await connect({ url: gw.wsUrl });
    await pub2.publish({ type: "after.restart" }, { topic });
    pub2.close();
    await waitText(page, "#event-count", "starts", "1 ");
    await page.context().close();
  } finally {
    await gw.stop();
  }
}, 120_000);

test("integers past 2^53 show exactly, in the table and in the inspector, with no error on the page", async () => {
  const gw = await startGateway({});
  const pub = await connect({ url: gw.wsUrl });
  try {
    const topic = `dash-int-${Date.now()}`;
    await pub.publish({ type: "warm.up" }, { topic });
    const page = await openDashboard(gw);
    await waitText(page, "#conn-state", "starts", "connected");
    await subscribe(page, topic, '{"types":["big.*"]}');
    await waitText(page, "#sub-state", "includes", "live");
    await pub.publish({ type: "big.int", data: { max: 2n ** 63n - 1n, past: 2n ** 53n + 1n, small: 7 } }, { topic });
    await waitText(page, "#event-count", "starts", "1 ");
    const row = await page.$eval("#events .rows .row:not([hidden])", (r) => r.textContent ?? "");
    expect(row).toContain('{"max":9223372036854775807,"past":9007199254740993,"small":7}');
    await page.click("#events .rows .row:not([hidden])");
    expect(await text(page, "#inspect-json")).toContain('"max": 9223372036854775807');
    expect((page as Page & { errors?: string[] }).errors).toEqual([]);
  } finally {
    pub.close();
    await gw.stop();
  }
}, 60_000);
