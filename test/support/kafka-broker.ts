/**
 * Test access to Kafka that does not go through the gateway: the broker itself
 * (scripts/kafka/broker.ts) and an independent consumer, kcat (librdkafka's CLI, from Debian).
 */
export { ensureTopic, startBroker } from "../../scripts/kafka/broker";

export interface ConsumedRecord {
  partition: number;
  offset: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Record<string, string>;
}

// Lengths first, so binary keys and values (msgpack) are cut exactly, whatever bytes they hold.
const FORMAT = "%p %o %K %S\n%k%s\n%h\n";

/**
 * Reads every record of `topic` from the beginning with kcat. With `expect`, reads again until at
 * least that many are there (or the time runs out), for records acked a moment ago.
 */
export async function consumeAll(brokers: string, topic: string, opts: { expect?: number; timeoutMs?: number } = {}): Promise<ConsumedRecord[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (true) {
    const proc = Bun.spawn(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", FORMAT], { stdout: "pipe", stderr: "pipe" });
    const out = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
    const code = await proc.exited;
    const records = code === 0 ? parse(out) : [];
    if (records.length >= (opts.expect ?? 0) && (code === 0 || opts.expect === undefined)) {
      if (code === 0 || Date.now() > deadline) return records;
    }
    if (Date.now() > deadline) return records;
    await Bun.sleep(300);
  }
}

function parse(out: Uint8Array): ConsumedRecord[] {
  const records: ConsumedRecord[] = [];
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  let pos = 0;
  const line = () => {
    const nl = buf.indexOf(10, pos);
    const s = buf.toString("utf8", pos, nl);
    pos = nl + 1;
    return s;
  };
  const take = (n: number) => {
    if (n < 0) return null;
    const v = new Uint8Array(buf.subarray(pos, pos + n));
    pos += n;
    return v;
  };
  while (pos < buf.length) {
    const [p, o, k, s] = line().split(" ").map(Number) as [number, number, number, number];
    const key = take(k);
    const value = take(s);
    pos++; // the newline after the value
    const headers: Record<string, string> = {};
    for (const pair of line().split(",")) {
      const eq = pair.indexOf("=");
      if (eq > 0) headers[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    records.push({ partition: p, offset: o, key, value, headers });
  }
  return records;
}
