import { type Browser, chromium } from "playwright-core";

/**
 * Debian's Chromium (scripts/bootstrap installs it), driven by playwright-core: no browser download.
 * The flags keep it off the network this machine does not have (background updates, sync, QUIC).
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
