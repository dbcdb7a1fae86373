import { BlockList, isIP } from "node:net";
import type { Server } from "bun";

/** Who a request comes from, for every per-address bound (connections, rates, feeds, replays). */
export type ClientAddress = (req: Request, server: Server<unknown>) => string;

/**
 * X-Forwarded-For entries read from the right, at most: a chain longer than this is a client
 * padding the header, and the hops past it are as untrusted as the rest of what it wrote.
 */
export const MAX_FORWARDED_HOPS = 16;

/**
 * The client address: the TCP peer, unless the peer is one of `trustedProxies` (TRUSTED_PROXIES,
 * validated by the config). Then it is the rightmost X-Forwarded-For entry that is not itself a
 * trusted proxy: every entry right of it was appended by a proxy we trust, every entry left of it
 * was written by the client and may be forged. An entry that is not an address stops the walk at
 * the last hop that gave one, so a proxy that writes garbage makes its clients one address, as if
 * no proxy were trusted, rather than letting the garbage name a bucket of its own.
 */
export function createClientAddress(trustedProxies: string): ClientAddress {
  const peerOf = (req: Request, server: Server<unknown>) => server.requestIP(req)?.address ?? "";
  const entries = trustedProxies.split(",").map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0) return peerOf;
  const trusted = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split("/") as [string, string?];
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    trusted.addSubnet(address, prefix === undefined ? (family === "ipv6" ? 128 : 32) : Number(prefix), family);
  }
  const isTrusted = (address: string) => {
    const v = isIP(address);
    return v !== 0 && trusted.check(address, v === 6 ? "ipv6" : "ipv4");
  };

  return (req, server) => {
    let client = peerOf(req, server);
    if (!isTrusted(client)) return client;
    const header = req.headers.get("x-forwarded-for");
    if (header === null) return client;
    let end = header.length;
    for (let hop = 0; hop < MAX_FORWARDED_HOPS && end > 0; hop++) {
      const comma = header.lastIndexOf(",", end - 1);
      const entry = header.slice(comma + 1, end).trim();
      end = comma < 0 ? 0 : comma;
      if (isIP(entry) === 0) return client;
      client = entry;
      if (!isTrusted(entry)) return client;
    }
    return client;
  };
}
