import type { Serve, Server } from "bun";

type Options<T> = Serve.Options<T, string> & { port: number };

/**
 * The public port, which can stop accepting and start again while every connection it already
 * accepted goes on being served.
 *
 * Bun.serve has no hook on accept: a connection that never sends a request is invisible until it
 * times out, and at the open-files limit uWebSockets' accept loop spins on EMFILE and answers no one
 * (oven-sh/bun#32705). Closing the listening socket is the one lever left: the kernel then refuses
 * newcomers at once, and the connections already held, WebSockets included, keep their server.
 */
export class Listener<T> {
  readonly port: number;
  private current: Server<T> | null;
  /** Servers that stopped listening but may still hold connections; dropped once empty. */
  private readonly retired = new Set<Server<T>>();

  constructor(
    private readonly options: Options<T>,
    /** Called on each listening socket opened (at start, and on each resume), before it accepts. */
    private readonly onListening: (port: number) => void = () => {},
  ) {
    this.current = Bun.serve<T, string>(options);
    this.port = this.current.port!;
    onListening(this.port);
  }

  get accepting(): boolean {
    return this.current !== null;
  }

  /** Stops accepting; what is connected stays. */
  pause(): void {
    if (!this.current) return;
    void this.current.stop(false);
    this.retired.add(this.current);
    this.current = null;
  }

  /** Accepts again on the same port; false if the port cannot be taken back yet (retried by the caller). */
  resume(): boolean {
    if (this.current) return true;
    for (const s of this.retired) if (s.pendingRequests === 0 && s.pendingWebSockets === 0) this.retired.delete(s);
    try {
      this.current = Bun.serve<T, string>({ ...this.options, port: this.port });
      this.onListening(this.port);
      return true;
    } catch {
      return false;
    }
  }

  /** HTTP requests being answered, by every server. */
  get pendingRequests(): number {
    let n = this.current?.pendingRequests ?? 0;
    for (const s of this.retired) n += s.pendingRequests;
    return n;
  }

  get pendingWebSockets(): number {
    let n = this.current?.pendingWebSockets ?? 0;
    for (const s of this.retired) n += s.pendingWebSockets;
    return n;
  }

  /** Stops every server, the retired ones too; `closeActive` drops what they still hold. */
  stop(closeActive: boolean): void {
    this.current?.stop(closeActive);
    for (const s of this.retired) s.stop(closeActive);
  }
}
