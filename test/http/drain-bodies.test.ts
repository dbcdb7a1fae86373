import { expect, test } from "bun:test";
import { type Socket, connect } from "node:net";
import { startGateway } from "../support/gateway";

/**
 * A drain answers every HTTP request it has, the ones whose body is still arriving too. Those were
 * closed unanswered when the process ended (outside probe: 3 of 3, and 4 slow requests taken 10 s
 * into a long drain): now each is answered 503 SHUTTING_DOWN as the drain begins, and one that comes
 * during the drain at once, before its body, since nothing it says can change that answer.
 */
function slowPost(port: number): { socket: Socket; response: Promise<string> } {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  const response = new Promise<string>((resolve) => {
    socket.on("data", (d) => (text += String(d)));
    socket.on("close", () => resolve(text));
    socket.on("error", () => resolve(text));
  });
  const body = JSON.stringify({ type: "slow", data: "x".repeat(60) });
  socket.write(`POST /api/v1/events?topic=drain-bodies HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  // A byte now and then, never the whole body.
  let at = 10;
  const trickle = setInterval(() => (at < body.length - 1 && !socket.destroyed ? socket.write(body[at++]!) : clearInterval(trickle)), 400);
  socket.on("close", () => clearInterval(trickle));
  return { socket, response };
}

test("SIGTERM with request bodies still arriving: each is answered 503 SHUTTING_DOWN, not closed unanswered, and one made during the drain too", async () => {
  const gw = await startGateway({ KAFKA_BROKERS: "", SHUTDOWN_TIMEOUT_MS: "3000" });
  // A WebSocket client that reads nothing keeps the drain going while its close frame waits to be
  // read (up to SHUTDOWN_TIMEOUT_MS): the request made below comes during the drain, not after it.
  const idle = connect(gw.port, "127.0.0.1");
  idle.on("error", () => {});
  await new Promise((r) => idle.once("connect", r));
  idle.write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  await new Promise((r) => idle.once("data", r));
  idle.pause();
  const before = [slowPost(gw.port), slowPost(gw.port)];
  await Bun.sleep(300);
  const exited = gw.stop("SIGTERM");
  await Bun.sleep(100);
  const during = slowPost(gw.port);
  const answers = await Promise.all([...before, during].map((p) => p.response));
  for (const a of answers) {
    expect(a).toStartWith("HTTP/1.1 503");
    expect(a).toContain('"code":"SHUTTING_DOWN"');
    expect(a).toContain('"mayBePersisted":false');
  }
  expect(await exited).toBe(0);
  idle.destroy();
}, 30_000);
