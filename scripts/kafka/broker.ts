/**
 * A real single-node Apache Kafka broker (KRaft) from the Maven Central jars, on free loopback ports,
 * with no Docker. Used by the tests and benchmarks; also a CLI for local development:
 *
 *   bun scripts/kafka/broker.ts          # prints KAFKA_BROKERS=127.0.0.1:PORT, runs until Ctrl-C
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const root = resolve(import.meta.dir, "../..");
const classpath = join(root, ".cache/kafka/libs/*");

export interface Broker {
  brokers: string;
  pid: number;
  dir: string;
  proc: Subprocess;
  stop(): Promise<void>;
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function fetchJars(): void {
  const r = Bun.spawnSync(["bash", join(root, "scripts/kafka/fetch-jars")], { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("could not fetch the Kafka jars (scripts/kafka/fetch-jars)");
}

function properties(dir: string, port: number, controllerPort: number): string {
  return `process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controllerPort}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${join(dir, "data")}
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`;
}

// Broker chatter goes to a file: test output stays readable, failures stay diagnosable.
function log4j(dir: string): string {
  return `status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${join(dir, "broker.log")}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
`;
}

function java(args: string[], dir: string) {
  return ["java", "-Xms256m", "-Xmx512m", `-Dlog4j2.configurationFile=${join(dir, "log4j2.properties")}`, "-cp", classpath, ...args];
}

export async function startBroker(opts: { dir?: string; timeoutMs?: number } = {}): Promise<Broker> {
  fetchJars();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "kgw-kafka-"));
  mkdirSync(dir, { recursive: true });
  const port = freePort();
  const controllerPort = freePort();
  const props = join(dir, "server.properties");
  writeFileSync(props, properties(dir, port, controllerPort));
  writeFileSync(join(dir, "log4j2.properties"), log4j(dir));
  const clusterId = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
  const format = Bun.spawnSync(java(["kafka.tools.StorageTool", "format", `--cluster-id=${clusterId}`, "-c", props], dir), { stdout: "pipe", stderr: "pipe" });
  if (format.exitCode !== 0) throw new Error(`kafka storage format failed: ${format.stderr.toString()}${format.stdout.toString()}`);

  const proc = Bun.spawn(java(["kafka.Kafka", props], dir), { stdout: Bun.file(join(dir, "broker.out")), stderr: Bun.file(join(dir, "broker.err")) });
  const killOnExit = () => proc.kill("SIGKILL");
  process.on("exit", killOnExit);
  const brokers = `127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (true) {
    if (proc.exitCode !== null) throw new Error(`the Kafka broker exited (${proc.exitCode}); see ${dir}/broker.err and broker.log`);
    const probe = Bun.spawnSync(["kcat", "-L", "-b", brokers, "-m", "2"], { stdout: "pipe", stderr: "pipe" });
    if (probe.exitCode === 0 && probe.stdout.toString().includes("1 brokers")) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`the Kafka broker did not start within ${opts.timeoutMs ?? 60_000} ms; see ${dir}/broker.log`);
    }
    await Bun.sleep(200);
  }
  return {
    brokers,
    pid: proc.pid,
    dir,
    proc,
    async stop() {
      process.off("exit", killOnExit);
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(timer);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Creates a topic with an exact partition count, with Kafka's own admin tool. */
export async function ensureTopic(brokers: string, topic: string, partitions: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "kgw-topic-"));
  writeFileSync(join(dir, "log4j2.properties"), "status = error\nrootLogger.level = ERROR\n");
  const args = ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers, "--create", "--if-not-exists", "--topic", topic, "--partitions", String(partitions), "--replication-factor", "1"];
  const proc = Bun.spawn(java(args, dir), { stdout: "pipe", stderr: "pipe" });
  const code = await proc.exited;
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`creating topic ${topic} failed: ${await new Response(proc.stderr).text()}`);
}

if (import.meta.main) {
  const dir = process.argv[2] ? resolve(process.argv[2]) : undefined;
  if (dir && !existsSync(dir)) mkdirSync(dir, { recursive: true });
  const b = await startBroker({ dir });
  console.log(`KAFKA_BROKERS=${b.brokers}`);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void b.stop().then(() => process.exit(0)));
}
