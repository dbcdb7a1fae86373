import { type GatewayClient, type PublishResult, connect } from "../../src/client";

/** Where an ack put its event. */
export const at = (f: PublishResult) => ({ partition: f.partition, offset: f.offset });

/** One attempt per event: a retry by the SDK would be one more re-send, and the tests' counts are exact. */
export const client = (url: string): Promise<GatewayClient> => connect({ url, maxAttempts: 1 });

/** Acks of a publishBatch, in order; any refusal fails the test. */
export async function acks(c: GatewayClient, events: Parameters<GatewayClient["publish"]>[0][], topic: string): Promise<PublishResult[]> {
  return (await c.publishBatch(events, { topic })).map((r) => {
    if (r.status === "rejected") throw r.reason;
    return r.value;
  });
}
