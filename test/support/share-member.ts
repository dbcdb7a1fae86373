/**
 * A share group member in a process of its own, for a member that stalls and dies:
 *   bun test/support/share-member.ts WS_URL TOPIC GROUP
 * Prints `subscribed`, then `partition:offset` for each event it reads. On SIGUSR1 it stops reading
 * (a busy 1.5 s, as a stuck client: the gateway goes on sending) and exits without another word.
 */
import { Packr, Unpackr } from "msgpackr";

const [url, topic, group] = process.argv.slice(2) as [string, string, string];
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, int64AsType: "number" });
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  ws.send(packr.pack({ t: 1, v: 1 }));
  ws.send(packr.pack({ t: 12, cid: 1, sub: "m", topic, share: group }));
};
ws.onmessage = (m) => {
  const f = unpackr.unpack(new Uint8Array(m.data as ArrayBuffer));
  if (f.t === 23) console.log("subscribed");
  const events = f.t === 25 ? f.events : f.t === 24 ? [f] : [];
  if (events.length > 0) console.log(events.map((e: { partition: number; offset: number }) => `${e.partition}:${e.offset}`).join("\n"));
};
process.on("SIGUSR1", () => {
  for (const t = Date.now(); Date.now() - t < Number(process.env.STALL_MS ?? 1500); );
  process.exit(0);
});
