import { writeUtf8 } from "./utf8";

/**
 * Kafka's murmur2, bit for bit as the Java client computes it, so that the embedded log places keys
 * in the same partitions as librdkafka's `murmur2_random` and every Java producer.
 */
export function murmur2(key: Uint8Array | string): number {
  let data: Uint8Array;
  let length: number;
  if (typeof key !== "string") {
    data = key;
    length = key.length;
  } else if (key.length * 3 <= scratch.length) {
    // Hash a string key through a reused buffer: no allocation per record.
    data = scratch;
    length = writeUtf8(scratch, 0, key);
  } else {
    data = Buffer.from(key);
    length = data.length;
  }
  return murmur2Bytes(data, length);
}

const scratch = Buffer.allocUnsafe(3 * 1024);

function murmur2Bytes(data: Uint8Array, length: number): number {
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16;
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8;
    // falls through
    case 1:
      h ^= data[whole]!;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition a keyed record goes to, as in Kafka's default partitioner. */
export function partitionForKey(key: Uint8Array | string, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}
