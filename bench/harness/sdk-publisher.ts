import { type GatewayClient, connect } from "kafka-ws-gateway/client";
import type { FrameShape } from "./frames";
import type { AckSink, LoadConnection } from "./publisher";

/**
 * One load-generating connection through the client SDK (`kafka-ws-gateway/client`), as an
 * application publishes: one `publish()` per event, each its own promise, with the SDK's batching,
 * window, pacing to the gateway's advertised rates, retries with the same ids, and reconnects.
 * Each event's data starts with its intended send time, as the raw client's does, so subscribers
 * measure publish → delivery latency the same way.
 *
 * It costs its process about 10–13 µs of CPU per event more than the raw client (bench/RESULTS.md,
 * "The client SDK beside the raw harness client"): past what one process can build, use more
 * processes, or `--client raw` to measure the gateway and not the client.
 */
export class SdkPublisherConnection implements LoadConnection {
  inflightEvents = 0;
  closed = false;
  private next = 0;
  /** Set by failAll: what settles afterwards was already counted. */
  private abandoned = false;
  private readonly typeOf: (n: number) => string;

  private constructor(
    private readonly client: GatewayClient,
    private readonly shape: FrameShape,
    private readonly sink: AckSink,
    private readonly onDrained: () => void,
  ) {
    this.typeOf = shape.typeOf ?? (() => "bench.event");
  }

  static async open(url: string, shape: FrameShape, sink: AckSink, onDrained: () => void = () => {}): Promise<SdkPublisherConnection> {
    if (shape.payloadBytes < 8) throw new Error("--payload must be at least 8 bytes (the send-time stamp)");
    return new SdkPublisherConnection(await connect({ url }), shape, sink, onDrained);
  }

  /** The gateway's per-connection window, from its welcome. */
  get window(): number {
    return this.client.limits.window;
  }

  /** Events published and not settled: the SDK answers per event, not per frame. */
  get pendingFrames(): number {
    return this.inflightEvents;
  }

  /** Publishes the next `batch` events; `intendedAt` is when the schedule wanted them sent (performance.now() ms). */
  send(intendedAt: number): number {
    const { batch, payloadBytes, keys, topic } = this.shape;
    const sendAtEpochMs = performance.timeOrigin + intendedAt;
    for (let i = 0; i < batch; i++) {
      const n = this.next++;
      const data = new Uint8Array(payloadBytes).fill(120);
      new DataView(data.buffer).setFloat64(0, sendAtEpochMs);
      this.inflightEvents++;
      this.client.publish({ type: this.typeOf(n), key: `k${n % keys}`, data }, { topic }).then(
        () => this.settle(intendedAt, undefined),
        (e: { code?: string }) => this.settle(intendedAt, e.code ?? "ERROR"),
      );
    }
    return batch;
  }

  /** Counts every unsettled event as failed with `code` (the drain timed out). */
  failAll(code: string): void {
    if (this.inflightEvents === 0) return;
    const now = performance.now();
    this.sink.answered(now, now, this.inflightEvents, this.inflightEvents, code);
    this.inflightEvents = 0;
    this.abandoned = true;
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  private settle(intendedAt: number, code: string | undefined): void {
    if (this.abandoned) return;
    this.inflightEvents--;
    this.sink.answered(intendedAt, performance.now(), 1, code ? 1 : 0, code);
    this.onDrained();
  }
}
