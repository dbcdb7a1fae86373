// A subscriber that stops reading: raw WebSocket over a Node socket, paused after `subscribed`, so
// the gateway meets real TCP backpressure (Bun's and browsers' WebSocket clients always read).
//   [SHARE=group] node slow-subscriber.cjs PORT TOPIC PAUSE_MS POLICY [START]
// Prints one JSON line per notable frame: subscribed, live, lagged, close; and events counts.
const net = require("node:net");
const crypto = require("node:crypto");
const [port, topic, pauseMs, policy, start] = process.argv.slice(2);
const sock = net.connect(Number(port), "127.0.0.1");
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

function textFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
let buf = Buffer.alloc(0);
let upgraded = false;
let events = 0;
sock.on("data", (d) => {
  buf = buf.length ? Buffer.concat([buf, d]) : d;
  if (!upgraded) {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    upgraded = true;
    buf = buf.subarray(end + 4);
    sock.write(textFrame(JSON.stringify({ t: 1, v: 1 })));
    sock.write(textFrame(JSON.stringify({ t: 12, cid: 1, sub: "slow", topic, policy, ...(start ? { start } : {}), ...(process.env.SHARE ? { share: process.env.SHARE } : {}) })));
  }
  while (buf.length >= 2) {
    const opcode = buf[0] & 0x0f;
    let len = buf[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buf.length < 4) return;
      len = buf.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (buf.length < 10) return;
      len = Number(buf.readBigUInt64BE(2));
      at = 10;
    }
    if (buf.length < at + len) return;
    const payload = buf.subarray(at, at + len);
    buf = buf.subarray(at + len);
    if (opcode === 8) {
      say({ close: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, events });
      process.exit(0);
    }
    if (opcode !== 1) continue;
    const f = JSON.parse(payload.toString());
    if (f.t === 23) {
      say({ subscribed: true });
      sock.pause();
      setTimeout(() => sock.resume(), Number(pauseMs));
    } else if (f.t === 24) events++;
    else if (f.t === 25) events += f.events.length;
    else if (f.t === 26) say({ live: true, events });
    else if (f.t === 27) say({ lagged: f, events });
  }
});
sock.on("close", () => {
  say({ ended: true, events });
  process.exit(0);
});
