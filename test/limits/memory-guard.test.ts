import { expect, test } from "bun:test";
import { MemoryGuard } from "../../src/limits/memory-guard";

/**
 * The guard's decisions for a sequence of readings, one each 250 ms. What the readings mean for real
 * sockets is test/ws/partial-frames; here, when the guard sheds for a given course of memory.
 */
function run(readings: number[]): number[] {
  let at = 0;
  const sheds: number[] = [];
  const guard = new MemoryGuard({ limitBytes: 1000, over() {}, under() {}, shed: () => sheds.push(at), shedAfterMs: 1000, readRss: () => readings[at / 250]! });
  for (; at / 250 < readings.length; at += 250) guard.check(at + 10_000);
  return sheds;
}

test("over the limit and not falling, the guard sheds once its grace is over, then each second", () => {
  expect(run(Array(17).fill(1500))).toEqual([1000, 2000, 3000, 4000]);
});

test("while memory is falling from the last shed, the guard waits: closed connections give theirs back over seconds", () => {
  // Shed at 1 s; then it falls, still over the limit, for 2 s; then it holds.
  const readings = [...Array(5).fill(1500), 1400, 1300, 1250, 1200, 1150, 1100, 1050, ...Array(8).fill(1050)];
  expect(run(readings)).toEqual([1000, 3750, 4750]);
});
