import { afterAll } from "bun:test";
import { startBroker } from "./kafka-broker";

/**
 * The broker the tests use: KAFKA_BROKERS if the environment names one, otherwise a real
 * single-node KRaft broker started once per `bun test` run (all test files share the process).
 */
let started: Promise<string> | null = null;
let stop: (() => Promise<void>) | null = null;

export function kafkaBrokers(): Promise<string> {
  if (process.env.KAFKA_BROKERS) return Promise.resolve(process.env.KAFKA_BROKERS);
  started ??= startBroker().then((b) => {
    stop = b.stop;
    return b.brokers;
  });
  return started;
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
