import { KafkaError } from "./errors";
import { Err, RD_KAFKA_CONF_OK } from "./layout";
import { cstr } from "./memory";
import { rdk } from "./symbols";

export type KafkaProps = Record<string, string | number | boolean>;

const ERRSTR_SIZE = 512;

/**
 * A `rd_kafka_conf_t` filled from librdkafka properties. Ownership passes to rd_kafka_new() when it
 * succeeds; until then `destroy()` frees it.
 */
export class Conf {
  handle: number;

  constructor(props: KafkaProps, events = 0) {
    const lib = rdk();
    this.handle = lib.rd_kafka_conf_new() as number;
    const errstr = Buffer.alloc(ERRSTR_SIZE);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined) continue;
      const res = lib.rd_kafka_conf_set(this.handle as never, cstr(name), cstr(String(value)), errstr, ERRSTR_SIZE);
      if (res !== RD_KAFKA_CONF_OK) {
        this.destroy();
        throw new KafkaError(Err.INVALID_ARG, `invalid Kafka setting ${name}: ${cString(errstr)}`);
      }
    }
    // No log callback: librdkafka then logs nothing (its default prints every line to stderr, one per
    // reconnect attempt of every client during an outage). What matters reaches the application
    // as error events, which the worker reports coalesced. An operator who sets `debug` asked for
    // those lines, and gets them on the worker's stderr (the gateway's); setting it did nothing
    // before. librdkafka redacts its secret properties there itself (test/kafka/sasl).
    if (!props.debug) lib.rd_kafka_conf_set_log_cb(this.handle as never, null);
    // Events the application polls for; without RD_KAFKA_EVENT_DR set here, delivery reports would
    // need a callback on a librdkafka thread.
    if (events) lib.rd_kafka_conf_set_events(this.handle as never, events);
  }

  destroy(): void {
    if (this.handle) rdk().rd_kafka_conf_destroy(this.handle as never);
    this.handle = 0;
  }
}

/** The NUL-terminated text librdkafka wrote into an error-string buffer. */
export function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString("utf8", 0, end < 0 ? buf.length : end);
}
