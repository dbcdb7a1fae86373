// Connections that subscribe and never read: raw WebSockets over Node sockets with a small receive
// buffer, so the gateway meets real TCP backpressure at once. Each subscription has a filter of its
// own (24 clauses, all true for the test's events, so none short-circuits).
//   node non-reader.cjs PORT CONNECTIONS SUBS_PER_CONNECTION TOPIC
// Prints "opened" once every subscribe is sent; holds the sockets until killed.
const net = require("node:net");
const crypto = require("node:crypto");
const [port, connections, subs, topic] = process.argv.slice(2);

function textFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
}

let open = 0;
const sockets = [];
for (let c = 0; c < Number(connections); c++) {
  const sock = net.connect({ port: Number(port), host: "127.0.0.1" });
  sockets.push(sock);
  sock.once("connect", () => {
    sock.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    sock.once("data", () => {
      sock.pause(); // never read again
      const frames = [textFrame(JSON.stringify({ t: 1, v: 1 }))];
      for (let j = 0; j < Number(subs); j++) {
        const where = Array.from({ length: 24 }, (_, k) => `not data.i == ${(c * Number(subs) + j) * 1000 + k + 1_000_000}`).join(" and ");
        frames.push(textFrame(JSON.stringify({ t: 12, cid: j + 1, sub: `s${j}`, topic, filter: { where } })));
      }
      sock.write(Buffer.concat(frames));
      if (++open === Number(connections)) console.log("opened");
    });
  });
  sock.on("error", () => {});
}
setInterval(() => {}, 1 << 30);
