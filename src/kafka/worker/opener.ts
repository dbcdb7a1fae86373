/**
 * The Bun Kafka worker's consumer opener (a Web Worker inside the worker process). rd_kafka_new()
 * blocks until librdkafka's own threads have started: 4-27 ms a consumer on this machine kind, and
 * a replay or a share group member is a consumer each. Made on the worker's loop, sixteen replays
 * opened at once held its delivery reports, and so other clients' publish acks, for up to 270 ms.
 * Here only this thread waits; the handle is used from the loop afterwards (librdkafka's API is
 * thread-safe, and a handle belongs to no thread).
 *
 * Messages in: { id, props }; out: { id, rk } or { id, error }.
 */
import { newConsumerHandle } from "../librdkafka";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ id: number; props: Record<string, string | number | boolean> }>) => {
  const { id, props } = e.data;
  try {
    self.postMessage({ id, rk: newConsumerHandle(props).rk });
  } catch (err) {
    self.postMessage({ id, error: String((err as Error)?.message ?? err) });
  }
};
