import { Packr, Unpackr } from "msgpackr";
import { z } from "zod";
import { GatewayError } from "../protocol/errors";

/**
 * Resume tokens: per topic, the next offset of every partition, plus which filter they were taken
 * under. Resuming with a token yields exactly the matching events after it (docs/subscriptions.md).
 * Opaque to clients: msgpack, base64url.
 */
export type Positions = Map<string, number[]>;

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const TokenSchema = z.strictObject({
  v: z.literal(1),
  f: z.string().max(64),
  p: z.record(z.string().max(249), z.array(z.number().int().min(0)).max(10_000)),
});

/** A short, stable name for a filter identity, so tokens stay small. */
export function filterTag(identity: string): string {
  return Bun.hash(identity).toString(36);
}

export function encodeToken(filter: string, positions: Positions): string {
  return Buffer.from(packr.pack({ v: 1, f: filter, p: Object.fromEntries(positions) })).toString("base64url");
}

export function decodeToken(token: string): { filter: string; positions: Positions } {
  let raw: unknown;
  try {
    raw = unpackr.unpack(Buffer.from(token, "base64url"));
  } catch {
    throw new GatewayError("INVALID_POSITION", "the resume token is not one this gateway issued");
  }
  const t = TokenSchema.safeParse(raw);
  if (!t.success) throw new GatewayError("INVALID_POSITION", "the resume token is not one this gateway issued");
  return { filter: t.data.f, positions: new Map(Object.entries(t.data.p)) };
}
