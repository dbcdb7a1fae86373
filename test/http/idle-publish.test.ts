import { expect, test } from "bun:test";
import { health } from "../kafka/harm";
import { startGateway } from "../support/gateway";
import { freshTopic, kafkaBrokers } from "../support/kafka";

/**
 * HTTP_IDLE_TIMEOUT is for idle clients, not for a publish the gateway itself is still answering:
 * one held by a stopped Kafka worker past it gets its answer, not a reset. Split from
 * slow-clients.test.ts, whose other tests time the idle timeout and so run alone.
 */
test("a publish that waits on Kafka longer than HTTP_IDLE_TIMEOUT still gets its answer, not a reset", async () => {
  const slow = await startGateway({
    KAFKA_BROKERS: await kafkaBrokers(),
    KAFKA_WORKERS: "1",
    HTTP_IDLE_TIMEOUT: "2s",
    KAFKA_MESSAGE_TIMEOUT_MS: "9000",
    KAFKA_WORKER_PING_TIMEOUT_MS: "600000",
  });
  let workerPid = 0;
  try {
    const topic = freshTopic("idle-publish");
    const publish = () => fetch(`${slow.url}/api/v1/events?topic=${topic}`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"waits"}' });
    expect((await publish()).status).toBe(202);
    workerPid = (await health(slow.url)).log.workers[0].pid;
    process.kill(workerPid, "SIGSTOP");
    const started = Date.now();
    const r = await publish(); // answered by the gateway's own deadline: 9 s + 5 s
    const tookMs = Date.now() - started;
    expect(r.status).toBe(504);
    expect(((await r.json()) as any).error).toMatchObject({ code: "PUBLISH_TIMEOUT", mayBePersisted: true });
    expect(tookMs).toBeGreaterThan(10_000); // longer than any idle timeout in play, Bun's default included
    process.kill(workerPid, "SIGCONT");
    workerPid = 0;
    expect((await publish()).status).toBe(202);
  } finally {
    if (workerPid) process.kill(workerPid, "SIGCONT");
    await slow.stop();
  }
}, 90_000);
