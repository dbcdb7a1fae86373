/**
 * TOPIC_ALLOW as the whole-name match it is documented as. Used unanchored, `orders\..*` let
 * `internal.orders.x`, `xorders.y` and `secret_orders.leak` be published to and read (outside
 * security tester): an operator writing a pattern for a prefix got one for a substring.
 */
export function topicAllowPattern(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}
