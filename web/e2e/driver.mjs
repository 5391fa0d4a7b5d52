// Drives Debian's Chromium with playwright-core for the browser tests (the web app's and the
// console's), one JSON command per line on stdin, one JSON answer per line on stdout. The
// microphone is the WAV file named on the command line (Chromium's fake capture device reads it
// afresh each time capture starts).
//   node web/e2e/driver.mjs /path/to/mic.wav
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const [mic] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${mic}%noloop`,
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const logs = [];
page.on("console", (message) => logs.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => logs.push(`pageerror: ${error.message}`));

const commands = {
  goto: ({ url }) => page.goto(url),
  click: ({ selector, timeout, count }) => page.locator(selector).first().click({ timeout, clickCount: count ?? 1 }),
  fill: ({ selector, value, timeout }) => page.locator(selector).first().fill(value, { timeout }),
  press: ({ selector, key, timeout }) => page.locator(selector).first().press(key, { timeout }),
  texts: ({ selector }) => page.locator(selector).allInnerTexts(),
  attribute: ({ selector, name }) => page.locator(selector).first().getAttribute(name),
  enabled: ({ selector }) => page.locator(selector).first().isEnabled(),
  wait: ({ selector, state, timeout }) =>
    page.locator(selector).first().waitFor({ state: state ?? "visible", timeout }).then(() => true),
  screenshot: ({ path }) => page.screenshot({ path, fullPage: true }).then(() => path),
  // from now on, answer every prompt with `answer` and accept every confirm
  dialogs: ({ answer }) => {
    page.removeAllListeners("dialog");
    page.on("dialog", (dialog) => void dialog.accept(answer ?? undefined));
    return true;
  },
  // click what starts a download: its file name and text
  download: async ({ selector, timeout }) => {
    const [file] = await Promise.all([
      page.waitForEvent("download", { timeout }),
      page.locator(selector).first().click({ timeout }),
    ]);
    return { name: file.suggestedFilename(), text: await readFile(await file.path(), "utf8") };
  },
  evaluate: ({ expression }) => page.evaluate(expression),
  logs: () => logs.splice(0),
};

const lines = createInterface({ input: process.stdin });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of lines) {
  const { op, ...args } = JSON.parse(line);
  try {
    const command = commands[op];
    if (command === undefined) throw new Error(`no such command: ${op}`);
    const value = await command(args);
    process.stdout.write(`${JSON.stringify({ ok: true, value: value ?? null })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(error?.message ?? error).split("\n")[0] })}\n`);
  }
}
await browser.close();
