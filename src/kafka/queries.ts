import { GatewayError } from "../protocol/errors";
import { IpcType, type Query, jsonMessage } from "./wire/ipc";
import type { WorkerSlot } from "./worker-slot";

interface Pending {
  slot: WorkerSlot;
  deadline: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * Metadata questions in flight to the workers. Each has a deadline of its own: a worker that hangs,
 * or a broker that never answers, must not hold a subscribe request forever.
 */
export class QueryTable {
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  constructor(private readonly timeoutMs: number) {}

  /** Asks one of `candidates` (ready workers that reach a broker), spreading questions over them. */
  ask<T>(candidates: WorkerSlot[], q: Query): Promise<T> {
    if (candidates.length === 0) return Promise.reject(new GatewayError("UNAVAILABLE", "no Kafka worker is connected to Kafka"));
    const slot = candidates[this.seq % candidates.length]!;
    const reqId = ++this.seq;
    const deadline = Date.now() + this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(reqId, { slot, deadline, resolve: resolve as (v: unknown) => void, reject });
      // The worker drops a question whose deadline passes before its turn (wall clocks: same host).
      slot.writer!.write(jsonMessage(IpcType.QUERY, { reqId, deadline, ...q }));
    });
  }

  answered(msg: { reqId?: unknown; error?: unknown; result?: unknown; denied?: unknown }): void {
    const p = this.pending.get(Number(msg.reqId));
    if (!p) return; // answered after its deadline: the caller has had its error
    this.pending.delete(Number(msg.reqId));
    if (msg.error && msg.denied === true) p.reject(new GatewayError("KAFKA_DENIED", `Kafka's ACLs refuse the gateway's own principal: ${msg.error}`));
    else if (msg.error) p.reject(new GatewayError("UNAVAILABLE", `Kafka metadata request failed: ${msg.error}`));
    else p.resolve(msg.result);
  }

  /** Fails every question whose deadline has passed (queries are in deadline order). */
  expire(now: number): void {
    for (const [id, p] of this.pending) {
      if (p.deadline > now) return;
      this.pending.delete(id);
      p.reject(new GatewayError("UNAVAILABLE", `Kafka metadata request got no answer within ${this.timeoutMs} ms`));
    }
  }

  /** The worker is gone: its questions will not be answered. */
  slotLost(slot: WorkerSlot, reason: string): void {
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(new GatewayError("UNAVAILABLE", `the Kafka worker exited (${reason}) before answering`));
    }
  }
}
