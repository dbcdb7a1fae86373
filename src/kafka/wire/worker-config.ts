/**
 * A worker's exit code when it cannot start with what it was given (librdkafka refused a property, or
 * could not be loaded), after one line on stderr saying why: every restart would fail the same way.
 */
export const WORKER_CONFIG_REFUSED = 3;

/** What the gateway hands a Kafka worker process at start (KGW_WORKER_CONFIG, JSON). */
export interface WorkerConfig {
  socketPath: string;
  workerIndex: number;
  token: string;
  producer: Record<string, string | number | boolean>;
  /** Properties every reader's consumer starts from (brokers, client id, security). */
  consumer: Record<string, string | number | boolean>;
  /** What a bulk reader's consumer (ReaderOptions.bulk) sets on top of `consumer`. */
  bulkConsumer: Record<string, string | number | boolean>;
  /** How long one broker probe (a metadata request) may take before it counts as failed. */
  probeTimeoutMs: number;
  /**
   * The gateway pings several times within its ping timeout: nothing from it for this long means it
   * is stopped or wedged, and the worker leaves (see main.ts).
   */
  gatewaySilentMs: number;
  /**
   * How often the worker's poll loop says it runs (a PONG of its own), however many of the gateway's
   * messages are queued ahead of its PINGs: a loop that turns is not hung. A native call that never
   * returns stops the loop, and these with it.
   */
  aliveEveryMs: number;
}
