/**
 * Records written into Kafka by another producer, with what kcat cannot write: transactions (their
 * commit and abort markers take offsets no consumer is handed) and header names of any bytes. A real
 * Java producer (the broker's kafka-clients jar), run with Java's single-file launcher.
 */
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
  const args = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", join(root, ".cache/kafka/libs/*"), join(import.meta.dir, "java/RawProducer.java"), brokers, topic];
  if (transactionalId) args.push(transactionalId);
  const proc = Bun.spawn(args, { stdin: new Blob([lines.join("\n") + "\n"]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`the Java producer failed (exit ${code}):\n${err}${out}`);
  return out.trim().split("\n").filter(Boolean).map((l) => {
    const [partition, offset] = l.split(" ").map(Number);
    return { partition: partition!, offset: offset! };
  });
}
