import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { Packr, Unpackr } from "msgpackr";
import { z } from "zod";
import { GatewayError } from "../protocol/errors";

/**
 * Resume tokens: per topic, the next offset of every partition, plus which filter they were taken
 * under and which logs the offsets are in (originTag of EventLog.origin, and per topic, where known,
 * a tag of the topic's id, which a topic made again does not share). Resuming with a token yields
 * exactly the matching events after it (docs/subscriptions.md).
 * Opaque to clients: msgpack, base64url, then `.` and an HMAC of it, so a forged or altered token is
 * refused INVALID_POSITION instead of becoming a blind seek to offsets the client chose.
 */
export type Positions = Map<string, number[]>;

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const offsets = z.array(z.number().int().min(0)).max(10_000);
// v2 lists positions as [topic, offsets] pairs: as a map, a topic named "__proto__" (a valid Kafka
// name) was lost on the way, and the token resumed without it. v1 tokens are still read. A third
// element, where the gateway knew it, is idTag of the topic's id. What a later version adds (more
// elements, more fields) is let through unread, so that an instance rolled back, or not yet
// upgraded, still resumes its tokens: versions before ids refused them (INVALID_POSITION).
const entry = z.tuple([z.string().max(249), offsets], z.unknown());
const TokenSchema = z.union([
  z.object({ v: z.literal(2), f: z.string().max(64), o: z.string().max(64).optional(), p: z.array(entry).max(10_000) }),
  z.strictObject({ v: z.literal(1), f: z.string().max(64), p: z.record(z.string().max(249), offsets) }),
]);

// 128 bits of HMAC-SHA256: plenty against forgery, and every event frame carries a token.
const MAC_BYTES = 16;
const MAC_CONTEXT = Buffer.from("kgw-resume-v1\0");
// A token holds at most a few topics' partition offsets; far beyond that is not one of ours.
const MAX_TOKEN_CHARS = 256 * 1024;
/** Newest first: the first signs, every one verifies (rotation). Random per process until configured. */
let keys: Buffer[] = [randomBytes(32)];

/** Sets the resume token keys (RESUME_TOKEN_KEYS, newest first); with none, a random per-process key stays. */
export function setResumeTokenKeys(list: string[]): void {
  const given = list.map((k) => k.trim()).filter(Boolean);
  keys = given.length > 0 ? given.map((k) => Buffer.from(k)) : [randomBytes(32)];
}

function mac(key: Buffer, payload: Uint8Array): Buffer {
  return createHmac("sha256", key).update(MAC_CONTEXT).update(payload).digest().subarray(0, MAC_BYTES);
}

/** A short, stable name for a filter identity, so tokens stay small. */
export function filterTag(identity: string): string {
  return Bun.hash(identity).toString(36);
}

/** A short, stable name for the logs' origin (EventLog.origin), so tokens stay small. */
export function originTag(origin: string): string {
  return Bun.hash(origin).toString(36);
}

/** A short, stable name for a topic's id (EventLog.topicId), so tokens stay small. */
export function idTag(id: string): string {
  return Bun.hash(id).toString(36);
}

/**
 * The last token made, with what it was made of: filter, origin, key, the topics' ids, and a copy of the positions.
 * Every subscription of one feed under one filter carries the same token after each batch: 1,000
 * such subscribers made 1,000 HMACs of the same bytes, a third of the gateway's time delivering to
 * them (and packing those bytes again to compare them was half of what was left). Equal inputs:
 * equal bytes, equal token.
 */
let last: { filter: string; origin: string | undefined; key: Buffer; positions: Array<[string, number[], string | undefined]>; token: string } | null = null;

const noIds = (): undefined => undefined;

function samePositions(copy: Array<[string, number[], string | undefined]>, positions: Positions, idOf: (topic: string) => string | undefined): boolean {
  if (copy.length !== positions.size) return false;
  let i = 0;
  for (const [topic, offsets] of positions) {
    const [t, o, id] = copy[i++]!;
    if (t !== topic || o.length !== offsets.length || id !== idOf(topic)) return false;
    for (let p = 0; p < o.length; p++) if (o[p] !== offsets[p]) return false;
  }
  return true;
}

/**
 * `origin`: originTag of the logs `positions` are in; undefined while the gateway does not know it.
 * `idOf`: each topic's id (EventLog.topicId) where every partition's position is in its log.
 */
export function encodeToken(filter: string, positions: Positions, origin?: string, idOf: (topic: string) => string | undefined = noIds): string {
  const key = keys[0]!;
  if (last !== null && last.key === key && last.filter === filter && last.origin === origin && samePositions(last.positions, positions, idOf)) return last.token;
  const copy = Array.from(positions, ([t, o]): [string, number[], string | undefined] => [t, [...o], idOf(t)]);
  const entries = copy.map(([t, o, id]) => (id === undefined ? [t, o] : [t, o, idTag(id)]));
  const payload = packr.pack(origin === undefined ? { v: 2, f: filter, p: entries } : { v: 2, f: filter, o: origin, p: entries });
  const token = `${Buffer.from(payload).toString("base64url")}.${mac(key, payload).toString("base64url")}`;
  last = { filter, origin, key, positions: copy, token };
  return token;
}

// One spelling per token: base64 decoders skip characters outside the alphabet, so anything looser
// would let altered strings pass as the same token.
const TOKEN_FORM = new RegExp(`^[A-Za-z0-9_-]{1,${MAX_TOKEN_CHARS}}\\.[A-Za-z0-9_-]{${Math.ceil((MAC_BYTES * 4) / 3)}}$`);

function verified(token: string): Uint8Array {
  if (!TOKEN_FORM.test(token)) throw forged();
  const dot = token.indexOf(".");
  const payload = Buffer.from(token.slice(0, dot), "base64url");
  const given = Buffer.from(token.slice(dot + 1), "base64url");
  // The last character of a part may carry bits no decoder reads: only the spelling we write counts.
  if (payload.toString("base64url") !== token.slice(0, dot) || given.toString("base64url") !== token.slice(dot + 1)) throw forged();
  if (given.length !== MAC_BYTES) throw forged();
  for (const key of keys) if (timingSafeEqual(mac(key, payload), given)) return payload;
  throw forged();
}

const forged = () => new GatewayError("INVALID_POSITION", "the resume token is not one this gateway issued (altered, or signed with a key it does not hold)");

/**
 * `origin` is undefined for a token issued before tokens named it, or while the origin was unknown;
 * `ids` holds idTag of each topic's id where the token names one.
 */
export function decodeToken(token: string): { filter: string; positions: Positions; origin?: string; ids: Map<string, string> } {
  let raw: unknown;
  try {
    // verified() throws the INVALID_POSITION error itself; the catch keeps its message.
    raw = unpackr.unpack(verified(token));
  } catch (e) {
    throw e instanceof GatewayError ? e : new GatewayError("INVALID_POSITION", "the resume token is not one this gateway issued");
  }
  const t = TokenSchema.safeParse(raw);
  if (!t.success) throw new GatewayError("INVALID_POSITION", "the resume token is not one this gateway issued");
  if (t.data.v === 1) return { filter: t.data.f, positions: new Map(Object.entries(t.data.p)), ids: new Map() };
  const ids = new Map<string, string>();
  for (const e of t.data.p) if (typeof e[2] === "string" && e[2].length <= 64) ids.set(e[0], e[2]);
  return { filter: t.data.f, positions: new Map(t.data.p.map((e) => [e[0], e[1]])), origin: t.data.o, ids };
}
