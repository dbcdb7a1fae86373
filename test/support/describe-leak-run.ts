/**
 * The leak half of test/kafka/librdkafka.test.ts's DescribeConfigs and DescribeTopics tests, in a
 * process of its own: the test runner's RSS moves by tens of MiB with every other file's leftovers
 * (a CI run saw it go past the bound with no leak here). Asks both about a topic and a missing one
 * 500 times to warm up, then 3,000 more, and prints one JSON line: the answers with the topic's
 * configuration and with its id, and RSS growth over the 3,000, in bytes.
 *   bun test/support/describe-leak-run.ts BROKERS TOPIC MISSING_TOPIC
 */
import { readFileSync } from "node:fs";
import { describeTopicConfigs, describeTopicIds, Producer } from "../../src/kafka/librdkafka";

const [brokers, topic, missing] = process.argv.slice(2) as [string, string, string];
const rss = () => (Bun.gc(true), Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024);

const p = new Producer({ "bootstrap.servers": brokers });
let answered = 0;
let ids = 0;
const ask = () => {
  const [own] = describeTopicConfigs(p.rk, [topic, missing], 5000);
  if (own && "configs" in own) answered++;
  const [id, none] = describeTopicIds(p.rk, [topic, missing], 5000);
  if (id && "id" in id && none && "missing" in none && none.missing) ids++;
};
for (let i = 0; i < 500; i++) ask();
const warm = rss();
for (let i = 0; i < 3000; i++) ask();
const grown = rss() - warm;
p.destroy();
console.log(JSON.stringify({ answered, ids, grown }));
