import type { Logger } from "../observability/logger";

export type AuditAction = "authenticate" | "publish" | "subscribe" | "refresh" | "admin";

export interface Decision {
  principal: string;
  action: AuditAction;
  /** The topic, for publish and subscribe. */
  topic?: string;
  outcome: "allow" | "deny";
  code?: string;
  reason?: string;
  transport: "ws" | "http";
  /** The client's address (as TRUSTED_PROXIES resolve it): who asked, when the principal is anonymous. */
  address?: string;
  session?: string;
  /** For an accepted token over HTTP: its expiry (ms since the epoch), which tells one token from the next. */
  expiresAt?: number;
}

// Distinct allowed (principal, action, topic) remembered for HTTP, and per connection, before the memory starts over.
const HTTP_SEEN_MAX = 10_000;
// Refusals written per kind in each window: (principal, action, topic, code, transport), and for an
// anonymous principal its address too; the rest are counted and written as one line with `repeated`
// at the window's end. A flood of bad tokens answered at once was 272,000 lines (66 MB) in 15 s.
// Without the topic, 30 refused publishes to one topic hid the refusal of another, and one address's
// bad tokens hid everyone else's (outside security tester).
export const AUDIT_DENY_LINES_PER_WINDOW = 20;
// Kinds one principal (or anonymous address) has in a window; past it its refusals of further topics
// count under one kind without a topic, so naming ever new topics cannot write without bound.
export const AUDIT_TOPICS_PER_WINDOW = 50;
export const AUDIT_WINDOW_MS = 10_000;
// Kinds of refusal counted in one window; past it the window ends early.
const DENY_KINDS_MAX = 10_000;

interface DenyWindow {
  written: number;
  repeated: number;
  last: Decision;
  /** The reasons of those counted, and how many had each: one kind (a code) has many reasons. */
  reasons: Map<string, number>;
}

// Distinct reasons counted per kind in a window; past it, the rest count under OTHER_REASONS.
const REASONS_PER_KIND = 16;
const OTHER_REASONS = "(other reasons)";

/**
 * The audit trail: one JSON line (`msg: "audit"`) per decision. Refusals are written up to
 * AUDIT_DENY_LINES_PER_WINDOW of a kind per AUDIT_WINDOW_MS, and the rest of that kind as one line with
 * `repeated` (how many more) at the window's end; an allowed decision is written once per connection,
 * action and topic (once per principal, action and topic for HTTP), since one line per event on the
 * publish path would cost more than the publish.
 */
export class Audit {
  private readonly httpSeen = new Set<string>();
  private readonly denies = new Map<string, DenyWindow>();
  /** Kinds each principal (or anonymous address) has in this window. */
  private readonly kindsOf = new Map<string, number>();
  /** Allowed decisions written for each principal (or anonymous address) in this window, and those past AUDIT_TOPICS_PER_WINDOW counted by action. */
  private readonly allowsOf = new Map<string, { written: number; past: Map<string, { repeated: number; last: Decision }> }>();
  private windowTimer: Timer | null = null;

  constructor(private readonly logger: Logger) {}

  /** Writes what each kind of refusal repeated past its lines, and starts a new window. */
  flush(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    for (const w of this.denies.values()) {
      if (w.repeated === 0) continue;
      // Each reason the counted had, not the last one's as if all had it.
      const { reason: _last, ...kind } = w.last;
      this.logger.warn("audit", { ...kind, reasons: Object.fromEntries(w.reasons), repeated: w.repeated, windowMs: AUDIT_WINDOW_MS });
    }
    for (const a of this.allowsOf.values()) for (const w of a.past.values()) this.logger.info("audit", { ...w.last, repeated: w.repeated, windowMs: AUDIT_WINDOW_MS });
    this.denies.clear();
    this.kindsOf.clear();
    this.allowsOf.clear();
  }

  /**
   * False when the allowed decision is past AUDIT_TOPICS_PER_WINDOW of its principal's in this window:
   * counted, and written as one line per action at the window's end. Each new topic name wrote a line,
   * also for an empty batch, which is no event and no refusal: one principal wrote 3,705 lines a
   * second (outside security tester).
   */
  private writesAllow(d: Decision): boolean {
    const who = d.principal === "anonymous" ? `anonymous\0${d.address ?? ""}` : d.principal;
    let a = this.allowsOf.get(who);
    if (!a) {
      if (this.allowsOf.size >= DENY_KINDS_MAX) this.flush();
      this.allowsOf.set(who, (a = { written: 0, past: new Map() }));
      this.openWindow();
    }
    if (a.written < AUDIT_TOPICS_PER_WINDOW) {
      a.written++;
      return true;
    }
    const kind = `${d.action}\0${d.transport}`;
    const w = a.past.get(kind);
    if (w) {
      w.repeated++;
      w.last = d;
    } else a.past.set(kind, { repeated: 1, last: d });
    return false;
  }

  /** The window's end, once something in it is counted: flush writes the counts. */
  private openWindow(): void {
    this.windowTimer ??= setTimeout(() => this.flush(), AUDIT_WINDOW_MS);
    this.windowTimer.unref?.();
  }

  /** False when the refusal is one too many of its kind in this window: counted, not written. */
  private writes(d: Decision): boolean {
    const who = d.principal === "anonymous" ? `anonymous\0${d.address ?? ""}` : d.principal;
    const rest = `\0${d.action}\0${d.code ?? ""}\0${d.transport}`;
    let kind = `${who}\0${d.topic ?? ""}${rest}`;
    let w = this.denies.get(kind);
    if (!w && d.topic !== undefined && (this.kindsOf.get(who) ?? 0) >= AUDIT_TOPICS_PER_WINDOW) {
      kind = `${who}\0*${rest}`;
      w = this.denies.get(kind);
    }
    if (!w) {
      if (this.denies.size >= DENY_KINDS_MAX) this.flush();
      this.kindsOf.set(who, (this.kindsOf.get(who) ?? 0) + 1);
      this.denies.set(kind, (w = { written: 0, repeated: 0, last: d, reasons: new Map() }));
      this.openWindow();
    }
    if (w.written < AUDIT_DENY_LINES_PER_WINDOW) {
      w.written++;
      return true;
    }
    w.repeated++;
    w.last = d;
    const reason = d.reason ?? "";
    const key = w.reasons.has(reason) || w.reasons.size < REASONS_PER_KIND ? reason : OTHER_REASONS;
    w.reasons.set(key, (w.reasons.get(key) ?? 0) + 1);
    return false;
  }

  /** `seen`: the connection's set of decisions already written, for allowed ones. */
  record(d: Decision, seen?: Set<string>): void {
    // A WebSocket's token is checked once per hello or refresh, and each is written; an HTTP token is
    // checked on every request, and written once per principal and token (told apart by expiry).
    const token = d.action === "authenticate" || d.action === "refresh";
    if (d.outcome === "allow" && !(token && d.transport === "ws")) {
      const key = token ? `${d.action}\0${d.expiresAt ?? ""}` : `${d.action}\0${d.topic ?? ""}`;
      const set = seen ?? this.httpSeen;
      const k = seen ? key : `${d.principal}\0${key}`;
      if (set.has(k)) return;
      // A connection's too: one topic name after another, it grew with each.
      if (set.size >= HTTP_SEEN_MAX) set.clear();
      set.add(k);
      if (!token && !this.writesAllow(d)) return;
    }
    if (d.outcome === "deny" && !this.writes(d)) return;
    (d.outcome === "deny" ? this.logger.warn : this.logger.info)("audit", { ...d });
  }
}
