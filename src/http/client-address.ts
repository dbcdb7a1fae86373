import { BlockList, isIP } from "node:net";
import type { Server } from "bun";
import type { AddressBlock } from "../config/schema";

/** Who a request comes from, for every per-address bound (connections, rates, feeds, replays). */
export type ClientAddress = (req: Request, server: Server<unknown>) => string;

/**
 * X-Forwarded-For entries read from the right, at most: a chain longer than this is a client
 * padding the header, and the hops past it are as untrusted as the rest of what it wrote.
 */
export const MAX_FORWARDED_HOPS = 16;

/**
 * The client address, as the key of its per-address bounds: the TCP peer, unless the peer is one of `trustedProxies` (TRUSTED_PROXIES,
 * validated by the config). Then it is the rightmost X-Forwarded-For entry that is not itself a
 * trusted proxy: every entry right of it was appended by a proxy we trust, every entry left of it
 * was written by the client and may be forged. An entry that is not an address stops the walk at
 * the last hop that gave one, so a proxy that writes garbage makes its clients one address, as if
 * no proxy were trusted, rather than letting the garbage name a bucket of its own.
 */
export function createClientAddress(trustedProxies: readonly AddressBlock[]): ClientAddress {
  const peerOf = (req: Request, server: Server<unknown>) => server.requestIP(req)?.address ?? "";
  const resolve = clientOf(trustedProxies, peerOf);
  return (req, server) => addressKey(resolve(req, server));
}

function clientOf(trustedProxies: readonly AddressBlock[], peerOf: ClientAddress): ClientAddress {
  if (trustedProxies.length === 0) return peerOf;
  const trusted = new BlockList();
  for (const { address, bits, family } of trustedProxies) trusted.addSubnet(address, bits, family);
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

/**
 * One key per client, however its address is written: IPv4 as it is (also when it arrives as an
 * IPv4-mapped IPv6 address), and IPv6 as its /64 network, lower case and compressed, without a zone.
 * A /64 is what one IPv6 subscriber is given (RFC 6177): counted per address, a single client would
 * have 2^64 of each per-address bound. Anything else (an address the peer or proxy could not give) is
 * kept as it is.
 */
export function addressKey(address: string): string {
  const bare = address.includes("%") ? address.slice(0, address.indexOf("%")) : address;
  if (isIP(bare) !== 6) return address;
  if (bare === "::1") return bare;
  const words = ipv6Words(bare);
  if (words === null) return address;
  // ::ffff:a.b.c.d, an IPv4 client of a dual-stack listener.
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    return `${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`;
  }
  return `${words.slice(0, 4).map((w) => w.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit words of an IPv6 address isIP accepted (a trailing dotted IPv4 part allowed). */
function ipv6Words(address: string): number[] | null {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string?];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const words = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...right].map((h) => Number.parseInt(h, 16));
  return words.length === 8 && words.every((w) => w >= 0 && w <= 0xffff) ? words : null;
}

/** Whether TRUSTED_PROXIES holds a block of every address (a /0), which lets any client name its own. */
export function trustsEveryone(trustedProxies: readonly AddressBlock[]): boolean {
  return trustedProxies.some((b) => b.bits === 0);
}
