/**
 * The C structs and constants the Bun binding reads or writes directly, for x86-64/aarch64 Linux
 * (LP64: pointers, size_t and int64 are 8 bytes, aligned to 8). Each is checked against rdkafka.h of
 * librdkafka 2.15.1 (node_modules/@confluentinc/kafka-javascript/build/deps/include/librdkafka/);
 * symbols.ts refuses any other minor version, because a moved field would corrupt memory silently.
 */

/** rdkafka.h:1186-1203 `rd_kafka_vtype_t`. */
export const VType = {
  END: 0,
  TOPIC: 1,
  RKT: 2,
  PARTITION: 3,
  VALUE: 4,
  KEY: 5,
  OPAQUE: 6,
  MSGFLAGS: 7,
  TIMESTAMP: 8,
  HEADER: 9,
  HEADERS: 10,
} as const;

/**
 * rdkafka.h:1212-1234 `rd_kafka_vu_t`: an enum (4 bytes), padding to 8, then a union padded to
 * 64 bytes (`char _pad[64]`): 72 bytes. Union members used: cstr/ptr @8; i32 @8; i64 @8;
 * mem {ptr @8, size @16}; header {name @8, val @16, ssize_t size @24}.
 */
export const VU = {
  SIZE: 72,
  VTYPE: 0,
  U: 8,
  U2: 16,
  U3: 24,
} as const;

/**
 * rdkafka.h:1508-1538 `rd_kafka_message_t`: err i32 @0, rkt @8, partition i32 @16, payload @24,
 * len @32, key @40, key_len @48, offset i64 @56, _private @64 (the producer's per-message opaque).
 */
export const MSG = {
  ERR: 0,
  RKT: 8,
  PARTITION: 16,
  PAYLOAD: 24,
  LEN: 32,
  KEY: 40,
  KEY_LEN: 48,
  OFFSET: 56,
  OPAQUE: 64,
} as const;

/**
 * rdkafka.h:968-980 `rd_kafka_topic_partition_t`: topic @0, partition i32 @8, offset i64 @16,
 * metadata @24, metadata_size @32, opaque @40, err i32 @48, _private @56; 64 bytes.
 */
export const TP = {
  SIZE: 64,
  TOPIC: 0,
  PARTITION: 8,
  OFFSET: 16,
  ERR: 48,
} as const;

/**
 * rdkafka_header.h:55-65 (librdkafka's own, not rdkafka.h) `rd_kafka_header_t`: ser_size @0,
 * value_size @8, name_size @16, value pointer @24, then the name's bytes inline @32. The public
 * rd_kafka_header_get_all() gives the name as a C string only, which a name holding a NUL byte ends
 * early: offsets here are from the name pointer it returns (NAME_SIZE -16, VALUE -8). consumer.ts
 * reads name_size only where the value pointer there equals the one rd_kafka_header_get_all gave.
 */
export const HEADER_BEFORE_NAME = { NAME_SIZE: 16, VALUE: 8 } as const;

/** rdkafka.h:1019-1023 `rd_kafka_topic_partition_list_t`: int cnt @0, int size @4, elems @8. */
export const TPLIST = { CNT: 0, SIZE: 4, ELEMS: 8 } as const;

/**
 * rdkafka.h:6176-6185 `rd_kafka_metadata_t`: broker_cnt @0, brokers @8, topic_cnt @16, topics @24.
 * rdkafka.h:6165-6170 `rd_kafka_metadata_topic_t`: topic @0, partition_cnt @8, partitions @16,
 * err @24; 32 bytes.
 */
export const METADATA = { TOPIC_CNT: 16, TOPICS: 24 } as const;
export const METADATA_TOPIC = { SIZE: 32, NAME: 0, PARTITION_CNT: 8, ERR: 24 } as const;

/** rdkafka.h:209-211 `rd_kafka_type_t`. */
export const RD_KAFKA_PRODUCER = 0;
export const RD_KAFKA_CONSUMER = 1;
/** rdkafka.h:1864-1868 `rd_kafka_conf_res_t`. */
export const RD_KAFKA_CONF_OK = 0;
/** rdkafka.h:4938 `RD_KAFKA_MSG_F_COPY`: librdkafka copies the payload (and key) during the call. */
export const RD_KAFKA_MSG_F_COPY = 2;
/** rdkafka.h:6675-6681 event types. */
export const RD_KAFKA_EVENT_DR = 0x1;
export const RD_KAFKA_EVENT_ERROR = 0x8;
/** rdkafka.h:6688 `RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT`. */
export const RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT = 104;
/** rdkafka.h:8206 `RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS` (the fifth of `rd_kafka_admin_op_t`, from 0). */
export const RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS = 5;
/** rdkafka.h:6715 `RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT`. */
export const RD_KAFKA_EVENT_DESCRIBETOPICS_RESULT = 0x100000;
/** rdkafka.h:8226 `RD_KAFKA_ADMIN_OP_DESCRIBETOPICS` (the nineteenth of `rd_kafka_admin_op_t`, from 0). */
export const RD_KAFKA_ADMIN_OP_DESCRIBETOPICS = 19;
/** rdkafka.h:8991 `RD_KAFKA_RESOURCE_TOPIC` of `rd_kafka_ResourceType_t`. */
export const RD_KAFKA_RESOURCE_TOPIC = 2;
/** rdkafka.h:3443 `RD_KAFKA_PARTITION_UA`: let the configured partitioner choose. */
export const RD_KAFKA_PARTITION_UA = -1;
/** rdkafka.h:1731 `RD_KAFKA_MSG_STATUS_NOT_PERSISTED`: the message was never sent to (or never reached) a broker. */
export const RD_KAFKA_MSG_STATUS_NOT_PERSISTED = 0;
/** rdkafka.h:3909-3917 logical offsets. */
export const OFFSET_BEGINNING = -2;
export const OFFSET_END = -1;
export const OFFSET_STORED = -1000;
export const OFFSET_INVALID = -1001;

/** rdkafka.h:303-426, the error codes the binding acts on. */
export const Err = {
  NO_ERROR: 0,
  MSG_TIMED_OUT: -192,
  PARTITION_EOF: -191,
  TIMED_OUT: -185,
  QUEUE_FULL: -184,
  ALL_BROKERS_DOWN: -187,
  INVALID_ARG: -186,
  STATE: -172,
  UNKNOWN_TOPIC: -188,
  UNKNOWN_TOPIC_OR_PART: 3,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  CLUSTER_AUTHORIZATION_FAILED: 31,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
} as const;
