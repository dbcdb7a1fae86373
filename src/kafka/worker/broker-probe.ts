/**
 * Whether a worker's producer can reach a broker (runs inside each worker, main.ts). librdkafka says
 * when every broker connection is down (ALL_BROKERS_DOWN, -187) but never that one is back, and a
 * broker that hangs without closing its connections (SIGSTOP, a network partition) raises nothing
 * for a minute (socket.timeout.ms). So a metadata request with a short timeout is asked every second:
 * brokers are down at ALL_BROKERS_DOWN, or after FAILURES_DOWN failed probes in a row, and up again at
 * the first answer to a probe sent after the last ALL_BROKERS_DOWN. A stall of a few seconds (a
 * leader failover, a GC pause) is backpressure, not an outage: with the default 1.5 s timeout,
 * three failures take about 5 s. The probe also keeps a connection busy, so the broker never closes it as idle
 * (which would raise ALL_BROKERS_DOWN with nothing wrong). Each answer also names the cluster it came
 * from: a different one at the same address (wiped, or the address moved) is told to the gateway,
 * which starts every worker afresh (pool.ts). Records written while a probe was out answer it too:
 * a metadata request waits behind the produce requests on the broker's connection, and a worker
 * writing a large backlog after a freeze had every probe time out for 20 s while it wrote, was
 * taken for wedged and replaced, and its 60,000 events in flight were nacked WORKER_LOST (chaos tester).
 */
const INTERVAL_MS = 1000;
// After this many failed probes in a row (about 17 s at the default timeout), and as many again each
// time, a client made for the question alone asks too (MetadataClient.freshProbe). The worker's client
// is taken for wedged when two fresh ones in a row got answers, 17 s apart, while it got none: a
// client reconnecting after an outage waits at most librdkafka's reconnect.backoff.max.ms (10 s).
const FRESH_EVERY = 10;
const FRESH_ANSWERS_WEDGED = 2;
// A probe unanswered this long past its own timeout is taken for lost: its thread is stuck.
const LOST_AFTER_MS = 5000;
const RETRY_MS = 250;
const FAILURES_DOWN = 3;

interface MetadataClient {
  /** `cluster`: the id of the cluster that answered, when known. */
  getMetadata(o: { allTopics: boolean; timeout: number }, cb: (err: unknown, cluster?: string | null) => void): void;
  /** The same question from a client made for it alone (a new librdkafka handle), then destroyed. */
  freshProbe?(o: { timeout: number }, cb: (err: unknown, cluster?: string | null) => void): void;
}

export class BrokerProbe {
  up = true;
  private allDownAt = 0;
  private failures = 0;
  private probing = false;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private cluster: string | null = null;
  /** Counts probes sent: the answer of one taken for lost is ignored when it comes at last. */
  private sent = 0;
  private lostTimer: NodeJS.Timeout | null = null;
  /** Fresh clients answered in a row since the worker's own last did. */
  private freshAnswers = 0;

  constructor(
    private readonly client: MetadataClient,
    private readonly timeoutMs: number,
    private readonly onChange: (up: boolean, reason: string) => void,
    private readonly onCluster: (id: string) => void = () => {},
    /**
     * A probe went unanswered LOST_AFTER_MS past its timeout: whatever answers probes is stuck and
     * should be replaced. It counts as a failed probe, and probing goes on. Before, a probe that never
     * answered stopped all probing, and brokers stayed "down" after they came back (chaos tester: a
     * worker down for 4.5 minutes after a run of broker faults, /health/ready 503 throughout).
     */
    private readonly onLost: () => void = () => {},
    /**
     * The worker's own client fails every probe while a fresh one reaches the cluster: its handle is
     * wedged, and the worker should be replaced. Seen once after a run of faults and a cluster wiped
     * at the same address (chaos tester): librdkafka's own metadata refreshes were answered, while
     * every probe through the handle timed out for 17 minutes, so the worker said "brokers: down",
     * the instance was never ready, and nothing replaced it (its process answered every ping).
     */
    private readonly onWedged: (reason: string) => void = () => {},
    /** How many records the worker's client has had written so far (delivery reports without error). */
    private readonly written: () => number = () => 0,
  ) {}

  /** Once the producer is connected (probing before would only report that it is not). */
  start(): void {
    this.started = true;
    this.schedule(INTERVAL_MS);
  }

  /** librdkafka's ALL_BROKERS_DOWN: down now, and probe to see it end. */
  allBrokersDown(message: string): void {
    if (!this.started) return;
    this.allDownAt = Date.now();
    this.set(false, message);
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.lostTimer) clearTimeout(this.lostTimer);
  }

  private schedule(ms: number): void {
    if (this.probing || this.stopped || !this.started) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.probe(), ms);
  }

  private probe(): void {
    this.timer = null;
    this.probing = true;
    const sentAt = Date.now();
    const writtenAtSend = this.written();
    const n = ++this.sent;
    this.lostTimer = setTimeout(() => {
      this.lostTimer = null;
      if (this.stopped || n !== this.sent || !this.probing) return;
      this.probing = false;
      this.sent++; // its answer, should it come, is ignored
      this.onLost();
      if (this.written() > writtenAtSend) return this.answered(sentAt, null, "records were written");
      this.failed(new Error(`a broker probe went unanswered for ${this.timeoutMs + LOST_AFTER_MS} ms`));
    }, this.timeoutMs + LOST_AFTER_MS);
    // Only the topics this producer already knows: cheap even on a cluster with thousands of topics.
    this.client.getMetadata({ allTopics: false, timeout: this.timeoutMs }, (err, cluster) => {
      if (n !== this.sent) return;
      if (this.lostTimer) clearTimeout(this.lostTimer);
      this.lostTimer = null;
      this.probing = false;
      if (this.stopped) return;
      if (!err) this.answered(sentAt, cluster ?? null, "a broker answered");
      else if (this.written() > writtenAtSend) this.answered(sentAt, null, "records were written");
      else this.failed(err);
    });
  }

  /** The brokers answered a probe sent at `sentAt` (`cluster`: the id it named, if any). */
  private answered(sentAt: number, cluster: string | null, reason: string): void {
    this.failures = 0;
    this.freshAnswers = 0;
    if (cluster && cluster !== this.cluster) this.onCluster((this.cluster = cluster));
    // An answer to a question asked before the last ALL_BROKERS_DOWN says nothing about now.
    if (sentAt >= this.allDownAt) this.set(true, reason);
    this.schedule(this.up ? INTERVAL_MS : RETRY_MS);
  }

  private failed(err: unknown): void {
    if (++this.failures >= FAILURES_DOWN) this.set(false, String((err as Error).message ?? err));
    if (this.failures % FRESH_EVERY === 0 && this.client.freshProbe) return this.askFresh();
    this.schedule(RETRY_MS);
  }

  /** Whether a new client reaches the cluster that the worker's own cannot; probing goes on after it. */
  private askFresh(): void {
    this.probing = true;
    const failures = this.failures;
    const n = ++this.sent;
    this.lostTimer = setTimeout(() => {
      this.lostTimer = null;
      if (this.stopped || n !== this.sent || !this.probing) return;
      this.probing = false;
      this.sent++;
      this.onLost();
      this.schedule(RETRY_MS);
    }, this.timeoutMs + LOST_AFTER_MS);
    this.client.freshProbe!({ timeout: this.timeoutMs }, (err, cluster) => {
      if (n !== this.sent) return;
      if (this.lostTimer) clearTimeout(this.lostTimer);
      this.lostTimer = null;
      this.probing = false;
      if (this.stopped) return;
      if (err || this.failures !== failures) this.freshAnswers = 0;
      // Another cluster at the address: the gateway starts every worker afresh anyway.
      else if (cluster && this.cluster !== null && cluster !== this.cluster) this.onCluster((this.cluster = cluster));
      else if (++this.freshAnswers >= FRESH_ANSWERS_WEDGED) {
        return this.onWedged(`${failures} broker probes in a row failed through the worker's client while new clients reached the cluster`);
      }
      this.schedule(RETRY_MS);
    });
  }

  private set(up: boolean, reason: string): void {
    if (this.up === up) return;
    this.up = up;
    this.onChange(up, reason);
  }
}

/**
 * librdkafka errors that are failures of the connection itself (credentials, TLS): the cause a
 * worker keeps and names, since the all-brokers-down that follows them says nothing about why.
 */
export const CONNECTION_FAILURE = /authentication|ssl|certificate|handshake/i;
