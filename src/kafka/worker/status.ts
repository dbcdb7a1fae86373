import { IpcType, jsonMessage } from "../wire/ipc";

/**
 * A worker's warnings to the gateway, at most one per kind (event and error) per window. With
 * the brokers down, librdkafka repeats the same error for every reconnect attempt of every client
 * (tens a second across the readers); the gateway needs to know once, and how many were left out.
 */
export class StatusReporter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly send: (buf: Buffer) => void,
    private readonly windowMs = 10_000,
  ) {}

  report(level: "info" | "warn" | "error", event: string, message: string, extra: { code?: number; readerId?: number } = {}): void {
    // The binding hands errors on as their message (the code comes as -1), so the message is the kind.
    const kind = `${event}:${extra.code ?? ""}:${message.slice(0, 200)}`;
    const now = Date.now();
    const seen = this.last.get(kind);
    if (seen && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    this.last.set(kind, { at: now, suppressed: 0 });
    const suppressed = seen?.suppressed ? { suppressed: seen.suppressed } : {};
    this.send(jsonMessage(IpcType.STATUS, { level, event, message, ...extra, ...suppressed }));
  }
}
