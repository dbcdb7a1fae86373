import { randomBytes } from "node:crypto";
import * as net from "node:net";

/**
 * A WebSocket client on a bare TCP socket that can stop reading (pause), so the gateway meets real
 * TCP backpressure: Bun's and browsers' WebSocket clients always read. JSON text frames only.
 */
export class RawWsClient {
  readonly frames: Array<Record<string, any>> = [];
  closeCode: number | null = null;
  closeReason = "";
  /** Pongs read (answers to the WebSocket PINGs this client sent). */
  pongs = 0;
  /** True when the TCP connection ended without a close frame (what a client sees as 1006). */
  abnormal = false;
  readonly ended: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);

  private constructor(private readonly sock: net.Socket) {
    this.ended = new Promise((resolve) => {
      sock.on("close", () => {
        if (this.closeCode === null) this.abnormal = true;
        resolve();
      });
    });
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => this.onData(d));
  }

  /** The gateway's answer to the upgrade: status line and headers. */
  responseHead = "";

  /**
   * `headers`: extra upgrade request lines, each ending in \r\n (e.g. a permessage-deflate offer).
   * `localAddress`: the client address the gateway sees (any of 127.0.0.0/8 on Linux's loopback).
   */
  /** An upgrade that may be refused: the client, or the error carrying the refusal's response. */
  static attempt(port: number, headers = "", localAddress?: string): Promise<RawWsClient | Error> {
    return RawWsClient.connect(port, "/ws", headers, localAddress).then((c) => c, (e: Error) => e);
  }

  static async connect(port: number, path = "/ws", headers = "", localAddress?: string): Promise<RawWsClient> {
    const sock = net.connect({ port, host: "127.0.0.1", ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", () => resolve());
      sock.once("error", reject);
    });
    sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`);
    let head = Buffer.alloc(0);
    let responseHead = "";
    const rest = await new Promise<Buffer>((resolve, reject) => {
      const onData = (d: Buffer) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        sock.off("data", onData);
        if (!head.subarray(0, 12).toString().includes("101")) return reject(new Error(head.toString()));
        responseHead = head.subarray(0, end).toString();
        resolve(head.subarray(end + 4));
      };
      sock.on("data", onData);
    });
    const c = new RawWsClient(sock);
    c.responseHead = responseHead;
    if (rest.length) c.onData(rest);
    return c;
  }

  send(frame: object): void {
    this.sendFrame(Buffer.from(JSON.stringify(frame)));
  }

  /**
   * One masked frame with this payload as it is: `rsv1` marks it compressed (permessage-deflate, the
   * payload then being the raw deflate stream without its final 00 00 ff ff).
   */
  sendFrame(payload: Buffer, opts: { opcode?: number; rsv1?: boolean } = {}): void {
    this.sock.write(maskedFrame(payload, opts));
  }

  /** Many frames in one write: a pipelining client, faster than this process could send them one by one. */
  sendFrames(payloads: Buffer[], opts: { opcode?: number } = {}): void {
    this.sock.write(Buffer.concat(payloads.map((p) => maskedFrame(p, opts))));
  }

  pause(): void {
    this.sock.pause();
  }

  /** The client's port: the peer port of the gateway's side of the connection. */
  get localPort(): number {
    return this.sock.localPort!;
  }

  resume(): void {
    this.sock.resume();
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** Ends the TCP connection after what was sent (a FIN), as a client that closed does. */
  end(): void {
    this.sock.end();
  }

  /** Waits until a frame matching `pred` has arrived. */
  async waitFor(pred: (f: Record<string, any>) => boolean, timeoutMs = 30_000): Promise<Record<string, any>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (Date.now() > deadline) throw new Error("the expected frame did not arrive");
      await Bun.sleep(10);
    }
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 2) {
      const opcode = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 1) this.frames.push(JSON.parse(payload.toString()));
      // Answered as RFC 6455 says every endpoint does (the gateway's drain waits for it), once read.
      else if (opcode === 9 && !this.sock.destroyed) this.sock.write(maskedFrame(Buffer.from(payload), { opcode: 10 }));
      else if (opcode === 10) this.pongs++;
      else if (opcode === 8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = payload.subarray(2).toString();
      }
    }
  }
}

/** A WebSocket upgrade request for /ws, for clients written on a bare TCP socket. */
export const UPGRADE_REQUEST = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** A client's (masked) text frame, for clients written on a bare TCP socket. */
export function textFrame(text: string): Buffer {
  return maskedFrame(Buffer.from(text), {});
}

function maskedFrame(payload: Buffer, opts: { opcode?: number; rsv1?: boolean }): Buffer {
  const first = 0x80 | (opts.rsv1 ? 0x40 : 0) | (opts.opcode ?? 1);
  const mask = randomBytes(4);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([first, 0x80 | n]) : n < 65536 ? Buffer.from([first, 0x80 | 126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([first, 0x80 | 127]), bigLength(n)]);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([head, mask, body]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
