/**
 * The librdkafka symbols the Bun binding calls, loaded with bun:ffi from the copy that the installed
 * @confluentinc/kafka-javascript package built (the same library its Node addon loads; Debian's
 * librdkafka1, which kcat pulls in, is older and is never used).
 *
 * Nothing here registers a callback: librdkafka's threads never run JavaScript. Delivery reports,
 * errors and consumed records are all polled from queues on the JS thread (see producer.ts,
 * consumer.ts).
 */
import { dlopen, FFIType } from "bun:ffi";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { GatewayError } from "../../protocol/errors";

// 64-bit results use i64_fast (a number while it fits in 2^53), so no BigInt is made on the hot path.
const { ptr, i32, i64, u64, void: none, cstring, i64_fast } = FFIType;

/** build/deps/librdkafka.so.1 of the installed @confluentinc/kafka-javascript. */
export function libraryPath(): string {
  const pkg = createRequire(import.meta.url).resolve("@confluentinc/kafka-javascript/package.json");
  return join(dirname(pkg), "build", "deps", "librdkafka.so.1");
}

const symbols = {
  rd_kafka_version: { args: [], returns: i32 },
  rd_kafka_version_str: { args: [], returns: cstring },
  rd_kafka_err2name: { args: [i32], returns: cstring },
  rd_kafka_err2str: { args: [i32], returns: cstring },

  rd_kafka_conf_new: { args: [], returns: ptr },
  rd_kafka_conf_set: { args: [ptr, ptr, ptr, ptr, u64], returns: i32 },
  rd_kafka_conf_destroy: { args: [ptr], returns: none },
  rd_kafka_conf_set_events: { args: [ptr, i32], returns: none },
  rd_kafka_conf_set_log_cb: { args: [ptr, ptr], returns: none },

  rd_kafka_new: { args: [i32, ptr, ptr, u64], returns: ptr },
  rd_kafka_destroy: { args: [ptr], returns: none },
  rd_kafka_destroy_flags: { args: [ptr, i32], returns: none },
  rd_kafka_outq_len: { args: [ptr], returns: i32 },
  rd_kafka_fatal_error: { args: [ptr, ptr, u64], returns: i32 },

  rd_kafka_produceva: { args: [ptr, ptr, u64], returns: ptr },
  rd_kafka_error_code: { args: [ptr], returns: i32 },
  rd_kafka_error_string: { args: [ptr], returns: cstring },
  rd_kafka_error_is_retriable: { args: [ptr], returns: i32 },
  rd_kafka_error_destroy: { args: [ptr], returns: none },

  rd_kafka_queue_get_main: { args: [ptr], returns: ptr },
  rd_kafka_queue_get_consumer: { args: [ptr], returns: ptr },
  rd_kafka_queue_poll: { args: [ptr, i32], returns: ptr },
  rd_kafka_queue_destroy: { args: [ptr], returns: none },
  rd_kafka_event_type: { args: [ptr], returns: i32 },
  rd_kafka_event_message_array: { args: [ptr, ptr, u64], returns: i64_fast },
  rd_kafka_event_error: { args: [ptr], returns: i32 },
  rd_kafka_event_error_string: { args: [ptr], returns: cstring },
  rd_kafka_event_error_is_fatal: { args: [ptr], returns: i32 },
  rd_kafka_event_destroy: { args: [ptr], returns: none },

  rd_kafka_poll_set_consumer: { args: [ptr], returns: i32 },
  rd_kafka_assign: { args: [ptr, ptr], returns: i32 },
  rd_kafka_incremental_assign: { args: [ptr, ptr], returns: ptr },
  rd_kafka_incremental_unassign: { args: [ptr, ptr], returns: ptr },
  // rd_kafka_resp_err_t rd_kafka_offsets_store(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *offsets)
  rd_kafka_offsets_store: { args: [ptr, ptr], returns: i32 },
  rd_kafka_subscribe: { args: [ptr, ptr], returns: i32 },
  // rd_kafka_resp_err_t rd_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *partitions, int timeout_ms)
  rd_kafka_committed: { args: [ptr, ptr, i32], returns: i32 },
  // rd_kafka_resp_err_t rd_kafka_position(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *partitions)
  rd_kafka_position: { args: [ptr, ptr], returns: i32 },
  // rd_kafka_resp_err_t rd_kafka_commit(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *offsets, int async)
  rd_kafka_commit: { args: [ptr, ptr, i32], returns: i32 },
  rd_kafka_consumer_close: { args: [ptr], returns: i32 },
  rd_kafka_consumer_close_queue: { args: [ptr, ptr], returns: ptr },
  rd_kafka_consumer_closed: { args: [ptr], returns: i32 },
  rd_kafka_consume_batch_queue: { args: [ptr, i32, ptr, u64], returns: i64_fast },
  rd_kafka_message_destroy: { args: [ptr], returns: none },
  rd_kafka_message_timestamp: { args: [ptr, ptr], returns: i64_fast },
  rd_kafka_message_headers: { args: [ptr, ptr], returns: i32 },
  // rd_kafka_msg_status_t rd_kafka_message_status(const rd_kafka_message_t *rkmessage)
  rd_kafka_message_status: { args: [ptr], returns: i32 },
  rd_kafka_header_cnt: { args: [ptr], returns: u64 },
  rd_kafka_header_get_all: { args: [ptr, u64, ptr, ptr, ptr], returns: i32 },
  rd_kafka_topic_name: { args: [ptr], returns: ptr },

  rd_kafka_topic_partition_list_new: { args: [i32], returns: ptr },
  rd_kafka_topic_partition_list_add: { args: [ptr, ptr, i32], returns: ptr },
  rd_kafka_topic_partition_list_destroy: { args: [ptr], returns: none },
  // int64 arguments take a JS number (exact below 2^53): no BigInt is made.
  rd_kafka_topic_partition_list_set_offset: { args: [ptr, ptr, i32, i64], returns: i32 },

  rd_kafka_metadata: { args: [ptr, i32, ptr, ptr, i32], returns: i32 },
  rd_kafka_metadata_destroy: { args: [ptr], returns: none },
  rd_kafka_clusterid: { args: [ptr, i32], returns: ptr },
  rd_kafka_mem_free: { args: [ptr, ptr], returns: none },
  rd_kafka_topic_new: { args: [ptr, ptr, ptr], returns: ptr },
  rd_kafka_topic_destroy: { args: [ptr], returns: none },
  rd_kafka_query_watermark_offsets: { args: [ptr, ptr, i32, ptr, ptr, i32], returns: i32 },
  rd_kafka_offsets_for_times: { args: [ptr, ptr, i32], returns: i32 },

  // Admin: DescribeConfigs, answered on a queue of its own (admin.ts).
  rd_kafka_queue_new: { args: [ptr], returns: ptr },
  rd_kafka_AdminOptions_new: { args: [ptr, i32], returns: ptr },
  rd_kafka_AdminOptions_set_request_timeout: { args: [ptr, i32, ptr, u64], returns: i32 },
  rd_kafka_AdminOptions_destroy: { args: [ptr], returns: none },
  rd_kafka_ConfigResource_new: { args: [i32, ptr], returns: ptr },
  rd_kafka_ConfigResource_destroy: { args: [ptr], returns: none },
  rd_kafka_ConfigResource_name: { args: [ptr], returns: ptr },
  rd_kafka_ConfigResource_error: { args: [ptr], returns: i32 },
  rd_kafka_ConfigResource_configs: { args: [ptr, ptr], returns: ptr },
  rd_kafka_ConfigEntry_name: { args: [ptr], returns: ptr },
  rd_kafka_ConfigEntry_value: { args: [ptr], returns: ptr },
  rd_kafka_DescribeConfigs: { args: [ptr, ptr, u64, ptr, ptr], returns: none },
  rd_kafka_event_DescribeConfigs_result: { args: [ptr], returns: ptr },
  rd_kafka_DescribeConfigs_result_resources: { args: [ptr, ptr], returns: ptr },
  // Admin: DescribeTopics, for a topic's id (admin.ts).
  rd_kafka_TopicCollection_of_topic_names: { args: [ptr, u64], returns: ptr },
  rd_kafka_TopicCollection_destroy: { args: [ptr], returns: none },
  rd_kafka_DescribeTopics: { args: [ptr, ptr, ptr, ptr], returns: none },
  rd_kafka_event_DescribeTopics_result: { args: [ptr], returns: ptr },
  rd_kafka_DescribeTopics_result_topics: { args: [ptr, ptr], returns: ptr },
  rd_kafka_TopicDescription_name: { args: [ptr], returns: ptr },
  rd_kafka_TopicDescription_topic_id: { args: [ptr], returns: ptr },
  rd_kafka_TopicDescription_error: { args: [ptr], returns: ptr },
  rd_kafka_Uuid_base64str: { args: [ptr], returns: ptr },
} as const;

/**
 * librdkafka versions whose struct layouts (layout.ts) were checked against their rdkafka.h.
 * RD_KAFKA_VERSION is 0xMMmmrrxx; only major.minor is compared, patch releases keep the ABI.
 */
export const VERIFIED_MIN = 0x020f0000; // 2.15.0
export const VERIFIED_MAX = 0x020fffff; // 2.15.x

export type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

let lib: Lib | null = null;

/**
 * The loaded library; the first call opens it and refuses, with one line, a version whose struct
 * layouts were not verified (a silent layout change would corrupt memory, not fail).
 */
export function rdk(): Lib {
  if (lib) return lib;
  const path = libraryPath();
  let opened: Lib;
  try {
    opened = dlopen(path, symbols).symbols;
  } catch (e) {
    throw new GatewayError("UNAVAILABLE", `librdkafka: cannot load ${path}: ${String((e as Error)?.message ?? e).split("\n")[0]}`);
  }
  assertVerifiedVersion(opened.rd_kafka_version(), String(opened.rd_kafka_version_str()), path);
  lib = opened;
  return lib;
}

/** Throws the one-line refusal for a librdkafka whose layouts were not verified (see VERIFIED_*). */
export function assertVerifiedVersion(version: number, versionStr: string, path: string): void {
  if (version >= VERIFIED_MIN && version <= VERIFIED_MAX) return;
  throw new GatewayError("UNAVAILABLE", `librdkafka ${versionStr} at ${path} is outside the versions whose struct layouts the Bun binding verified (2.15.x)`);
}

/** The version string of the loaded library, e.g. "2.15.1". */
export function versionString(): string {
  return String(rdk().rd_kafka_version_str());
}
