import type { ScenarioReport } from "./report";

/** A benchmark scenario: parses its own argv, runs, and returns what the report shows. */
export interface Scenario {
  name: string;
  title: string;
  run(argv: string[]): Promise<ScenarioReport>;
}
