import { type DeliveredEvent, type GatewayClient, type Start, type Subscription, bigintAsDigits, connect, describeGap } from "../client/index";
import { WindowStats } from "./charts";
import { startHealthView } from "./health";
import { EventRing } from "./ring";
import { EventTable, keyText } from "./table";

/**
 * The gateway's dashboard (docs/dashboard.md): one subscription at a time through the client SDK,
 * its events in a virtualised table over a bounded ring, charts over the last minute, publishing
 * with ack latencies, and the delivery-health view. Events only count and store on arrival; the
 * table and charts are painted on animation frames.
 */
const RING_CAPACITY = 20_000;
const $ = <T extends HTMLElement = HTMLInputElement>(id: string) => document.getElementById(id) as T;

const ring = new EventRing(RING_CAPACITY);
const stats = new WindowStats();
const table = new EventTable($<HTMLElement>("events"), ring, inspect);
let gw: GatewayClient | null = null;
let sub: Subscription | null = null;
let paused = false;
/** Events that arrived while paused (not kept), and the resume token at the pause, to replay them. */
let missed = 0;
let pausedAt: string | undefined;
/** New events arrived since the table was painted; `urgent`: the user changed something. */
let dirty = true;
let urgent = true;
let paintedAt = 0;
let received = 0;
// While events stream in, the table is painted at most this often, not every animation frame: at
// 5,000 events/s every row changes every frame, and painting them 60 times a second kept the page's
// thread busy half the time (2.9 s of 7 in Chromium's style, layout and paint; long tasks up to
// 200 ms), for rows no one can read at that speed; at 10 a second, a fifth of the time. What the
// user does (pause, clear, scroll, a new subscription) paints at once.
const LIVE_PAINT_EVERY_MS = 100;

const token = () => $("token").value.trim();

function say(id: string, text: string): void {
  // Written only when it changes: each write of a text node costs a style and layout pass.
  const el = $<HTMLElement>(id);
  if (el.textContent !== text) el.textContent = text;
}

let connecting: Promise<GatewayClient> | null = null;

/** The one client of the page, connected on first need (concurrent callers share the attempt). */
function ensureConnected(): Promise<GatewayClient> {
  if (gw) return Promise.resolve(gw);
  connecting ??= (async () => {
    say("conn-state", "connecting…");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    // This attempt's client, once connected: a "closed" told later is about it, not a newer one.
    let self: GatewayClient | null = null;
    try {
      gw = self = await connect({
        url,
        codec: "json",
        // Read at each (re)connect, so a corrected token field takes effect.
        getToken: () => token(),
        onState: (state, d) => {
          // Null until the first connect resolves, which then says "connected · session …" itself.
          if (state === "open") say("conn-state", self ? `connected · session ${self.session.slice(0, 8)}` : "connected");
          else say("conn-state", state === "reconnecting" ? `reconnecting (${d?.code ?? ""} ${d?.reason ?? ""})` : state);
          // The subscription is resumed from its token once connected again, and says "live" then.
          if (sub && state !== "open") say("sub-state", state === "reconnecting" ? `subscribed to ${sub.topics.join(", ")} · disconnected; resumes where it left off` : "ended: the connection closed");
          // Closed for good (a refused token, say): the next subscribe or publish connects afresh.
          if (state === "closed" && gw === self) {
            gw = null;
            sub = null;
          }
        },
      });
      say("conn-state", `connected · session ${gw.session.slice(0, 8)}`);
      return gw;
    } catch (e) {
      say("conn-state", (e as Error).message);
      throw e;
    } finally {
      connecting = null;
    }
  })();
  return connecting;
}

$("connect").addEventListener("click", () => {
  gw?.close();
  gw = null;
  sub = null;
  void ensureConnected().catch(() => {});
});

$("start-kind").addEventListener("change", () => {
  const kind = $<HTMLSelectElement>("start-kind").value;
  $("start-value").hidden = kind !== "time" && kind !== "token";
});

function startOf(): Start {
  const kind = $<HTMLSelectElement>("start-kind").value;
  const value = $("start-value").value.trim();
  if (kind === "time") return { time: /^\d+$/.test(value) ? Number(value) : value };
  if (kind === "token") return { token: value };
  return kind as "latest" | "earliest";
}

$<HTMLFormElement>("sub-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say("sub-error", "");
  let filter: Record<string, unknown> | undefined;
  const text = $<HTMLTextAreaElement>("filter").value.trim();
  try {
    filter = text ? JSON.parse(text) : undefined;
  } catch (e) {
    return say("sub-error", `the filter is not JSON: ${(e as Error).message}`);
  }
  try {
    const client = await ensureConnected();
    // The new subscription first: one the server refuses leaves the current one running.
    const next = await client.subscribe($("topic").value.trim(), { filter, start: startOf(), policy: $<HTMLSelectElement>("policy").value as "drop-oldest" });
    const previous = sub;
    sub = next;
    void previous?.close();
    ring.clear();
    table.reset();
    setPaused(false); // a new subscription is watched live
    say("sub-state", `subscribed to ${next.topics.join(", ")}${next.live ? " · live" : " · replaying"}`);
    next.onEvent(onEvent).onNotice((n) => {
      if (next !== sub) return;
      if (n.kind === "live") say("sub-state", `subscribed to ${next.topics.join(", ")} · live`);
      else if (n.kind === "lagged") say("sub-state", `lagged: ${n.dropped} events dropped (${n.where}); the resume token fills the gap`);
      else if (n.kind === "gap") say("sub-state", n.gaps.map(describeGap).join("; "));
      else say("sub-state", `ended${n.code ? `: ${n.code} ${n.message ?? ""}` : ""}`);
    });
    $<HTMLButtonElement>("unsubscribe").disabled = false;
  } catch (e) {
    // The server's refusal, as its code and message (INVALID_FILTER: …).
    const err = e as Error & { code?: string };
    say("sub-error", err.message);
    $<HTMLElement>("sub-error").dataset.code = err.code ?? "";
  }
});

$("unsubscribe").addEventListener("click", async () => {
  const token = await sub?.close();
  sub = null;
  $<HTMLButtonElement>("unsubscribe").disabled = true;
  say("sub-state", token ? `unsubscribed; resume token: ${token}` : "unsubscribed");
});

function onEvent(e: DeliveredEvent): void {
  received++;
  stats.event(e.event.type, keyText(e.event));
  // While paused, the ring is left alone: at 5,000 events/s the newest would push the frozen rows
  // out of it within seconds and empty the view. They are counted, and the token at the pause
  // replays them.
  if (paused) missed++;
  else ring.push(e);
  dirty = true;
}

function setPaused(on: boolean): void {
  paused = on;
  missed = 0;
  pausedAt = on ? sub?.token : undefined;
  urgent = true;
}
$("pause").addEventListener("click", () => setPaused(!paused));
$("clear").addEventListener("click", () => {
  ring.clear();
  table.reset();
  urgent = true;
});

let inspected = "";
function inspect(e: DeliveredEvent): void {
  inspected = JSON.stringify({ topic: e.topic, partition: e.partition, offset: e.offset, event: e.event, ...(e.degraded ? { degraded: e.degraded, reason: e.reason } : {}) }, bigintAsDigits, 2);
  say("inspect-json", inspected);
  $<HTMLElement>("inspector").hidden = false;
}
$("close-inspector").addEventListener("click", () => ($<HTMLElement>("inspector").hidden = true));
$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(inspected);
    say("copy", "Copied");
  } catch {
    say("copy", "Copy refused: select the text");
  }
  setTimeout(() => say("copy", "Copy"), 1500);
});

$<HTMLFormElement>("pub-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let data: unknown;
  try {
    data = JSON.parse($("pub-data").value || "null");
  } catch (e) {
    return say("pub-result", `data is not JSON: ${(e as Error).message}`);
  }
  const client = await ensureConnected().catch(() => null);
  if (!client) return;
  const n = Math.max(1, Math.min(10_000, Number($("pub-count").value) || 1));
  const key = $("pub-key").value || undefined;
  let ok = 0;
  const errors = new Map<string, number>();
  await Promise.all(
    Array.from({ length: n }, async () => {
      const sent = performance.now();
      try {
        await client.publish({ type: $("pub-type").value, key, data }, { topic: $("topic").value.trim() });
        stats.ack(performance.now() - sent);
        ok++;
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).message;
        errors.set(code, (errors.get(code) ?? 0) + 1);
      }
    }),
  );
  say("pub-result", `${ok} acked${errors.size ? `; refused: ${[...errors].map(([c, k]) => `${c} ×${k}`).join(", ")}` : ""}`);
});

function frame(now: number): void {
  if (urgent || (dirty && now - paintedAt >= LIVE_PAINT_EVERY_MS)) {
    urgent = false;
    dirty = false;
    paintedAt = now;
    if (!paused) table.follow();
    table.render();
    const waiting = paused ? ` · paused, ${received} received, ${missed} since the pause not kept` : "";
    say("event-count", `${Math.min(ring.next, RING_CAPACITY)} of the last ${RING_CAPACITY} kept${waiting}`);
    say("pause", paused ? "Resume" : "Pause");
    if (paused) say("token-now", pausedAt ? `paused at resume token: ${pausedAt} (start from it to replay what came since)` : "");
    else say("token-now", sub?.token ? `resume token: ${sub.token}` : "");
  }
  stats.draw($<HTMLCanvasElement>("chart-rate"), $<HTMLCanvasElement>("chart-keys"), $<HTMLCanvasElement>("chart-acks"));
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

startHealthView({
  token,
  onTopics: (topics) => {
    const list = $<HTMLDataListElement>("topics");
    const known = new Set([...list.options].map((o) => o.value));
    for (const t of topics) if (!known.has(t)) list.appendChild(Object.assign(document.createElement("option"), { value: t }));
  },
});

// With authentication off there is nothing to ask: connect at once.
void fetch("/health")
  .then((r) => r.json())
  .then(async (h: { auth?: string }) => {
    if (h.auth === "none") await ensureConnected();
    else say("conn-state", "authentication is on: enter a token and Connect");
  })
  .catch(() => {});
