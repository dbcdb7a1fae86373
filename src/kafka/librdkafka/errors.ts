import { rdk } from "./symbols";

/** A librdkafka error: its numeric code (rd_kafka_resp_err_t), symbolic name and description. */
export class KafkaError extends Error {
  override readonly name = "KafkaError";
  constructor(
    readonly code: number,
    message: string,
    readonly retriable = false,
    readonly fatal = false,
  ) {
    super(message);
  }
  /** librdkafka's symbolic name without the ERR_ prefix, e.g. "_MSG_TIMED_OUT". */
  get errName(): string {
    return errName(this.code);
  }
}

const names = new Map<number, string>();

/** rd_kafka_err2name: "_QUEUE_FULL", "UNKNOWN_TOPIC_OR_PART", …; cached, codes are few. */
export function errName(code: number): string {
  let n = names.get(code);
  if (n === undefined) {
    n = String(rdk().rd_kafka_err2name(code) ?? `ERR_${code}`);
    names.set(code, n);
  }
  return n;
}

/** rd_kafka_err2str: the human description of a code. */
export function errString(code: number): string {
  return String(rdk().rd_kafka_err2str(code) ?? `error ${code}`);
}

/** Throws a KafkaError for a non-zero rd_kafka_resp_err_t. */
export function check(code: number, what: string): void {
  if (code !== 0) throw new KafkaError(code, `${what}: ${errString(code)}`);
}

/**
 * Converts an `rd_kafka_error_t *` (or null) into a KafkaError and destroys it; null stays null.
 * The pointer must not be used afterwards.
 */
export function takeError(p: number | null, what: string): KafkaError | null {
  if (!p) return null;
  const lib = rdk();
  const e = new KafkaError(lib.rd_kafka_error_code(p as never), `${what}: ${lib.rd_kafka_error_string(p as never)}`, lib.rd_kafka_error_is_retriable(p as never) !== 0);
  lib.rd_kafka_error_destroy(p as never);
  return e;
}
