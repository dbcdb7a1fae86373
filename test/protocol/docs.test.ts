import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CloseCodes, ErrorCodes } from "../../src/protocol/codes";
import { FrameType } from "../../src/protocol/frames";

const doc = readFileSync(resolve(import.meta.dir, "../../docs/protocol.md"), "utf8");
const rows = (prefix: RegExp) => doc.split("\n").filter((l) => prefix.test(l)).map((l) => l.split("|").map((c) => c.trim()));

test("every error code is documented with its number, HTTP status and flags, and nothing else is", () => {
  const documented = rows(/^\| `[A-Z_]+` \| \d{4} \|/);
  expect(documented.map((r) => r[1]!.replaceAll("`", "")).sort()).toEqual(Object.keys(ErrorCodes).sort());
  for (const r of documented) {
    const c = ErrorCodes[r[1]!.replaceAll("`", "") as keyof typeof ErrorCodes];
    expect([Number(r[2]), Number(r[3]), r[4] === "yes", r[5] === "yes"]).toEqual([c.num, c.http, c.retriable, c.mayBePersisted]);
  }
});

test("every frame type is documented with its number", () => {
  const documented = rows(/^\| \d+ \| `[a-z_]+` \|/);
  const names = Object.fromEntries(documented.map((r) => [r[2]!.replaceAll("`", "").toUpperCase(), Number(r[1])]));
  expect(names).toEqual({ ...FrameType });
});

test("the application close codes are documented", () => {
  for (const code of [CloseCodes.UNSUPPORTED_VERSION, CloseCodes.SLOW_CONSUMER, CloseCodes.MESSAGE_TOO_BIG]) expect(doc).toContain(`| ${code} |`);
});
