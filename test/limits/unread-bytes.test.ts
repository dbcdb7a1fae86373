/**
 * The unread-bytes ledger's policy (src/limits/unread-bytes.ts); test/ws/unread-bytes.test.ts shows it
 * over real sockets. Past a bound, the connection growing is closed when it holds at least the
 * average there, or when the bound is a quarter past: a reader holding one large frame for a moment
 * is not the one to go.
 */
import { expect, test } from "bun:test";
import { UnreadBytes } from "../../src/limits/unread-bytes";

const MiB = 1024 * 1024;

test("past the instance's bound, the non-readers holding most are closed as they grow, not a reader holding a frame for a moment", () => {
  const ledger = new UnreadBytes({ perAddress: 64 * MiB, total: 10 * MiB });
  const [a1, a2, a3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map((a) => ledger.share(a));
  expect(a1!.holds(4 * MiB)).toBeNull();
  expect(a2!.holds(4 * MiB)).toBeNull();
  expect(a3!.holds(4 * MiB)).toBe("total"); // 12 MiB: the third, holding the average
  a3!.release();
  const reader = ledger.share("10.0.0.9");
  expect(reader.holds(1.5 * MiB)).toBeNull(); // 9.5 MiB
  expect(a1!.holds(5 * MiB)).toBe("total"); // 10.5 MiB; 5 of an average 3.5
  expect(reader.holds(2 * MiB)).toBeNull(); // 11 MiB, over but within a quarter: 2 of an average ~3.7 is let be
  expect(reader.holds(4 * MiB)).toBe("total"); // 13 MiB: past a quarter over, whoever grows it goes
  a1!.release();
  expect(ledger.counted()).toBe(8 * MiB);
  reader.release();
  a2!.release();
  expect(ledger.counted()).toBe(0);
});

test("one address's connections meet its own bound; each counts in whole 64 KiB, however little it holds", () => {
  const ledger = new UnreadBytes({ perAddress: 8 * MiB, total: 1024 * MiB });
  const shares = Array.from({ length: 3 }, () => ledger.share("10.0.0.1"));
  expect(shares[0]!.holds(3 * MiB)).toBeNull();
  expect(shares[1]!.holds(3 * MiB)).toBeNull();
  // Below 1 MiB it counts too (it did not before: a thousand such connections were a gigabyte unseen).
  expect(shares[2]!.holds(1024 * 1024 - 1)).toBeNull();
  expect(ledger.counted("10.0.0.1")).toBe(6 * MiB + 15 * 64 * 1024);
  expect(shares[2]!.holds(64 * 1024 - 1)).toBeNull();
  expect(ledger.counted("10.0.0.1")).toBe(6 * MiB);
  expect(shares[2]!.holds(3 * MiB)).toBe("address");
  for (const s of shares) s.release();
  expect(ledger.counted("10.0.0.1")).toBe(0);
});
