/**
 * Whether a worker's producer can reach a broker (runs on Node, inside worker.ts). librdkafka says
 * when every broker connection is down (ALL_BROKERS_DOWN, -187) but never that one is back, and a
 * broker that hangs without closing its connections (SIGSTOP, a partition) raises nothing for a
 * minute (socket.timeout.ms). So a metadata request with a short timeout is asked every second:
 * brokers are down after a failed probe that follows ALL_BROKERS_DOWN or another failed probe (one
 * slow answer on a busy machine is not an outage), and up again on the first answer.
 */
const INTERVAL_MS = 1000;
const RETRY_MS = 250;

interface MetadataClient {
  getMetadata(o: { allTopics: boolean; timeout: number }, cb: (err: unknown) => void): void;
}

export class BrokerProbe {
  up = true;
  private allDownSeen = false;
  private failures = 0;
  private probing = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: MetadataClient,
    private readonly timeoutMs: number,
    private readonly onChange: (up: boolean, reason: string) => void,
  ) {}

  start(): void {
    this.schedule(INTERVAL_MS);
  }

  /** librdkafka's ALL_BROKERS_DOWN: probe now, and believe the first failure. */
  allBrokersDown(): void {
    this.allDownSeen = true;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.probing || this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.probe(), ms);
  }

  private probe(): void {
    this.timer = null;
    this.probing = true;
    // Only the topics this producer already knows: cheap even on a cluster with thousands of topics.
    this.client.getMetadata({ allTopics: false, timeout: this.timeoutMs }, (err) => {
      this.probing = false;
      if (this.stopped) return;
      if (!err) {
        this.failures = 0;
        this.allDownSeen = false;
        this.set(true, "a broker answered");
      } else if (++this.failures >= 2 || this.allDownSeen) {
        this.set(false, String((err as Error).message ?? err));
      }
      this.schedule(err ? RETRY_MS : INTERVAL_MS);
    });
  }

  private set(up: boolean, reason: string): void {
    if (this.up === up) return;
    this.up = up;
    this.onChange(up, reason);
  }
}
