import { afterAll, beforeAll, expect } from "bun:test";
import { Packr } from "msgpackr";
import { type GatewayProcess, startGateway } from "../support/gateway";
import { kafkaBrokers } from "../support/kafka";
import type { RawSocket } from "./wire";

/**
 * What the hostile-input files share: the file's Kafka-backed gateway, and the frames they build by
 * hand. The gateway has the default limits but no bytes rate: the files measure what decoding and
 * refusing cost, and past 4 MiB/s the rate would refuse the large frames before any decoding (its own
 * job: test/ws/rate-limits). At the end it must still be healthy, its worker never restarted.
 */
export function hostileGatewayForFile(): { gw: GatewayProcess; brokers: string } {
  const file = {} as { gw: GatewayProcess; brokers: string };
  beforeAll(async () => {
    file.brokers = await kafkaBrokers();
    file.gw = await startGateway({ KAFKA_BROKERS: file.brokers, KAFKA_WORKERS: "1", RATE_LIMIT_BYTES: "0" });
  }, 60_000);
  afterAll(() => stopHealthy(file.gw), 60_000);
  return file;
}

/** Stops `gw`, expecting it healthy first, its one worker never restarted, and a clean exit. */
export async function stopHealthy(gw: GatewayProcess): Promise<void> {
  const health = await gw.health();
  expect(health.status).toBe("ok");
  expect(health.log.workers[0].restarts).toBe(0);
  expect(await gw.stop()).toBe(0);
}

// variableMapSize: the hostile frames hold maps of 65,536 keys and more, past msgpackr's default.
const packr = new Packr({ useRecords: false, variableMapSize: true } as never);
export const pack = (v: unknown) => packr.pack(v);
/** Concatenation without spreading: the frames here are up to 1 MiB. */
export const concat = (...parts: Array<Uint8Array | number[]>) => new Uint8Array(Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)))));
export const manyKeys = (n: number, value: unknown = "") => Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, value]));

/** The reply carrying `cid`. */
export async function replyTo(s: RawSocket, cid: number, timeoutMs = 60_000): Promise<Record<string, any>> {
  return (await s.waitFor((r) => r.frame.cid === cid, 1, timeoutMs))[0]!.frame;
}
