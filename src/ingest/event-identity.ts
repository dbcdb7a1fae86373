/**
 * Which events are the same event, for idempotent publish: as in CloudEvents, the pair (source, id).
 * Two producers that number their events 1, 2, 3 each, under sources of their own, write distinct
 * events; keyed by id alone, the second one's events would be acked as re-sends and never written.
 *
 * An event sent without a source gets the gateway's default for its transport. Those defaults count
 * as one "no source", so that an event first sent over WebSocket and re-sent over HTTP (or read back
 * from the log with either default) is still the same event.
 */
export type Transport = "ws" | "http";

/** The `ce_source` written for an event that names no source. */
export function defaultSource(transport: Transport): string {
  return `/gateway/${transport}`;
}

const DEFAULT_SOURCES: ReadonlySet<string> = new Set((["ws", "http"] as const).map(defaultSource));

// Identities up to this many characters are kept as they are (a UUID id, with a source of a few
// words); a longer one as a digest of fixed size, so that remembering one (IDEMPOTENCE_MAX_IDS of
// them, and those in flight) costs the same however long a client makes its id and source: kept
// whole, 1,282 two-byte characters cost 2.7 KB each, and the bound's 500,000 of them 1.4 GB.
const KEPT_WHOLE = 64;
const digest = new Uint8Array(32);

/**
 * One string per (source, id), unambiguous whatever either contains: the source's length leads.
 * `source` is the event's own (undefined when absent) or a record's `ce_source` header.
 *
 * With authentication on, an event is its principal's (source, id): `author` is the token's
 * subject, written with the event as `ce_authid` (to-record.ts) and read back from it. Keyed by
 * (source, id) alone, a principal that wrote a guessable id first had another principal's event
 * with it acked with the first one's position and never written.
 */
export function eventIdentity(source: string | undefined, id: string, author?: string): string {
  const event = source === undefined || source === "" || DEFAULT_SOURCES.has(source) ? `0:${id}` : `${source.length}:${source}${id}`;
  const whole = author === undefined ? event : `a${author.length}:${author}${event}`;
  return whole.length <= KEPT_WHOLE ? whole : digestOf(whole);
}

/**
 * 128 bits of the identity's SHA-256, as eight UTF-16 code units after a `#`: a whole identity starts
 * with a digit or `a`, so the two kinds never meet. A cryptographic hash, since a client that could make its
 * id collide with another client's would have that one's event acked as a re-send and never written;
 * two of 500,000 remembered ids meet by chance with odds of about 1 in 10^27.
 */
function digestOf(whole: string): string {
  Bun.SHA256.hash(whole, digest);
  const d = digest;
  return `#${String.fromCharCode(d[0]! | (d[1]! << 8), d[2]! | (d[3]! << 8), d[4]! | (d[5]! << 8), d[6]! | (d[7]! << 8), d[8]! | (d[9]! << 8), d[10]! | (d[11]! << 8), d[12]! | (d[13]! << 8), d[14]! | (d[15]! << 8))}`;
}
