import { expect, test } from "bun:test";
import { BrokerProbe } from "../../src/kafka/worker/broker-probe";

/**
 * What answers the probe (a metadata thread calling librdkafka) can get stuck in a call that never
 * returns. Before, one probe that never answered stopped all probing: the chaos tester's worker said
 * "brokers: down" for 4.5 minutes after the broker was back, and its instance was never ready. A
 * probe unanswered past its timeout is now taken for lost: what answers it is replaced, and probing
 * goes on. The stuck thread is played by a client that does not answer its first questions.
 */
test("a probe that is never answered is taken for lost, and the next answered probe says the brokers are up", async () => {
  let asked = 0;
  const stuckFor = 2;
  const changes: Array<[boolean, string]> = [];
  let lost = 0;
  const late: Array<() => void> = [];
  const probe = new BrokerProbe(
    {
      getMetadata: (_o, cb) => {
        // The first questions hang (their answers come much later, when they no longer count).
        if (++asked <= stuckFor) late.push(() => cb(new Error("too late")));
        else cb(null, "cluster-a");
      },
    },
    100,
    (up, reason) => changes.push([up, reason]),
    () => {},
    () => lost++,
  );
  probe.start();
  probe.allBrokersDown("1/1 brokers are down");
  expect(probe.up).toBe(false);
  const deadline = Date.now() + 30_000;
  while (!probe.up && Date.now() < deadline) await Bun.sleep(100);
  for (const answer of late) answer(); // a stuck call returning at last changes nothing
  probe.stop();
  expect(lost).toBe(stuckFor);
  expect(probe.up).toBe(true);
  expect(changes.at(-1)).toEqual([true, "a broker answered"]);
}, 60_000);
