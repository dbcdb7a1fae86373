/** librdkafka through bun:ffi: see symbols.ts (loading, version check) and layout.ts (structs). */
export { describeTopicConfigs, describeTopicIds, type TopicConfigAnswer, type TopicIdAnswer } from "./admin";
export { Client, MetadataQueries, destroyHandle, PartitionList, QUERY_TIMEOUT_MS } from "./client";
export { Conf, type KafkaProps } from "./conf";
export { Consumer, ConsumerHandle, type ConsumedMessage, MessageBatch, newConsumerHandle, type TopicPartitionOffset } from "./consumer";
export { check, errName, errString, KafkaError } from "./errors";
export { Err, OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, RD_KAFKA_PARTITION_UA } from "./layout";
export { addressOf, copyOut, cstr, readString } from "./memory";
export { type DeliveryVisitor, EMPTY_ADDR, type ProduceRecord, Producer } from "./producer";
export { libraryPath, rdk, versionString } from "./symbols";
export { VuBatch, type VuProducer } from "./vu-batch";
