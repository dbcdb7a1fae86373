import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/** The folders under src/ are the architecture: no folder may reach itself through its imports. */
const SRC = resolve(import.meta.dir, "../../src");

function folderEdges(): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".ts")) {
        const from = relative(SRC, dir) || ".";
        for (const m of readFileSync(path, "utf8").matchAll(/from\s+["'](\.{1,2}\/[^"']+)["']/g)) {
          const target = resolve(dir, m[1]!);
          const isDir = (() => {
            try {
              return statSync(target).isDirectory();
            } catch {
              return false;
            }
          })();
          const to = relative(SRC, isDir ? target : dirname(target)) || ".";
          if (to !== from) (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
        }
      }
    }
  };
  walk(SRC);
  return edges;
}

test("no import loop between the folders of src/", () => {
  const edges = folderEdges();
  const loops: string[] = [];
  for (const start of edges.keys()) {
    const path: string[] = [];
    const seen = new Set<string>();
    const visit = (at: string): boolean => {
      for (const next of edges.get(at) ?? []) {
        if (next === start) return path.push(next), true;
        if (seen.has(next)) continue;
        seen.add(next);
        path.push(next);
        if (visit(next)) return true;
        path.pop();
      }
      return false;
    };
    if (visit(start)) loops.push([start, ...path].join(" → "));
  }
  expect(loops).toEqual([]);
});

test("the Kafka worker process imports nothing of the gateway process's side", () => {
  const edges = folderEdges();
  expect([...(edges.get("kafka/worker") ?? [])].toSorted()).toEqual(["kafka/librdkafka", "kafka/wire", "log"]);
});
