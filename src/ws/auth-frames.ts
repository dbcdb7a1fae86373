import type { ServerWebSocket } from "bun";
import type { AuthContext } from "../auth/session";
import type { CodecName } from "../protocol/codec";
import { CloseCodes } from "../protocol/codes";
import { GatewayError } from "../protocol/errors";
import { FrameType, PROTOCOL_VERSION, RefreshSchema, describeIssues } from "../protocol/frames";
import type { SubscriptionManager } from "../subscribe/manager";
import type { ConnectionData } from "./connection";

type Socket = ServerWebSocket<ConnectionData>;

// How long a connection whose hello was refused is still read, each frame refused the same, before it
// is closed: what the client pipelined behind its hello has arrived by then.
const REFUSED_HELLO_LINGER_MS = 250;

/**
 * The WebSocket frames that carry tokens: the token of a `hello`, and `refresh`. Kept apart from
 * connection.ts so the request path there only has the one-line authorization hooks.
 */
export function createAuthFrames(deps: {
  auth: AuthContext;
  subscriptions: SubscriptionManager;
  send(ws: Socket, frame: object, codec: CodecName): void;
  sendError(ws: Socket, codec: CodecName, e: unknown, cid?: number): void;
  welcome(ws: Socket, codec: CodecName, cid: number | undefined): void;
  /** Handles a frame again (one held while a hello's token was verified). */
  replay(ws: Socket, raw: string | Buffer<ArrayBuffer>): void;
  /** Answers a held frame, if it has a readable cid, with the hello's refusal. */
  refuseHeld(ws: Socket, raw: string | Buffer, err: GatewayError): void;
  /** Closes with `code` once every publish in flight is answered; frames read meanwhile get `refusal`. */
  closeAfterReplies(ws: Socket, code: number, reason: string, refusal: GatewayError): void;
  /** Reads the socket again, if holding frames had stopped it and nothing else holds it. */
  readAgain(ws: Socket): void;
}) {
  const enabled = deps.auth.authenticator.enabled;

  /**
   * A hello without a valid token: answered, and so is every frame sent behind it (each request gets
   * its one reply), then closed with 4401, the code that says "reconnect with a new token"; or, when
   * the token could not be checked (the key set unreachable: UNAVAILABLE), with 1013, "try again later".
   */
  function refuseHello(ws: Socket, codec: CodecName, err: GatewayError, cid: number | undefined, held: ReadonlyArray<string | Buffer<ArrayBuffer>> = []): void {
    deps.sendError(ws, codec, err, cid);
    for (const raw of held) deps.refuseHeld(ws, raw, err);
    // Frames the client sent behind the hello that are not read yet (a refusal that comes quickly
    // beats them) are answered too, for a moment, before the close: closed at once, they went
    // unanswered (outside tester: 50 frames behind a hello refused UNAVAILABLE, none answered).
    ws.data.refusedHello = err;
    ws.data.outbound!.flush(true);
    deps.readAgain(ws); // unread, the client's closing handshake would make the close a reset
    setTimeout(() => {
      if (ws.data.closed) return;
      // The reason is in the nack; a close reason is capped at 123 bytes. A later hello may follow
      // publishes still in flight (a connection already welcomed): their replies come first.
      if (err.code === "UNAVAILABLE") deps.closeAfterReplies(ws, CloseCodes.TRY_AGAIN_LATER, "the token could not be checked now; reconnect later", err);
      else deps.closeAfterReplies(ws, CloseCodes.REAUTHENTICATE, "reconnect with a valid token", err);
    }, REFUSED_HELLO_LINGER_MS);
  }

  /**
   * Holds the frames read while a token is verified (handleFrame keeps them in `held`, the socket
   * unread past a bound), and hands them over with the outcome, for runHeld once it is answered.
   */
  async function verifyHolding(ws: Socket, verifying: Promise<GatewayError | undefined>): Promise<{ err: GatewayError | undefined; held: Array<string | Buffer<ArrayBuffer>> }> {
    ws.data.held = [];
    ws.data.heldBytes = 0;
    try {
      return { err: await verifying, held: ws.data.held ?? [] };
    } finally {
      ws.data.held = null;
      ws.data.heldBytes = 0;
    }
  }

  /** Runs the frames held behind a token, in order; a hello or refresh among them holds the rest again, behind its own. */
  function runHeld(ws: Socket, held: ReadonlyArray<string | Buffer<ArrayBuffer>>): void {
    for (const raw of held) if (!ws.data.closed) deps.replay(ws, raw);
    if (ws.data.held === null) deps.readAgain(ws);
  }

  /** Under a new token, every subscription is checked again; one no longer granted ends with a FORBIDDEN notice. */
  function recheckSubscriptions(ws: Socket): void {
    const conn = ws.data.subscriber!;
    for (const sub of [...conn.subscriptions.values()]) {
      const denied = ws.data.auth!.authorizeAll("subscribe", sub.topics);
      if (denied) deps.subscriptions.revoke(conn, sub.id, denied);
    }
  }

  return {
    /**
     * The hello's part in authentication. Returns false when the hello may be welcomed now (auth off,
     * or the upgrade brought the token); true when it was refused, or its token is being verified, in
     * which case the welcome (or the refusal) follows, and frames sent behind it wait and run in order.
     */
    helloToken(ws: Socket, codec: CodecName, token: string | undefined, cid: number | undefined): boolean {
      if (!enabled) return false;
      const auth = ws.data.auth!;
      if (token === undefined) {
        if (auth.identity) return false;
        const err = new GatewayError("UNAUTHENTICATED", "this gateway requires a token: in hello (token), Authorization: Bearer, or subprotocol kgw.bearer.<token>");
        auth.refused(err, "authenticate");
        refuseHello(ws, codec, err, cid);
        return true;
      }
      // A token on a connection that has one already replaces it as a refresh does: same principal only.
      void verifyHolding(ws, auth.authenticate(token, auth.identity ? "refresh" : "authenticate")).then(({ err, held }) => {
        if (ws.data.closed) return;
        if (err) return refuseHello(ws, codec, err, cid, held);
        recheckSubscriptions(ws);
        deps.welcome(ws, codec, cid);
        runHeld(ws, held);
      });
      return true;
    },

    /** A frame that arrived after the connection's hello was refused, before its close: the same refusal. */
    refuseAfterHello(ws: Socket, raw: string | Buffer): void {
      deps.refuseHeld(ws, raw, ws.data.refusedHello!);
    },

    /** Adds who the connection is to its welcome. */
    describe(ws: Socket, welcome: Record<string, unknown>): void {
      const id = ws.data.auth!.identity;
      if (enabled && id) Object.assign(welcome, { principal: id.principal, expiresAt: id.expiresAt });
    },

    /** A new token for this connection: checked as a hello's is, then every subscription is checked again under it. */
    async onRefresh(ws: Socket, codec: CodecName, f: object, cid: number | undefined): Promise<void> {
      const parsed = RefreshSchema.safeParse(f);
      if (!parsed.success) return deps.sendError(ws, codec, new GatewayError("INVALID_FRAME", describeIssues(parsed.error)), cid);
      if (!ws.data.helloed) return deps.sendError(ws, codec, new GatewayError("HANDSHAKE_REQUIRED", `send {t:${FrameType.HELLO}, v:${PROTOCOL_VERSION}} first`), cid);
      if (!enabled) return deps.sendError(ws, codec, new GatewayError("INVALID_FRAME", "authentication is off on this gateway: there is no token to refresh"), cid);
      const auth = ws.data.auth!;
      // Frames behind it wait, as behind a hello: run at once, publishes sent after a refresh that
      // narrows the grants were checked against the old token, some of them, by how long the new one
      // took to verify (outside tester: 15-34 of 50 written to a topic the new token does not grant).
      const { err, held } = await verifyHolding(ws, auth.authenticate(parsed.data.token, "refresh"));
      if (ws.data.closed) return;
      if (err) deps.sendError(ws, codec, err, cid);
      else {
        recheckSubscriptions(ws);
        deps.send(ws, { t: FrameType.REFRESHED, cid: parsed.data.cid, principal: auth.identity!.principal, expiresAt: auth.identity!.expiresAt }, codec);
      }
      runHeld(ws, held);
    },
  };
}
