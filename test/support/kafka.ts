import { afterAll, expect } from "bun:test";
import { resolve } from "node:path";
import { type GatewayProcess, gatewayForBlock } from "./gateway";
import { startBroker } from "./kafka-broker";
import { KafkaLog } from "../../src/kafka/kafka-log";

/**
 * The broker the tests use: KAFKA_BROKERS if the environment names one, otherwise a real
 * single-node KRaft broker started once per `bun test` run (all test files share the process).
 */
let started: Promise<{ brokers: string; pid?: number }> | null = null;
let stop: (() => Promise<void>) | null = null;

/** The broker, with its pid when this run started it (tests that freeze or kill it need that). */
export function kafkaBroker(): Promise<{ brokers: string; pid?: number }> {
  if (process.env.KAFKA_BROKERS) return Promise.resolve({ brokers: process.env.KAFKA_BROKERS });
  started ??= startBroker().then((b) => {
    stop = b.stop;
    return { brokers: b.brokers, pid: b.pid };
  });
  return started;
}

export async function kafkaBrokers(): Promise<string> {
  return (await kafkaBroker()).brokers;
}

/** A topic name no other test or run uses. */
export function freshTopic(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

// Registered from the preload, so it runs once after every file.
export function registerBrokerTeardown(): void {
  afterAll(async () => {
    await stop?.();
  });
}

/**
 * The file's (or describe block's) gateway on the run's broker (one Kafka worker, plus `env`), started
 * before its tests and stopped after them: what most Kafka test files need. Read `gw` and `brokers`
 * inside the tests.
 */
export function kafkaGatewayForFile(env: Record<string, string> = {}): { gw: GatewayProcess; brokers: string } {
  const file = {} as { gw: GatewayProcess; brokers: string };
  const block = gatewayForBlock(async () => ({ KAFKA_BROKERS: (file.brokers = await kafkaBrokers()), KAFKA_WORKERS: "1", ...env }));
  Object.defineProperty(file, "gw", { get: () => block.gw });
  return file;
}

/**
 * Writes `spec`'s records straight into Kafka, as another producer would (test/kafka/raw-records.cjs,
 * on Node: its header gives the spec), and expects every one written; their offsets.
 */
export async function writeRawRecords(brokers: string, topic: string, spec: object[]): Promise<number[]> {
  const proc = Bun.spawn(["node", resolve(import.meta.dir, "../kafka/raw-records.cjs"), brokers, topic], { stdin: new Blob([JSON.stringify(spec)]), stdout: "pipe", stderr: "inherit" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  const results = JSON.parse(out) as Array<{ offset?: number; error?: string }>;
  expect(results.filter((r) => r.error)).toEqual([]);
  return results.map((r) => r.offset!);
}

/**
 * The worker pool in-process, one worker, on `brokers` (tests of the pool itself, below the
 * gateway): librdkafka's producer as the gateway configures it, with `producer` added.
 */
export function inProcessPool(brokers: string, clientId: string, producer: Record<string, string | number | boolean> = {}): KafkaLog {
  const common = { "bootstrap.servers": brokers, "client.id": clientId };
  return new KafkaLog({
    workers: 1,
    producer: { ...common, acks: "all", "enable.idempotence": true, "linger.ms": 2, partitioner: "murmur2_random", ...producer },
    consumer: common,
    bulkConsumer: {},
    maxInflightPerWorker: 100_000,
    flushBytes: 256 * 1024,
    restartBackoffMinMs: 100,
    restartBackoffMaxMs: 1000,
    connectTimeoutMs: 30_000,
  });
}
