import { error, errorResponse } from "./responses";
import { GatewayError, toWireError } from "../protocol/errors";
import type { Audit } from "../auth/audit";
import type { Authenticator, Identity } from "../auth/authenticator";
import { bearerChallenge, bearerFromAuthorization, bearerFromProtocols, tokenGivenTwice } from "../auth/bearer";

export interface UpgradeAuth {
  identity?: Identity;
  /** Response headers for the upgrade: the subprotocol chosen, never the token. */
  headers?: Record<string, string>;
}

/**
 * The WebSocket upgrade's token, when it carries one (Authorization: Bearer, or a kgw.bearer.<token>
 * subprotocol): verified before the socket exists, so a bad one is a plain 401. Without one the
 * upgrade goes ahead and the hello must bring it. Either way the subprotocol answered is kgw, when
 * offered (Bun would otherwise echo the first offered, the token itself).
 */
export async function authenticateUpgrade(req: Request, authenticator: Authenticator, audit: Audit, address: string, session: string): Promise<UpgradeAuth | Response> {
  const protocols = bearerFromProtocols(req);
  if (protocols.offered && !protocols.echo) {
    return error("INVALID_FRAME", "the only subprotocol this gateway speaks is kgw: offer it (alongside kgw.bearer.<token> when the token rides there), or offer none");
  }
  const headers = protocols.echo ? { "Sec-WebSocket-Protocol": protocols.echo } : undefined;
  if (!authenticator.enabled) return { headers };
  // Authorization in another scheme (Basic, for a proxy in front) is not ours: the subprotocol's token,
  // or the hello's, is then the one. Before, it refused a browser's valid subprotocol token. A Bearer
  // header without a token of the form is a bad token, not none: it opened a socket without one.
  const fromHeader = bearerFromAuthorization(req);
  const token = fromHeader ?? protocols.token;
  if (token === undefined) return { headers };
  try {
    const twice = tokenGivenTwice(fromHeader, protocols.token, "the kgw.bearer. subprotocol");
    if (twice) throw twice;
    // Several, perhaps of several principals: the first was served and the rest ignored (outside security probe).
    if (protocols.tokens > 1) throw new GatewayError("INVALID_FRAME", "give the token once: in one kgw.bearer. subprotocol, not several");
    if (!token) throw new GatewayError("UNAUTHENTICATED", fromHeader === "" ? "the Authorization header is not Bearer <token>" : "the kgw.bearer. subprotocol carries no token");
    const identity = await authenticator.verify(token);
    audit.record({ principal: identity.principal, action: "authenticate", outcome: "allow", transport: "ws", address, session });
    return { identity, headers };
  } catch (e) {
    const err = e instanceof GatewayError ? e : new GatewayError("UNAUTHENTICATED", "the token is not accepted");
    audit.record({ principal: "anonymous", action: "authenticate", outcome: "deny", code: err.code, reason: err.message, transport: "ws", address, session });
    const res = errorResponse(toWireError(err.code, err.message));
    const challenge = bearerChallenge(err);
    if (challenge) res.headers.set("www-authenticate", challenge);
    return res;
  }
}
