import { describe, expect, test } from "bun:test";
import { type CompiledFilter, type FilterableEvent, compileFilter } from "../../src/subscribe/filter";
import { FilterIndex } from "../../src/subscribe/filter-index";

const event = (type: string, key: string | null = null, over: Partial<FilterableEvent> = {}): FilterableEvent => ({ type, key, headers: {}, ...over });
const matched = <S>(index: FilterIndex<S>, ev: FilterableEvent) => {
  const subs: S[] = [];
  const evaluated = index.match(ev, (s) => subs.push(s));
  return { subs, evaluated };
};

// A small seeded generator, so a failure reproduces.
function random(seed: number) {
  return {
    int: (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed % n),
    pick<T>(xs: readonly T[]): T {
      return xs[this.int(xs.length)]!;
    },
  };
}

const TYPES = ["order.created", "order.updated", "order.cancelled", "user.created", "user", "order", "o", ""] as const;
const TYPE_PATTERNS = [...TYPES.filter(Boolean), "order.*", "*.created", "user.*", "o*", "*", "*d*", "order.c*"];
const KEYS = ["k1", "k2", "k3", "k4"];
const SOURCES = ["/a", "/b"];
const WHERES = ["data.n > 2", "key in ['k1', 'k2']", "exists(subject)", "headers.h == 'x'", "not data.n == 1", "type == 'user' or data.n <= 1"];

describe("FilterIndex", () => {
  test("agrees with evaluating every filter by hand, over random filters and events", () => {
    const r = random(42);
    const subset = <T>(xs: readonly T[], max: number) => [...new Set(Array.from({ length: 1 + r.int(max) }, () => r.pick(xs)))];
    const randomSpec = () => {
      const spec: Record<string, unknown> = {};
      if (r.int(3) > 0) spec.types = subset(TYPE_PATTERNS, 3);
      if (r.int(3) === 0) spec.keys = subset(KEYS, 2);
      if (r.int(5) === 0) spec.source = r.pick(SOURCES);
      if (r.int(4) === 0) spec.where = r.pick(WHERES);
      return spec;
    };
    const index = new FilterIndex<number>();
    const filters = new Map<number, CompiledFilter>();
    for (let i = 0; i < 400; i++) {
      const f = compileFilter(randomSpec());
      filters.set(i, f);
      index.add(i, f);
    }
    // Churn: remove some, re-add some with other filters, so removal paths are exercised too.
    for (let i = 0; i < 150; i++) {
      const id = r.int(400);
      if (r.int(2) === 0) {
        index.remove(id);
        filters.delete(id);
      } else {
        const f = compileFilter(randomSpec());
        filters.set(id, f);
        index.add(id, f);
      }
    }
    expect(index.size).toBe(filters.size);
    for (let i = 0; i < 3000; i++) {
      const ev = event(r.pick(TYPES), r.int(5) === 0 ? null : r.pick(KEYS), {
        source: r.pick([...SOURCES, undefined]),
        subject: r.pick(["s", undefined]),
        headers: r.int(2) ? { h: "x" } : {},
        data: { n: r.int(4) },
      });
      const want = [...filters].filter(([, f]) => f.matches(ev)).map(([id]) => id).sort((a, b) => a - b);
      const got = matched(index, ev).subs.sort((a, b) => a - b);
      expect(got).toEqual(want);
    }
  });

  test("subscribers with the same filter share one evaluation", () => {
    const index = new FilterIndex<number>();
    for (let i = 0; i < 100; i++) index.add(i, compileFilter({ where: "data.n > 1", types: ["a.*", "b"] }));
    for (let i = 100; i < 200; i++) index.add(i, compileFilter({ types: ["b", "a.*"], where: "data.n>1" })); // same, spelled differently
    expect(index.groupCount).toBe(1);
    const { subs, evaluated } = matched(index, event("a.x", null, { data: { n: 2 } }));
    expect(evaluated).toBe(1);
    expect(subs.length).toBe(200);
  });

  test("with 1,000 distinct exact types, an event evaluates exactly one group", () => {
    const index = new FilterIndex<number>();
    for (let i = 0; i < 1000; i++) index.add(i, compileFilter({ types: [`type.${i}`] }));
    expect(matched(index, event("type.517"))).toEqual({ subs: [517], evaluated: 1 });
    expect(matched(index, event("type.none"))).toEqual({ subs: [], evaluated: 0 });
  });

  test("prefix and key indexes touch only candidate groups", () => {
    const index = new FilterIndex<string>();
    for (let i = 0; i < 500; i++) index.add(`p${i}`, compileFilter({ types: [`ns${i}.*`] }));
    for (let i = 0; i < 500; i++) index.add(`k${i}`, compileFilter({ keys: [`key${i}`] }));
    for (let i = 0; i < 500; i++) index.add(`g${i}`, compileFilter({ types: [`*.t${i}`], keys: [`key${i}`] })); // glob types: by key
    index.add("all", compileFilter({ types: ["*"] }));
    expect(matched(index, event("ns7.created"))).toEqual({ subs: ["all", "p7"], evaluated: 2 }); // "" is the shortest prefix
    expect(matched(index, event("x.t9", "key9")).subs.sort()).toEqual(["all", "g9", "k9"]);
    expect(matched(index, event("x.t9", "key9")).evaluated).toBe(3);
  });

  test("a group under several overlapping prefixes is evaluated once", () => {
    const index = new FilterIndex<string>();
    const f = compileFilter({ types: ["order.*", "order.cr*", "order.created"] });
    // Even a filter whose hints were not made minimal is evaluated once per event.
    index.add("s", { ...f, typePrefixes: ["order.", "order.cr", "order.created"] });
    expect(matched(index, event("order.created"))).toEqual({ subs: ["s"], evaluated: 1 });
  });

  test("removing the last subscriber of a group removes the group from every index", () => {
    const index = new FilterIndex<string>();
    const specs = [{ types: ["a", "b"] }, { types: ["a.*", "c"] }, { keys: ["k"] }, { where: "key == 'k'" }];
    specs.forEach((spec, i) => {
      index.add(`s${i}`, compileFilter(spec));
      index.add(`t${i}`, compileFilter(spec));
    });
    expect(index.groupCount).toBe(4);
    specs.forEach((_, i) => index.remove(`s${i}`));
    expect(matched(index, event("a.x", "k")).evaluated).toBe(3);
    specs.forEach((_, i) => index.remove(`t${i}`));
    expect([index.size, index.groupCount]).toEqual([0, 0]);
    for (const ev of [event("a", "k"), event("b"), event("a.x"), event("c", "k")]) expect(matched(index, ev).evaluated).toBe(0);
    expect(index.remove("s0")).toBe(false);
  });

  test("adding a subscriber again moves it to its new filter", () => {
    const index = new FilterIndex<string>();
    index.add("s", compileFilter({ types: ["a"] }));
    index.add("s", compileFilter({ types: ["b"] }));
    expect(index.size).toBe(1);
    expect(matched(index, event("a"))).toEqual({ subs: [], evaluated: 0 });
    expect(matched(index, event("b"))).toEqual({ subs: ["s"], evaluated: 1 });
  });

  test("agrees with evaluating by hand while subscribers come and go between events and inside onMatch (buckets compacted as groups leave)", () => {
    const r = random(7);
    const specs = [
      () => ({ types: [r.pick(TYPES.filter(Boolean))], where: `data.n >= ${r.int(4)}` }),
      () => ({ types: [r.pick(TYPE_PATTERNS)] }),
      () => ({ keys: [r.pick(KEYS)], where: `data.n != ${r.int(4)}` }),
      () => ({ where: `data.n > ${r.int(4) - 1}` }),
      () => ({}),
    ];
    const index = new FilterIndex<number>();
    const filters = new Map<number, CompiledFilter>();
    let next = 0;
    for (let round = 0; round < 300; round++) {
      // Waves of subscribes, then of removals of most of them: every bucket fills and is compacted.
      const adds = r.int(40);
      for (let i = 0; i < adds; i++) {
        const f = compileFilter(r.pick(specs)());
        filters.set(next, f);
        index.add(next++, f);
      }
      const removals = r.int(2) === 0 ? filters.size : r.int(10);
      for (let i = 0; i < removals && filters.size > 0; i++) {
        const id = [...filters.keys()][r.int(filters.size)]!;
        index.remove(id);
        filters.delete(id);
      }
      for (let e = 0; e < 5; e++) {
        const ev = event(r.pick(TYPES), r.int(5) === 0 ? null : r.pick(KEYS), { data: { n: r.int(4) } });
        const want = [...filters].filter(([, f]) => f.matches(ev)).map(([id]) => id).sort((a, b) => a - b);
        // Some matched subscribers leave from inside onMatch (a slow consumer disconnected): the
        // rest of the walk still finds every other match.
        const got: number[] = [];
        index.match(ev, (id) => {
          got.push(id);
          if (r.int(3) === 0) {
            index.remove(id);
            filters.delete(id);
          }
        });
        expect(got.sort((a, b) => a - b)).toEqual(want);
        expect(index.size).toBe(filters.size);
      }
    }
  });

  test("removing subscribers from inside onMatch skips no other group", () => {
    const index = new FilterIndex<number>();
    for (let i = 0; i < 10; i++) index.add(i, compileFilter({ where: `key != '${i}'` })); // 10 scan-list groups
    const seen: number[] = [];
    // Each removal takes a group out of the scan list being walked; none after it may be skipped.
    index.match(event("t", "k"), (s) => {
      seen.push(s);
      index.remove(s);
    });
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(index.size).toBe(0);
  });
});
