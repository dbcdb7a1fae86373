import { expect, test } from "bun:test";
import { read } from "bun:ffi";
import { LiteralNames } from "../../src/kafka/worker/literal-names";

/** The NUL-terminated string at `addr`, as librdkafka reads a header name. */
function cString(addr: number): string {
  const bytes: number[] = [];
  for (let i = 0; read.u8(addr, i) !== 0; i++) bytes.push(read.u8(addr, i));
  return Buffer.from(bytes).toString("utf8");
}

test("literal header names: one kept copy per name, exact and NUL-terminated, and a bounded number of them", () => {
  const names = new LiteralNames(3, 8);
  const wire = Buffer.from("..ce_id..ce_time..ce_id..ce_idx..ce_i..subject..way_too_long_name..");
  const at = (s: string, from = 0) => wire.indexOf(s, from);
  const id = names.find(wire, at("ce_id"), 5);
  expect(id).not.toBe(0);
  expect(cString(id)).toBe("ce_id");
  const time = names.find(wire, at("ce_time"), 7);
  expect(cString(time)).toBe("ce_time");
  // The same bytes elsewhere in the message: the same copy.
  expect(names.find(wire, at("ce_id", at("ce_time")), 5)).toBe(id);
  // A prefix or an extension of a kept name is another name.
  const prefix = names.find(wire, at("ce_i.."), 4);
  expect(prefix).not.toBe(id);
  expect(cString(prefix)).toBe("ce_i");
  // Full (capacity 3): others are not kept, and the kept ones are still found.
  expect(names.find(wire, at("ce_idx"), 6)).toBe(0);
  expect(names.find(wire, at("subject"), 7)).toBe(0);
  expect(names.find(wire, at("way_too_long_name"), 17)).toBe(0);
  expect(names.find(wire, at("ce_time"), 7)).toBe(time);
  expect(names.find(wire, at("ce_id"), 5)).toBe(id);
  expect(cString(id)).toBe("ce_id");
});
