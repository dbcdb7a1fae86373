import { type Server, type Socket, connect, createServer } from "node:net";

/**
 * A TCP proxy in front of a gateway, for what a slow network path does: everything the gateway
 * sends after the upgrade's 101 (the welcome first) reaches the client `holdMs` late, in order.
 * `dropAll()` cuts every connection, as a network failure would, and `helloSent()` resolves once the
 * next connection has carried a frame from the client after its upgrade (the hello).
 */
export interface HoldingProxy {
  url: string;
  dropAll(): void;
  helloSent(): Promise<void>;
  close(): Promise<void>;
}

export async function holdingProxy(gatewayPort: number, holdMs: number): Promise<HoldingProxy> {
  const sockets = new Set<Socket>();
  let hello: { promise: Promise<void>; resolve: () => void } | null = null;
  const server: Server = createServer((client) => {
    const upstream = connect(gatewayPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    let upgraded = false;
    upstream.on("data", (d) => {
      // The 101 comes alone: the client says nothing more until it has it.
      if (!upgraded) return void ((upgraded = true), client.write(d));
      setTimeout(() => !client.destroyed && client.write(d), holdMs);
    });
    client.on("data", (d) => {
      upstream.write(d);
      if (upgraded) hello?.resolve();
    });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on("error", () => {});
      a.on("close", () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    helloSent: () => {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      hello = { promise, resolve };
      return promise;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
