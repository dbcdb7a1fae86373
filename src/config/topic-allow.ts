/**
 * TOPIC_ALLOW, less TOPIC_DENY, as the whole-name matches they are documented as. Used unanchored, `orders\..*` let
 * `internal.orders.x`, `xorders.y` and `secret_orders.leak` be published to and read (outside
 * security tester): an operator writing a pattern for a prefix got one for a substring.
 */
export function topicAllowPattern(source: string, deny = "none"): RegExp {
  // TOPIC_DENY, anchored as well, as a lookahead: one test of one expression at each call site.
  return new RegExp(deny === "none" ? `^(?:${source})$` : `^(?!(?:${deny})$)(?:${source})$`);
}
