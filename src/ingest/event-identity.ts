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

/**
 * One string per (source, id), unambiguous whatever either contains: the source's length leads.
 * `source` is the event's own (undefined when absent) or a record's `ce_source` header.
 */
export function eventIdentity(source: string | undefined, id: string): string {
  return source === undefined || source === "" || DEFAULT_SOURCES.has(source) ? `0:${id}` : `${source.length}:${source}${id}`;
}
