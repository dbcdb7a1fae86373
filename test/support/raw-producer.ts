/**
 * Records written into Kafka by another producer, with what kcat cannot write: transactions (their
 * commit and abort markers take offsets no consumer is handed) and header names of any bytes. A real
 * Java producer (the broker's kafka-clients jar), run with Java's single-file launcher.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "../..");

export type RawStep =
  | "begin"
  | "commit"
  | "abort"
  | { partition: number; timestamp?: number; key?: string | Uint8Array | null; value: string | Uint8Array | null; headers?: Array<[name: string, value: string | Uint8Array | null]> };

const field = (v: string | Uint8Array | null | undefined): string => {
  if (v === null || v === undefined) return "~";
  const bytes = typeof v === "string" ? Buffer.from(v) : v;
  let s = "";
  for (const b of bytes) s += b > 0x20 && b < 0x7f && b !== 0x25 && b !== 0x7e ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, "0")}`;
  return s;
};

/** Runs `steps` (transactional when `transactionalId` is given); returns each send's partition and offset. */
export async function rawProduce(brokers: string, topic: string, steps: RawStep[], transactionalId?: string): Promise<Array<{ partition: number; offset: number }>> {
  const lines = steps.map((s) => (typeof s === "string" ? s : ["send", String(s.partition), s.timestamp === undefined ? "~" : String(s.timestamp), field(s.key), field(s.value), ...(s.headers ?? []).flatMap(([n, v]) => [field(n), field(v)])].join("\t")));
  const args = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", `${await compiled()}:${join(root, ".cache/kafka/libs/*")}`, "RawProducer", brokers, topic];
  if (transactionalId) args.push(transactionalId);
  const proc = Bun.spawn(args, { stdin: new Blob([lines.join("\n") + "\n"]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`the Java producer failed (exit ${code}):\n${err}${out}`);
  return out.trim().split("\n").filter(Boolean).map((l) => {
    const [partition, offset] = l.split(" ").map(Number);
    return { partition: partition!, offset: offset! };
  });
}

let classes: Promise<string> | undefined;

/**
 * RawProducer compiled once per version of its source (under .cache/java/), not by the single-file
 * launcher on every run: that compile was half of each run's ~2.8 s of CPU, in test files that run
 * it a dozen times beside other shards.
 */
function compiled(): Promise<string> {
  return (classes ??= (async () => {
    const source = join(import.meta.dir, "java/RawProducer.java");
    const dir = join(root, ".cache/java", Bun.hash(await Bun.file(source).text()).toString(16));
    if (await Bun.file(join(dir, "RawProducer.class")).exists()) return dir;
    mkdirSync(join(root, ".cache/java"), { recursive: true });
    // Compiled aside and renamed into place, so shards compiling at once never see half a class.
    const scratch = mkdtempSync(join(root, ".cache/java/tmp-"));
    const javac = Bun.spawn(["javac", "-d", scratch, "-cp", join(root, ".cache/kafka/libs/*"), source], { stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(javac.stderr).text(), javac.exited]);
    if (code !== 0) {
      rmSync(scratch, { recursive: true, force: true });
      throw new Error(`compiling RawProducer.java failed (exit ${code}):\n${err}`);
    }
    try {
      renameSync(scratch, dir);
    } catch {
      rmSync(scratch, { recursive: true, force: true }); // another shard's compile is in place
    }
    return dir;
  })());
}
