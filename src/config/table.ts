import { availableParallelism } from "node:os";
import { settings } from "./schema";

/**
 * The README's configuration table, made from the schema itself (test/config checks that the README
 * holds exactly this), so documentation and validation cannot drift apart.
 *   bun src/config/table.ts
 */
export function configTable(): string {
  const rows = Object.entries(settings).map(([name, schema]) => {
    let def = (schema as unknown as { def: { defaultValue: unknown } }).def.defaultValue;
    if (name === "KAFKA_WORKERS" && def === availableParallelism()) def = "cores";
    const shown = def === "" ? "(empty)" : def === undefined ? "(unset)" : `\`${String(def)}\``;
    return `| \`${name}\` | ${shown} | ${schema.description ?? ""} |`;
  });
  return ["| variable | default | meaning |", "|---|---|---|", ...rows].join("\n");
}

if (import.meta.main) console.log(configTable());
