#!/usr/bin/env bun
/**
 * kgw: the gateway from a terminal, on the client SDK.
 *   kgw pub  [--topic T] [--type X] [EVENT_JSON …]     events from the arguments, or JSON lines on stdin
 *   kgw tail [--topic T] [--filter JSON] [--from earliest|latest|TIME|token:T] [--count N] [--json]
 * Common: --url (KGW_URL, default ws://localhost:8080/ws), --token (KGW_TOKEN).
 * Several gateways (instances sharing Kafka): --url a,b, --url a --url b, or KGW_URL=a,b.
 */
import { parseArgs } from "node:util";
import { type DeliveredEvent, type OutgoingEvent, type Start, bigintAsDigits, connect, describeGap, parseJsonValue } from "../client";
import { safeJson, safeText } from "./terminal-safe";

const USAGE = `usage:
  kgw pub  [--topic T] [--type X] [EVENT_JSON …]   publish events given as arguments, else one per stdin line
  kgw tail [--topic T] [--filter JSON] [--from earliest|latest|TIME|token:TOKEN] [--count N] [--json]
options: --url URL (or KGW_URL; default ws://localhost:8080/ws)  --token JWT (or KGW_TOKEN)
         several instances: --url A,B or --url A --url B (KGW_URL=A,B); the next is tried when one is down
pub: a line or argument is an event envelope {"type": …, "data": …}; with --type, any JSON value is
     sent as the data of an event of that type. --json prints each ack as a JSON line.
tail: prints partition:offset, type, key and data per event; --json prints each event as a JSON line.`;

// Output through one writer that is flushed before exit: process.exit() drops what a pipe has not taken yet.
const stdout = Bun.stdout.writer();
const emit = (line: string) => void stdout.write(`${line}\n`);
async function exit(code: number): Promise<never> {
  await stdout.flush();
  process.exit(code);
}

function fail(message: string): never {
  process.stderr.write(`kgw: ${safeText(message)}\n`);
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
let parsed;
try {
  parsed = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      url: { type: "string", multiple: true },
      token: { type: "string" },
      topic: { type: "string" },
      type: { type: "string" },
      filter: { type: "string" },
      from: { type: "string" },
      count: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
} catch (e) {
  fail((e as Error).message);
}
const o = parsed.values;
if (o.help || !command || !["pub", "tail", "sub"].includes(command)) {
  emit(USAGE);
  await exit(o.help ? 0 : 2);
}
/** The instances, in order: each --url (or KGW_URL) may itself be a comma list. */
const urls = (o.url ?? [process.env.KGW_URL || "ws://localhost:8080/ws"])
  .flatMap((u) => u.split(","))
  .map((u) => u.trim())
  .filter((u) => u !== "");
if (urls.length === 0) fail("--url needs a ws:// or wss:// URL");
for (const u of urls) if (!/^wss?:\/\/./.test(u)) fail(`--url takes ws:// or wss:// URLs; got ${u}`);
const token = o.token ?? process.env.KGW_TOKEN;

/** A line or argument as an event (an envelope, or with --type any JSON value as its data), or why it is not one. */
function toEvent(text: string): OutgoingEvent | { refused: string } {
  let v: unknown;
  try {
    v = parseJsonValue(text);
  } catch {
    return { refused: `not JSON: ${text.slice(0, 80)}` };
  }
  if (o.type) return { type: o.type, data: v };
  if (typeof v !== "object" || v === null || typeof (v as { type?: unknown }).type !== "string") return { refused: `an event needs a "type" (or give --type): ${text.slice(0, 80)}` };
  return v as OutgoingEvent;
}

function startOf(from: string | undefined): Start | undefined {
  if (from === undefined) return undefined;
  if (from === "earliest" || from === "latest") return from;
  if (from.startsWith("token:")) return { token: from.slice(6) };
  if (/^\d+$/.test(from)) return { time: Number(from) };
  if (!Number.isNaN(Date.parse(from))) return { time: from };
  fail(`--from takes earliest, latest, a time (ISO 8601 or ms) or token:TOKEN; got ${from}`);
}

async function* lines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield line;
    }
  }
  if (buf.trim()) yield buf.trim();
}

// A person at a terminal asking a gateway that is not there wants an answer soon: before the first
// welcome, each instance gets CONNECT_ROUNDS attempts (with the SDK's backoff), then kgw says why.
const CONNECT_ROUNDS = 3;
const gw = await connect({ url: urls, token, connectAttempts: CONNECT_ROUNDS * urls.length }).catch((e) => fail(`cannot connect to ${urls.join(", ")}: ${(e as Error).message}`));

if (command === "pub") {
  let ok = 0;
  let failed = 0;
  const pending = new Set<Promise<void>>();
  /** `where`: "line 3" or "argument 2", so a refusal names what it refuses as a line that is no event does. */
  const one = (ev: OutgoingEvent, where: string) => {
    const p = gw
      .publish(ev, { topic: o.topic })
      .then(
        (a) => {
          ok++;
          if (o.json) emit(safeJson(JSON.stringify(a)));
        },
        (e) => {
          failed++;
          process.stderr.write(`kgw: ${where}: ${safeText(`${e.code ?? "ERROR"} ${e.message}`)}\n`);
        },
      )
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const fromArguments = parsed.positionals.length > 0;
  const source = fromArguments ? parsed.positionals : lines();
  let n = 0;
  for await (const text of source) {
    n++;
    // A line that is no event is refused as the gateway refuses one: said, counted, and the rest
    // still sent. Exiting there left the events before it published with no summary, and the good
    // lines read with it never sent.
    const ev = toEvent(text);
    const where = `${fromArguments ? "argument" : "line"} ${n}`;
    if ("refused" in ev) {
      failed++;
      process.stderr.write(`kgw: ${where}: ${safeText(ev.refused)}\n`);
      continue;
    }
    one(ev, where);
    // The SDK bounds its own queue; stay well inside it so a fast pipe never sees CLIENT_QUEUE_FULL.
    while (gw.pendingPublishes >= 50_000) await Promise.race(pending);
  }
  await Promise.all(pending);
  process.stderr.write(`kgw: published ${ok}${failed ? `, ${failed} failed` : ""}\n`);
  gw.close();
  await exit(failed ? 1 : 0);
} else {
  let filter: Record<string, unknown> | undefined;
  if (o.filter) {
    try {
      filter = JSON.parse(o.filter);
    } catch {
      fail("--filter must be JSON, e.g. '{\"types\":[\"order.*\"]}'");
    }
  }
  const count = o.count === undefined ? Infinity : Number(o.count);
  if (!(count > 0)) fail("--count must be a positive number");
  const sub = await gw.subscribe(o.topic ?? "events", { filter, start: startOf(o.from) }).catch((e) => fail(`subscribe refused: ${(e as Error).message}`));
  // Bytes (a binary key or header value, byte data) print as "base64:…" in both forms, and integers
  // past ±2^53 (BigInt) as their digits. The holder's own value, not `v`: JSON.stringify has already
  // turned a Buffer into {type, data}.
  const bytesAsText = function (this: Record<string, unknown> | undefined, k: string, v: unknown) {
    const raw = this?.[k] ?? v;
    if (typeof raw === "bigint") return bigintAsDigits(k, raw);
    return raw instanceof Uint8Array ? `base64:${Buffer.from(raw).toString("base64")}` : v;
  };
  const print = (e: DeliveredEvent) =>
    o.json ? safeJson(JSON.stringify(e, bytesAsText)) : `${e.partition}:${e.offset}\t${safeText(String(e.event.type))}\t${safeText(String(bytesAsText.call(undefined, "", e.event.key) ?? ""))}\t${safeJson(JSON.stringify(e.event.data ?? e.event.data_base64 ?? null, bytesAsText))}`;
  // A gap is said, never silent: the gateway dropped events for a slow reader (live only; history waits).
  sub.onNotice((n) => {
    if (n.kind === "lagged") process.stderr.write(`kgw: ${n.dropped} events dropped (${n.where === "gateway" ? "the gateway's" : "this client's"} buffer for a slow reader)\n`);
    if (n.kind === "gap") for (const g of n.gaps) process.stderr.write(`kgw: ${safeText(describeGap(g))}\n`);
  });
  for (const g of sub.gaps) process.stderr.write(`kgw: ${safeText(describeGap(g))}\n`);
  let n = 0;
  for await (const e of sub) {
    emit(print(e));
    if (++n >= count) break;
  }
  gw.close();
  await exit(0);
}

