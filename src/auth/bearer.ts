/** Where a bearer token can come from on a request: `Authorization`, or a WebSocket subprotocol. */
import { GatewayError } from "../protocol/errors";

export const BEARER_PROTOCOL_PREFIX = "kgw.bearer.";
/** The one subprotocol the gateway speaks (its frames, msgpack or JSON, docs/protocol.md). */
export const GATEWAY_PROTOCOL = "kgw";

/**
 * The token of `Authorization: Bearer <token>`; "" for a Bearer header not of that form (a bad
 * token, not none); undefined without the header or with another scheme (Basic, for a proxy in
 * front, is not ours: a subprotocol's, query's or hello's token is then the one).
 */
export function bearerFromAuthorization(req: Request): string | undefined {
  const h = req.headers.get("authorization");
  if (!h) return undefined;
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(h);
  if (m) return m[1];
  return /^Bearer(?:\s|$)/i.test(h) ? "" : undefined;
}

/**
 * Browsers cannot set headers on a WebSocket, so a token may ride in Sec-WebSocket-Protocol as
 * `kgw.bearer.<token>`, offered alongside `kgw`. The server must answer with one of the offered names,
 * one it speaks, and never the token itself: `echo` is `kgw` when offered, undefined otherwise (the
 * upgrade is then refused). Answering the first other name said the socket spoke, say, MQTT.
 */
export function bearerFromProtocols(req: Request): { token?: string; echo?: string; offered: boolean; tokens: number } {
  // Two Sec-WebSocket-Protocol headers come joined by ", ": their names are counted together.
  const h = req.headers.get("sec-websocket-protocol");
  if (!h) return { offered: false, tokens: 0 };
  let token: string | undefined;
  let echo: string | undefined;
  let tokens = 0;
  for (const raw of h.split(",")) {
    const p = raw.trim();
    // In any case: `KGW.BEARER.<token>` was not taken for a token, and so was echoed back whole in
    // the answer's Sec-WebSocket-Protocol, where proxies log it (outside security tester).
    if (p.slice(0, BEARER_PROTOCOL_PREFIX.length).toLowerCase() === BEARER_PROTOCOL_PREFIX) {
      token ??= p.slice(BEARER_PROTOCOL_PREFIX.length);
      tokens++;
    } else if (p === GATEWAY_PROTOCOL) echo = p;
  }
  return { token, echo, offered: true, tokens };
}

/** Whether the request carries a token of either kind (not yet verified): `Authorization: Bearer <token>` or the subprotocol's. Another scheme, or an empty or malformed token, is none. */
export function offersToken(req: Request): boolean {
  return !!bearerFromAuthorization(req) || !!bearerFromProtocols(req).token;
}

/**
 * The refusal of a request that carries a token in two places (`Authorization` and the subprotocol,
 * or `access_token`), perhaps of two principals: one of them was served in silence. RFC 6750 (2)
 * allows one method a request, and answers more with invalid_request. Undefined for one or none; an
 * empty one (a malformed Bearer header) is left to be refused as the bad token it is.
 */
export function tokenGivenTwice(fromHeader: string | undefined, other: string | undefined, otherName: string): GatewayError | undefined {
  if (!fromHeader || !other) return undefined;
  return new GatewayError("INVALID_FRAME", `give the token once: in Authorization: Bearer or in ${otherName}, not both`);
}

/** The WWW-Authenticate value of a refusal: invalid_request for a token given twice, invalid_token for a bad one (RFC 6750 3.1). */
export function bearerChallenge(err: GatewayError): string | undefined {
  if (err.code === "UNAUTHENTICATED") return `Bearer error="invalid_token"`;
  if (err.code === "INVALID_FRAME") return `Bearer error="invalid_request"`;
  return undefined;
}
