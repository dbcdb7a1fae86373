/**
 * Caps the kernel's send buffer of every client connection.
 *
 * Linux grows a TCP socket's send buffer as the connection's window allows, up to net.ipv4.tcp_wmem's
 * maximum (4 MiB here), and a client that stops reading leaves it full. Each such socket then holds
 * that much kernel memory, and the gateway pays a copy into it of everything it is sent meanwhile:
 * 300 WebSockets that subscribed to 200 KB events and never read held 4 MiB each (1.2 GB in all),
 * and copying into them kept the event loop in sendmsg() for 4–7 s, while another client's acks
 * waited that long. Our own queues (src/ws/outbound.ts) bound what we hold above the socket; this
 * bounds what the kernel holds under it.
 *
 * Bun.serve exposes no socket, so the cap is set once on the listening socket, which every accepted
 * connection inherits on Linux (the size and the lock that keeps autotuning off). The listening
 * descriptor is found through /proc: the socket's inode, listening on our port, among our own fds.
 */
import { dlopen, FFIType } from "bun:ffi";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

// asm-generic/socket.h, the same on x86-64 and arm64.
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const TCP_LISTEN = "0A";

const SYMBOLS = {
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
} as const;
let libc: ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"] | null = null;

/** glibc's, as in the Dockerfile's Debian image and on the machines the gateway is built on. */
function sockets(): NonNullable<typeof libc> {
  libc ??= dlopen("libc.so.6", SYMBOLS).symbols;
  return libc;
}

/** Inodes of the sockets listening on `port` (IPv4 and IPv6), from /proc/net/tcp{,6}. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      if (f.length > 9 && f[3] === TCP_LISTEN && f[1]!.endsWith(`:${hexPort}`)) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** This process's descriptors that are the sockets listening on `port`. */
function listeningDescriptors(port: number): number[] {
  const inodes = listeningInodes(port);
  const fds: number[] = [];
  if (inodes.size === 0) return fds;
  for (const name of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1]!)) fds.push(Number(name));
  }
  return fds;
}

/**
 * Sets SO_SNDBUF on the sockets listening on `port`, so that every connection accepted from then on
 * has it (the kernel keeps twice the value: it counts its bookkeeping too). Returns null, or the
 * reason it could not be set (the gateway then runs with the kernel's autotuning, and says so).
 */
export function capSendBuffer(port: number, bytes: number): string | null {
  try {
    const fds = listeningDescriptors(port);
    if (fds.length === 0) return `no listening socket on port ${port} found in /proc`;
    const value = new Int32Array([bytes]);
    for (const fd of fds) {
      if (sockets().setsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, 4) !== 0) return `setsockopt(SO_SNDBUF) failed on descriptor ${fd}`;
    }
    return null;
  } catch (e) {
    return String(e);
  }
}
