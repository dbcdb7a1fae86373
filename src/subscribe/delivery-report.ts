import type { Watermark } from "../log/event-log";
import type { SubscriberConnection } from "./manager";
import type { Subscription } from "./subscription";

/** One subscription as the delivery-health view shows it (docs/dashboard.md). */
export interface DeliveryRow {
  connection: string;
  peer: string;
  transport: "ws" | "sse";
  principal: string;
  sub: string;
  /** Its topics, as many as fit TOPICS_SHOWN_CHARS (always the first). */
  topics: string[];
  /** How many topics it has, when `topics` shows fewer. */
  topicsTotal?: number;
  /** The filter in its canonical form (what resume tokens are bound to); a long one as text, its start and length. */
  filter: unknown;
  policy: string;
  share: string | null;
  state: "live" | "replaying" | "ended";
  since: number;
  delivered: number;
  matched: number;
  examined: number;
  queuedBytes: number;
  dropped: number;
  /** A share member's events given to another member when its queue overflowed (not dropped). */
  redealt: number;
  laggedNotices: number;
  slowDisconnects: number;
  /** `gap` frames: records gone from the log (retention, a reset) before it read them. */
  gaps: number;
  /** Records between its position and the partitions' high watermarks; null when unknown (share groups, topics not asked). */
  lag: number | null;
  endedAt?: number;
}

export function rowOf(sub: Subscription, conn: SubscriberConnection): DeliveryRow {
  const topics = shownTopics(sub.topics);
  return {
    connection: conn.info?.connection ?? "",
    peer: conn.info?.peer ?? "",
    transport: conn.info?.transport ?? "ws",
    principal: shownText(conn.info?.principal() ?? "anonymous"),
    sub: sub.id,
    topics,
    ...(topics.length < sub.topics.length ? { topicsTotal: sub.topics.length } : {}),
    filter: shownFilter(sub.filter.identity),
    policy: sub.policy,
    share: sub.shareGroup ?? null,
    state: sub.closed ? "ended" : sub.live ? "live" : "replaying",
    since: sub.since,
    delivered: sub.delivered,
    matched: sub.matched,
    examined: sub.examined,
    queuedBytes: sub.bytesQueued,
    dropped: sub.dropped,
    redealt: sub.redealt,
    laggedNotices: sub.laggedNotices,
    slowDisconnects: sub.slowDisconnects,
    gaps: sub.gaps,
    lag: null,
  };
}

/**
 * What one row may show of what its client chose. A filter is what its client sent, up to a frame
 * (1 MiB) each, and an address may hold a thousand: written whole, one view of them was gigabytes.
 * Sixteen topic names of 249 characters and 2,048 characters of filter made a page of 2,000 rows
 * 9 MB (at ~6,000 subscriptions the largest page cost 156–853 ms of the event loop: outside tester).
 * So a filter longer than this is shown as its start and its length, and topics as the first ones
 * that fit with their count: each says what it is without costing what it costs.
 */
export const FILTER_SHOWN_CHARS = 512;
const TOPICS_SHOWN_CHARS = 512;

function shownFilter(identity: string): unknown {
  return identity.length <= FILTER_SHOWN_CHARS ? JSON.parse(identity) : shownText(identity);
}

function shownText(text: string): string {
  return text.length <= FILTER_SHOWN_CHARS ? text : `${text.slice(0, FILTER_SHOWN_CHARS)}… (${text.length} characters)`;
}

function shownTopics(topics: string[]): string[] {
  let chars = 0;
  let n = 0;
  while (n < topics.length && (n === 0 || chars + topics[n]!.length <= TOPICS_SHOWN_CHARS)) chars += topics[n++]!.length;
  return n === topics.length ? topics : topics.slice(0, n);
}

/** Records the subscription has not read yet, over every partition of its topics; null without positions. */
export function lagOf(sub: Subscription, marks: ReadonlyMap<string, Watermark[]>): number | null {
  if (sub.shared) return null;
  let lag = 0;
  for (const topic of sub.topics) {
    const at = sub.positions.get(topic);
    const m = marks.get(topic);
    if (!at || !m) return null;
    for (let p = 0; p < m.length; p++) lag += Math.max(0, m[p]!.high - (at[p] ?? m[p]!.low));
  }
  return lag;
}

/**
 * Subscriptions that ended having lost events or been disconnected for it, kept a while so the view
 * can still show why: a slow consumer closed 4001 would otherwise vanish from it at once.
 */
export class RecentlyEnded {
  private readonly rows: DeliveryRow[] = [];
  constructor(private readonly max = 50) {}

  note(sub: Subscription, conn: SubscriberConnection): void {
    if (sub.dropped === 0 && sub.slowDisconnects === 0 && sub.gaps === 0) return;
    const row = rowOf(sub, conn);
    row.state = "ended";
    row.endedAt = Date.now();
    row.queuedBytes = 0;
    this.rows.push(row);
    if (this.rows.length > this.max) this.rows.shift();
  }

  list(): DeliveryRow[] {
    return [...this.rows].reverse();
  }
}
