/**
 * Kafka access for tests that does not go through the gateway: a real broker (scripts/kafka/start-broker,
 * so the tests and a developer's shell start it the same way), Kafka's admin requests (./kafka-admin.ts)
 * and its own command-line tools, and an independent consumer, kcat (librdkafka's CLI from Debian),
 * to check what actually landed in Kafka.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { adminOf } from "./kafka-admin";

const root = resolve(import.meta.dir, "../..");
const scripts = join(root, "scripts/kafka");

export interface Broker {
  /** The PLAINTEXT listener (tools and kcat use it even when authenticated listeners exist). */
  brokers: string;
  /** The SASL_PLAINTEXT listener, when started with env KAFKA_SCRAM_USERS. */
  saslBrokers?: string;
  /** The SASL_SSL listener, when started with env KAFKA_SCRAM_USERS and KAFKA_SSL_PEM. */
  saslSslBrokers?: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

export interface ConsumedRecord {
  partition: number;
  offset: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Record<string, string>;
}

/**
 * Starts a single-node KRaft broker on free loopback ports, with its files in `dir` (default: a fresh temp dir).
 * `env` reaches the script: KAFKA_PORT/KAFKA_CONTROLLER_PORT fix the ports and KAFKA_KEEP_DATA=1 reuses
 * the dir's data, which together restart a killed broker as the same broker. KAFKA_SCRAM_USERS and
 * KAFKA_SSL_PEM add SASL_PLAINTEXT and SASL_SSL listeners (see the script). Retention is checked every
 * second (KAFKA_RETENTION_CHECK_MS), not every five minutes: a test that writes records retention
 * would delete (a timestamp more than 7 days old) finds them gone every run, not one run in hundreds.
 */
export async function startBroker(opts: { dir?: string; env?: Record<string, string> } = {}): Promise<Broker> {
  const dir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), "kgw-kafka-"));
  const proc = Bun.spawn(["bash", join(scripts, "start-broker"), dir], { stdout: "pipe", stderr: "pipe", env: { ...process.env, KAFKA_RETENTION_CHECK_MS: "1000", ...opts.env } });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const brokers = /^KAFKA_BROKERS=(\S+)$/m.exec(out)?.[1];
  if (code !== 0 || !brokers) throw new Error(`scripts/kafka/start-broker ${dir} failed (exit ${code}):\n${err}${out}`);
  const pid = Number(readFileSync(join(dir, "broker.pid"), "utf8"));

  // The JVM is detached (nohup) and ignores SIGINT (a background job of a script), so nothing else
  // would end it if the test process exits without calling stop().
  const killOnExit = () => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  };
  process.on("exit", killOnExit);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.off("exit", killOnExit);
      await Bun.spawn(["bash", join(scripts, "stop-broker"), dir], { stdout: "ignore", stderr: "inherit" }).exited;
      rmSync(dir, { recursive: true, force: true });
    })());
  const saslBrokers = /^KAFKA_SASL_BROKERS=(\S+)$/m.exec(out)?.[1];
  const saslSslBrokers = /^KAFKA_SASL_SSL_BROKERS=(\S+)$/m.exec(out)?.[1];
  return { brokers, saslBrokers, saslSslBrokers, pid, dir, stop };
}

/**
 * The environment that starts a broker again on `broker`'s ports (with KAFKA_KEEP_DATA=1, as the same
 * broker; without it, a new cluster at the same address).
 */
export function samePorts(broker: Broker): { KAFKA_PORT: string; KAFKA_CONTROLLER_PORT: string } {
  const controller = /CONTROLLER:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(join(broker.dir, "server.properties"), "utf8"))![1]!;
  return { KAFKA_PORT: broker.brokers.split(":")[1]!, KAFKA_CONTROLLER_PORT: controller };
}

// C1 only and the serial GC: the tool's JVM lives a second, and starts ~2.5x faster that way.
const shortJvm = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", join(root, ".cache/kafka/libs/*")];

/**
 * Creates `topic` with exactly `partitions` partitions (Kafka's CreateTopics) and waits until the
 * broker's metadata shows them all with a leader, so a producer started next sees every partition.
 */
export async function ensureTopic(brokers: string, topic: string, partitions: number, configs: Record<string, string> = {}): Promise<void> {
  const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
  // False (not an error) when the topic exists: as TopicCommand's --if-not-exists; its count is checked below.
  await (await adminOf(brokers)).createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1, configEntries }], waitForLeaders: false }).catch((e: unknown) => {
    throw new Error(`creating topic ${topic} failed: ${String((e as Error)?.message ?? e)}`);
  });

  const deadline = Date.now() + 15_000;
  for (;;) {
    const md = Bun.spawnSync(["kcat", "-L", "-J", "-b", brokers, "-t", topic, "-m", "5"], { stdout: "pipe", stderr: "pipe" });
    const parts: Array<{ leader: number }> = md.exitCode === 0 ? (JSON.parse(md.stdout.toString()).topics?.[0]?.partitions ?? []) : [];
    // --if-not-exists also succeeds for an existing topic with another count; say so instead of
    // letting a partitioning assertion fail mysteriously later.
    // A new topic's partitions appear in one metadata batch, so any other non-zero count is an old topic.
    if (parts.length > 0 && parts.length !== partitions) throw new Error(`topic ${topic} already exists with ${parts.length} partitions, not ${partitions}`);
    if (parts.length === partitions && parts.every((p) => p.leader >= 0)) return;
    if (Date.now() > deadline) throw new Error(`topic ${topic}: ${parts.length}/${partitions} partitions with a leader after 15 s`);
    await Bun.sleep(100);
  }
}

/** Raises `topic`'s partitions to `total` (Kafka's CreatePartitions, as kafka-topics --alter), and waits until each has a leader. */
export async function addPartitions(brokers: string, topic: string, total: number): Promise<void> {
  await (await adminOf(brokers)).createPartitions({ topicPartitions: [{ topic, count: total }] }).catch((e: unknown) => {
    throw new Error(`adding partitions to ${topic} failed: ${String((e as Error)?.message ?? e)}`);
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const md = Bun.spawnSync(["kcat", "-L", "-J", "-b", brokers, "-t", topic, "-m", "5"], { stdout: "pipe", stderr: "pipe" });
    const parts: Array<{ leader: number }> = md.exitCode === 0 ? (JSON.parse(md.stdout.toString()).topics?.[0]?.partitions ?? []) : [];
    if (parts.length === total && parts.every((p) => p.leader >= 0)) return;
    if (Date.now() > deadline) throw new Error(`topic ${topic}: ${parts.length}/${total} partitions with a leader 15 s after adding them`);
    await Bun.sleep(100);
  }
}

/** Sets `topic`'s own configs (kafka-configs --alter --add-config), as an operator changing them under the gateway. */
export async function alterTopicConfigs(brokers: string, topic: string, configs: Record<string, string>): Promise<void> {
  const pairs = Object.entries(configs).map(([name, value]) => `${name}=${value}`).join(",");
  await kafkaTool(`altering ${topic}'s configs`, ["kafka.admin.ConfigCommand", "--bootstrap-server", brokers, "--alter", "--entity-type", "topics", "--entity-name", topic, "--add-config", pairs]);
}

/** Runs one of Kafka's command-line tools (org.apache.kafka.tools.*) to completion; throws with its output on failure. */
async function kafkaTool(what: string, args: string[]): Promise<void> {
  const proc = Bun.spawn([...shortJvm, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${what} failed (exit ${code}):\n${err}${out}`);
}

/**
 * Deletes the records of each partition before the given offset (Kafka's DeleteRecords, what retention
 * does to old segments), so the partition's log start moves there at once.
 */
export async function deleteRecords(brokers: string, topic: string, before: Record<number, number>): Promise<void> {
  const file = join(mkdtempSync(join(tmpdir(), "kgw-delete-")), "offsets.json");
  await Bun.write(file, JSON.stringify({ version: 1, partitions: Object.entries(before).map(([partition, offset]) => ({ topic, partition: Number(partition), offset })) }));
  try {
    await kafkaTool(`deleting records of ${topic}`, ["org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", brokers, "--offset-json-file", file]);
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Deletes `topic`, and waits until the broker's metadata no longer has it, or has it again empty: a
 * producer that still names it (a gateway's worker) may create it again the moment it is gone. The
 * topic is looked for in the list of all topics: asking for it by name would auto-create it
 * (auto.create.topics.enable), which made this wait see the topic forever now and then.
 */
export async function deleteTopic(brokers: string, topic: string): Promise<void> {
  const listedBefore = listedPartitions(brokers, topic);
  const before = listedBefore ? endOffsets(brokers, topic, listedBefore) : -1;
  await (await adminOf(brokers)).deleteTopics({ topics: [topic] }).catch((e: unknown) => {
    throw new Error(`deleting topic ${topic} failed: ${String((e as Error)?.message ?? e)}`);
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const listed = listedPartitions(brokers, topic);
    if (listed === null) return;
    // Created again, empty.
    if (listed !== undefined && before > 0 && endOffsets(brokers, topic, listed) === 0) return;
    if (Date.now() > deadline) throw new Error(`topic ${topic} still listed with its records 30 s after its deletion`);
    await Bun.sleep(100);
  }
}

/** The topic's partition count in the list of all topics; null when it is not listed, undefined when kcat could not ask. */
function listedPartitions(brokers: string, topic: string): number | null | undefined {
  const md = Bun.spawnSync(["kcat", "-L", "-J", "-b", brokers, "-m", "5"], { stdout: "pipe", stderr: "pipe" });
  if (md.exitCode !== 0) return undefined;
  const listed = (JSON.parse(md.stdout.toString()).topics ?? []).find((t: { topic: string }) => t.topic === topic);
  return listed ? (listed.partitions ?? []).length : null;
}

/** The sum of the topic's partitions' end offsets (-1 if unknown), asked only for partitions the caller knows exist. */
function endOffsets(brokers: string, topic: string, partitions: number): number {
  if (partitions === 0) return -1;
  const args = Array.from({ length: partitions }, (_, p) => ["-t", `${topic}:${p}:-1`]).flat();
  const q = Bun.spawnSync(["kcat", "-Q", "-b", brokers, ...args], { stdout: "pipe", stderr: "pipe" });
  if (q.exitCode !== 0) return -1;
  let sum = 0;
  for (const m of q.stdout.toString().matchAll(/\] offset (-?\d+)/g)) sum += Number(m[1]);
  return sum;
}

/**
 * Every record of `topic`, from the beginning, sorted by partition then offset; [] if the topic does
 * not exist. With `expect`, reads again until at least that many are there (records acked a moment
 * ago), returning what it has once `timeoutMs` (default 30 s) runs out so the test's assertion shows it.
 */
export async function consumeAll(brokers: string, topic: string, opts: { expect?: number; timeoutMs?: number } = {}): Promise<ConsumedRecord[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const r = await kcatOnce(brokers, topic, Math.max(1000, deadline - Date.now()));
    if ("records" in r && r.records.length >= (opts.expect ?? 0)) return r.records;
    if (Date.now() >= deadline) {
      if ("records" in r) return r.records;
      throw new Error(`kcat could not read ${topic}: ${r.error}`);
    }
    await Bun.sleep(250);
  }
}

// Lengths first (-1 for null), so binary keys and values (msgpack, any byte incl. \n) are cut exactly.
// Headers last, as kcat's "n=v,n2=v2" (one line; our header values are ASCII without ',' or '\n').
const FORMAT = "%p %o %K %S\n%k%s%h\n";

async function kcatOnce(brokers: string, topic: string, timeoutMs: number): Promise<{ records: ConsumedRecord[] } | { error: string }> {
  // -e: exit once every partition is at its end; -q: no "Reached end" chatter.
  const proc = Bun.spawn(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", FORMAT], { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited]);
  if (code === 0) return { records: parse(out) };
  if (err.includes("Unknown topic or partition")) return { records: [] };
  return { error: proc.signalCode ? `no answer within ${timeoutMs} ms (${err.trim()})` : `exit ${code}: ${err.trim()}` };
}

function parse(out: Uint8Array): ConsumedRecord[] {
  const text = new TextDecoder();
  const records: ConsumedRecord[] = [];
  let pos = 0;
  const line = () => {
    const nl = out.indexOf(10, pos);
    if (nl < 0) throw new Error(`truncated kcat output at byte ${pos}`);
    const s = text.decode(out.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const take = (n: number) => {
    if (n < 0) return null;
    if (pos + n > out.length) throw new Error(`truncated kcat output at byte ${pos}`);
    return out.slice(pos, (pos += n));
  };
  while (pos < out.length) {
    const head = line();
    const m = /^(\d+) (\d+) (-?\d+) (-?\d+)$/.exec(head);
    if (!m) throw new Error(`unexpected kcat output line: ${JSON.stringify(head)}`);
    const key = take(Number(m[3]));
    const value = take(Number(m[4]));
    const headers: Record<string, string> = {};
    for (const pair of line().split(",")) {
      const eq = pair.indexOf("=");
      if (eq > 0) headers[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    records.push({ partition: Number(m[1]), offset: Number(m[2]), key, value, headers });
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}
