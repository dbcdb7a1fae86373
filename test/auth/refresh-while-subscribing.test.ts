// Stays on the raw test client: it pipelines a subscribe and a refresh, which the SDK serialises.
import { expect, test } from "bun:test";
import { ensureTopic } from "../support/kafka-broker";
import { freshTopic, kafkaGatewayForFile } from "../support/kafka";
import type { Frame } from "../support/ws-client";
import { SECRET, helloWith, hsToken } from "./support";

/**
 * A refresh that narrows the grants while a subscribe is still starting (on Kafka it waits on the log:
 * watermarks, a feed opening). Subscriptions are checked again under a new token, but only those
 * registered; one still starting registered after the check and read on (outside tester: 4 of 4 runs,
 * `refreshed`, then `subscribed`, then every event, for start earliest, latest and a share group).
 * Now a subscription is checked at the moment it registers too: refused FORBIDDEN, its one reply.
 */
const file = kafkaGatewayForFile({ AUTH_JWT_SECRET: SECRET, RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0" });

for (const start of [{ start: "earliest" }, { start: "latest" }, { share: "g" }] as const) {
  test(`a subscribe (${JSON.stringify(start)}) pipelined with a refresh that no longer grants it is refused, and nothing of the topic is delivered`, async () => {
    const topic = freshTopic("narrowed");
    await ensureTopic(file.brokers, topic, 1);
    const publisher = (await helloWith(file.gw.wsUrl, await hsToken({ sub: "pub", kgw: { publish: ["*"] } }))).c;
    expect(await publisher.publish({ type: "before" }, topic)).toMatchObject({ t: 20 });
    const { c, reply } = await helloWith(file.gw.wsUrl, await hsToken({ sub: "racer", kgw: { subscribe: ["*"] } }));
    expect(reply).toMatchObject({ t: 2 });
    const delivered: Frame[] = [];
    const subscribed = c.subscribe({ sub: "race", topic, ...start }, (f) => delivered.push(f));
    const refreshed = c.request({ t: 14, token: await hsToken({ sub: "racer", kgw: { subscribe: ["nothing"] } }) });
    expect(await refreshed).toMatchObject({ t: 29 });
    const answer = await subscribed;
    for (let i = 0; i < 3; i++) expect(await publisher.publish({ type: "after", data: { i } }, topic)).toMatchObject({ t: 20 });
    await Bun.sleep(1500);
    const events = delivered.filter((f) => f.t === 24 || f.t === 25);
    // Either refused outright, or (had it registered before the refresh) ended with a FORBIDDEN notice.
    if (answer.t === 23) expect(delivered.find((f) => f.t === 28)).toMatchObject({ code: "FORBIDDEN" });
    else expect(answer).toMatchObject({ t: 21, code: "FORBIDDEN" });
    const afterRefresh = events.flatMap((f) => (f.t === 25 ? (f.events as Frame[]) : [f])).filter((e) => (e.event as Frame | undefined)?.type === "after");
    expect(afterRefresh).toEqual([]);
    c.close();
    publisher.close();
  }, 60_000);
}

test("the refused subscription leaves nothing behind: the same id can be subscribed once the grants allow it again", async () => {
  const topic = freshTopic("narrowed-again");
  await ensureTopic(file.brokers, topic, 1);
  const { c } = await helloWith(file.gw.wsUrl, await hsToken({ sub: "racer2", kgw: { subscribe: ["*"] } }));
  const subscribed = c.subscribe({ sub: "s", topic, start: "earliest" }, () => {});
  await c.request({ t: 14, token: await hsToken({ sub: "racer2", kgw: { subscribe: ["nothing"] } }) });
  await subscribed;
  expect(await c.request({ t: 14, token: await hsToken({ sub: "racer2", kgw: { subscribe: ["*"] } }) })).toMatchObject({ t: 29 });
  expect(await c.subscribe({ sub: "s", topic, start: "earliest" }, () => {})).toMatchObject({ t: 23 });
  c.close();
}, 60_000);
