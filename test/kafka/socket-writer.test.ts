import { expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { SocketWriter } from "../../src/kafka/wire/socket-writer";

/**
 * The worker's socket to the gateway carries bulk RECORDS (a MiB each) and small urgent messages
 * (delivery reports, PONGs). Queued behind megabytes of records, other clients' acks waited seconds
 * and a PONG got the worker killed as hung (hostile tester). Over a real unix socket whose reader
 * stops: an urgent message written after queued bulk ones arrives before every bulk message not yet
 * begun, and every message arrives whole, bulk ones in their order.
 */
test("urgent messages pass queued bulk ones not yet begun; every message arrives whole, bulk in order", async () => {
  const path = join(tmpdir(), `sw-${process.pid}.sock`);
  rmSync(path, { force: true });
  const chunks: Buffer[] = [];
  let server!: Socket<undefined>;
  const listener = Bun.listen<undefined>({
    unix: path,
    socket: {
      open: (s) => {
        server = s;
        s.pause(); // not reading: the client's kernel buffer fills and its writer queues
      },
      data: (_s, d) => void chunks.push(Buffer.from(d)),
    },
  });
  let writer!: SocketWriter;
  const client = await Bun.connect<undefined>({ unix: path, socket: { data: () => {}, drain: () => writer.drain() } });
  writer = new SocketWriter(client as Socket<unknown>);
  // Message: 4-byte length, 1-byte kind, 4-byte sequence, filler.
  const message = (kind: string, seq: number, size: number) => {
    const b = Buffer.alloc(size, kind);
    b.writeUInt32LE(size, 0);
    b.write(kind, 4);
    b.writeUInt32LE(seq, 5);
    return b;
  };
  for (let i = 0; i < 8; i++) writer.writeBulk(message("B", i, 1024 * 1024));
  expect(writer.queuedBytes).toBeGreaterThan(4 * 1024 * 1024);
  writer.write(message("U", 0, 64));
  writer.writeTransient(message("U", 1, 64));
  writer.writeBulk(message("B", 8, 1000));
  while (!server) await Bun.sleep(5);
  server.resume();
  const total = 8 * 1024 * 1024 + 128 + 1000;
  for (const deadline = Date.now() + 10_000; chunks.reduce((n, c) => n + c.length, 0) < total && Date.now() < deadline; ) await Bun.sleep(10);
  const all = Buffer.concat(chunks);
  expect(all.length).toBe(total);
  const order: string[] = [];
  for (let at = 0; at < all.length; ) {
    const size = all.readUInt32LE(at);
    const kind = String.fromCharCode(all[at + 4]!);
    order.push(`${kind}${all.readUInt32LE(at + 5)}`);
    expect(all.subarray(at + 9, at + size).every((c) => c === kind.charCodeAt(0))).toBe(true);
    at += size;
  }
  // The urgent two, in their order, before the bulk messages that were still wholly queued.
  const u0 = order.indexOf("U0");
  expect(order[u0 + 1]).toBe("U1");
  expect(u0).toBeLessThan(order.indexOf("B7"));
  expect(order.filter((o) => o.startsWith("B"))).toEqual(Array.from({ length: 9 }, (_, i) => `B${i}`));
  client.end();
  listener.stop(true);
  rmSync(path, { force: true });
});
