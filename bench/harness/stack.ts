import { type GatewayProcess, startGateway } from "../../test/support/gateway";
import { type Broker, startBroker } from "../../test/support/kafka-broker";
import { type ProcessGroups, childrenOf } from "./processes";
import { runRawProducers } from "./raw-producer";

/**
 * What a scenario measures against: a given gateway URL, or a broker and gateway started here, the
 * way the tests start them (scripts/kafka/start-broker, `bun src/main.ts`).
 */
export class Stack {
  broker?: Broker;
  gateway?: GatewayProcess;
  brokersAddr?: string;
  private externalUrl?: string;

  /** A broker of our own unless `brokers` names one; nothing when `url` names a gateway to drive. */
  static async create(o: { url?: string; brokers?: string; kafka: boolean }): Promise<Stack> {
    const s = new Stack();
    s.externalUrl = o.url;
    if (!o.url && o.kafka && !o.brokers) {
      s.broker = await startBroker();
      // A fresh broker is a cold JVM: for its first ~30 s under load it takes twice the CPU per
      // record (S2 measured 89k then 139k events/s a minute later). Measure it warm.
      process.stderr.write("[stack] warming up the new broker for 10 s\n");
      await runRawProducers({ brokers: s.broker.brokers, topic: "bench-warmup", seconds: 10, payloadBytes: 115, keys: 1000, processes: 1 });
    }
    s.brokersAddr = o.brokers ?? s.broker?.brokers;
    return s;
  }

  /** (Re)starts the local gateway with `env`, on the embedded log when there is no broker. */
  async startGateway(env: Record<string, string> = {}, command?: string[]): Promise<string> {
    if (this.externalUrl) return this.externalUrl;
    await this.gateway?.stop();
    // A benchmark measures capacity: the per-connection publish rates (a guard for the open network)
    // are lifted unless a scenario sets them.
    this.gateway = await startGateway({ LOG_LEVEL: "info", KAFKA_BROKERS: this.brokersAddr ?? "", RATE_LIMIT_EVENTS: "0", RATE_LIMIT_BYTES: "0", RATE_LIMIT_HANDLING_MS: "0", CONNECTION_RATE_PER_IP: "0", ...env }, { command });
    return this.gateway.wsUrl;
  }

  /** Process groups for the CPU split; only those that run on this machine. */
  groups(): ProcessGroups {
    const g: ProcessGroups = { bench: () => [process.pid] };
    const gw = this.gateway;
    if (gw) {
      g.gateway = () => [gw.proc.pid];
      g.workers = () => childrenOf(gw.proc.pid);
    }
    const b = this.broker;
    if (b) g.broker = () => [b.pid];
    return g;
  }

  async stop(): Promise<void> {
    await this.gateway?.stop();
    await this.broker?.stop();
  }
}
