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
  session?: string;
}

// Distinct allowed (principal, action, topic) remembered for HTTP before the memory starts over.
const HTTP_SEEN_MAX = 10_000;

/**
 * The audit trail: one JSON line (`msg: "audit"`) per decision. Every refusal is written; an allowed
 * decision is written once per connection, action and topic (once per principal, action and topic for
 * HTTP), since one line per event on the publish path would cost more than the publish.
 */
export class Audit {
  private readonly httpSeen = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /** `seen`: the connection's set of decisions already written, for allowed ones. */
  record(d: Decision, seen?: Set<string>): void {
    if (d.outcome === "allow" && d.action !== "authenticate" && d.action !== "refresh") {
      const key = `${d.action}\0${d.topic ?? ""}`;
      const set = seen ?? this.httpSeen;
      const k = seen ? key : `${d.principal}\0${key}`;
      if (set.has(k)) return;
      if (!seen && set.size >= HTTP_SEEN_MAX) set.clear();
      set.add(k);
    }
    (d.outcome === "deny" ? this.logger.warn : this.logger.info)("audit", { ...d });
  }
}
