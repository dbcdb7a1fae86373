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
}
