import { createServer } from "node:net";

/** A loopback ws:// URL where nothing listens: a port taken and released, so connecting is refused. */
export async function deadUrl(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return `ws://127.0.0.1:${port}/ws`;
}
