import type { GatewayError } from "../protocol/errors";

/** One record as it will sit in Kafka. Values are already encoded; string headers are UTF-8. */
export interface LogRecord {
  topic: string;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<[name: string, value: string | Uint8Array]>;
  timestamp: number;
}

/**
 * Results of one append, column by column (no object per event). For record i: either
 * `errors?.[i]` is set, or `partitions[i]`/`offsets[i]` say where it landed.
 */
export interface AppendResults {
  partitions: Int32Array;
  offsets: Float64Array;
  errors: Array<GatewayError | undefined> | null;
}

export interface LogHealth {
  kind: "memory" | "kafka";
  ready: boolean;
  [detail: string]: unknown;
}

/**
 * Where events go. The gateway never blocks on it: append hands records over and the promise
 * settles (never rejects) once every record has a durable position or an error. Two adapters:
 * `memory` (embedded, the default) and `kafka` (the Node worker pool).
 */
export interface EventLog {
  readonly kind: "memory" | "kafka";
  start(): Promise<void>;
  append(records: LogRecord[]): Promise<AppendResults>;
  isReady(): boolean;
  health(): LogHealth;
  /** Stops taking records, settles everything in flight, releases resources. */
  close(timeoutMs?: number): Promise<void>;
}

export function newResults(n: number): AppendResults {
  return { partitions: new Int32Array(n), offsets: new Float64Array(n), errors: null };
}

export function setError(results: AppendResults, i: number, error: GatewayError): void {
  results.partitions[i] = -1;
  results.offsets[i] = -1;
  (results.errors ??= new Array(results.partitions.length))[i] = error;
}
