import { expect, test } from "bun:test";
import { Outbound } from "../../src/ws/outbound";
import { type FrameOwner, QueuedFrame } from "../../src/subscribe/queued-frame";

/**
 * The one ordered outbound path when writing a frame makes the transport ask for more at once. Bun's
 * SSE response does: the gateway's stream (src/http/stream.ts) enqueues each frame, and that enqueue
 * called the stream's pull, which flushes, inside the flush that was writing (trace: flush ← pull ←
 * enqueue ← send ← write ← flush). The inner flush handed the frames behind the one being written
 * first; the subscription, told out of order, kept them as queued, dropped them again later and
 * counted them in a `lagged` notice (the chaos tester: `dropped` 450-970 over what was missing, in 4
 * of 5 runs). It happens only when the HTTP response has a read waiting at that moment, so it is
 * driven here by a socket whose send calls flush as that pull did, every time.
 */
test("frames are handed to their subscription in the order they are written, when writing one flushes again", () => {
  const handed: number[] = [];
  const written: number[] = [];
  const owner: FrameOwner = { noticeBeforeNext: () => null, handed: (f) => void handed.push(Number(f.data)) };
  let outbound!: Outbound;
  let depth = 0;
  outbound = new Outbound(
    {
      send(data) {
        written.push(Number(data));
        depth++;
        if (depth < 4) outbound.flush(); // the pull an enqueue runs
        depth--;
        return 1;
      },
      getBufferedAmount: () => 0,
      cork: (write) => write(),
    },
    { maxReplyBytes: 1 << 20 },
    () => {},
  );
  for (let i = 0; i < 50; i++) outbound.frame(new QueuedFrame(owner, String(i), 1, 1, undefined));
  outbound.flush();
  const all = Array.from({ length: 50 }, (_, i) => i);
  expect(written).toEqual(all);
  expect(handed).toEqual(all);
});

test("a reply is counted out as it was counted in, in UTF-8 bytes: non-ASCII replies leave nothing behind (second review)", async () => {
  // reply() counted a string's UTF-8 bytes and the flush took off its UTF-16 length: 200 acks with
  // the id "事件" left 800 bytes counted as unread for good, and a long-lived JSON connection would
  // in the end be closed as not reading its replies.
  const unread: number[] = [];
  let stalled = false;
  const outbound = new Outbound(
    { send: () => 1, getBufferedAmount: () => 0, cork: (write) => write() },
    { maxReplyBytes: 1 << 20 },
    () => (stalled = true),
    (bytes) => unread.push(bytes),
  );
  for (let i = 0; i < 200; i++) outbound.reply(JSON.stringify({ t: 20, cid: i, id: "事件", message: "😀" }));
  outbound.flush();
  await Bun.sleep(10);
  expect(outbound.unreadBytes).toBe(0);
  expect(unread.at(-1)).toBe(0);
  expect(stalled).toBe(false);
});
