// The dashboard and the approval pages in real headless Chromium, against a freshly started
// `waitpoint serve`: signing in with the printed link, filtering, completing from a token's
// page, a bulk action while tokens keep arriving, an approval page that lets a waiting run go
// on, a list that updates by itself, and script in user text that never runs. Each page is
// photographed on the way (`WAITPOINT_SCREENSHOTS=../../docs npm test` refreshes the README's).

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";

import { SHOTS, api, launchBrowser, startDriver, startServer, startWorker } from "./harness.mjs";

const VIEWPORT = { width: 1280, height: 820 };
let server;
let browser;
let context;
let page;

/** A screenshot of `target` (the page by default) as docs/`name`.png. */
async function shot(target, name) {
  await target.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

/** Tokens made through the API, with these tags. */
async function tokens(count, body) {
  const made = [];
  for (let i = 0; i < count; i += 1) made.push(await api(server.baseURL, "POST", "/api/v1/waitpoints/tokens", body));
  return made;
}

const status = async (id) => (await api(server.baseURL, "GET", `/api/v1/waitpoints/tokens/${id}`)).status;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: VIEWPORT });
  page = await context.newPage();
  page.on("dialog", (dialog) => {
    throw new Error(`a dialog opened: ${dialog.message()}`);
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the printed link signs in once, to the dev environment", async () => {
  assert.ok(server.banner.some((line) => line.startsWith(`Dashboard: ${server.baseURL}/`)), server.banner.join("\n"));
  const signIn = await browser.newContext({ viewport: VIEWPORT });
  const form = await signIn.newPage();
  await form.goto(`${server.baseURL}/tokens`);
  assert.match(form.url(), /\/sign-in\?next=%2Ftokens$/, "no page without a session");
  await shot(form, "dashboard-sign-in");

  await page.goto(server.link);
  assert.equal(new URL(page.url()).pathname, "/", "the link leaves the address bar");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(await page.locator(".environment").textContent(), "dev");

  const again = await form.goto(server.link);
  assert.equal(again.status(), 401);
  assert.match(await form.textContent("main"), /used already/);
  await signIn.close();
});

test("tokens are filtered by tag and status", async () => {
  const [red] = await tokens(1, { tags: ["colour:red", "team:a"], timeout: "1h" });
  const [blue] = await tokens(1, { tags: ["colour:blue"], timeout: "1h" });
  const [done] = await tokens(1, { tags: ["colour:red"], timeout: "1h" });
  await api(server.baseURL, "POST", `/api/v1/waitpoints/tokens/${done.id}/complete`, { data: { ok: true } });

  await page.goto(`${server.baseURL}/tokens`);
  await page.getByLabel("Tags").fill("colour:red");
  await page.getByLabel("WAITING").check();
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/tags=colour%3Ared/);
  const rows = page.locator("table.tokens tbody tr");
  await rows.first().waitFor();
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id)), [red.id]);
  assert.ok(!(await page.content()).includes(blue.id));

  await page.getByRole("link", { name: "team:a" }).first().click();
  await page.waitForURL(/tags=team%3Aa/);
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id)), [red.id]);
  await page.goto(`${server.baseURL}/tokens`);
  await shot(page, "dashboard-tokens");
});

test("a token is completed from its page with JSON typed in the editor", async () => {
  const [token] = await tokens(1, { tags: ["editor"], timeout: "1h", idempotencyKey: "order-42" });
  await page.goto(`${server.baseURL}/tokens/${token.id}`);
  await shot(page, "dashboard-token");
  const editor = page.locator("textarea#output");
  await editor.fill('{"status": "approved",');
  await page.getByRole("button", { name: "Complete", exact: true }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /not JSON/);
  assert.equal(await status(token.id), "WAITING", "refused JSON changes nothing");

  await editor.fill('{"status": "approved", "by": "browser"}');
  await page.getByRole("button", { name: "Complete", exact: true }).click();
  await page.locator("#fields .status-completed").waitFor();
  const stored = await api(server.baseURL, "GET", `/api/v1/waitpoints/tokens/${token.id}`);
  assert.equal(stored.completedVia, "DASHBOARD");
  assert.deepEqual(JSON.parse(stored.output).json, { status: "approved", by: "browser" });
  assert.match(await page.textContent("#timeline"), /completed from the dashboard/);
});

test("a bulk completion by filter leaves the tokens that arrive meanwhile waiting", async () => {
  const shown = await tokens(5, { tags: ["bulk"], timeout: "1h" });
  await page.goto(`${server.baseURL}/tokens?tags=bulk&status=WAITING`);
  await page.getByRole("link", { name: "complete…" }).click();
  await page.locator("#count").waitFor();
  assert.equal(await page.textContent("#count"), "5");
  await shot(page, "dashboard-bulk");

  // Tokens keep arriving while the person reads the count and confirms.
  let arriving = true;
  const arrivals = [];
  const feeder = (async () => {
    while (arriving) arrivals.push((await tokens(1, { tags: ["bulk"], timeout: "1h" }))[0]);
  })();
  while (arrivals.length < 3) await new Promise((resolve) => setImmediate(resolve));
  await page.locator("textarea#output").fill('{"bulk": true}');
  await page.getByRole("button", { name: /^Complete 5 tokens$/ }).click();
  await page.locator("#summary").waitFor();
  arriving = false;
  await feeder;
  assert.match(await page.textContent("#summary"), /^5 done/);
  for (const token of shown) assert.equal(await status(token.id), "COMPLETED");
  for (const token of arrivals) assert.equal(await status(token.id), "WAITING", `${token.id} arrived later`);
});

test("an answered approval page lets the waiting run go on", async () => {
  const driver = await startDriver();
  const worker = startWorker(server.baseURL);
  try {
    const run = await api(server.baseURL, "POST", "/api/v1/tasks/bench-wait/trigger", {
      payload: { driver: driver.url, i: "approval-1" },
      options: { tags: ["approval"] },
    });
    const { tokenId } = await driver.announced("approval-1");
    await page.goto(`${server.baseURL}/runs/${run.id}`);
    await page.locator("#fields .status-waiting").waitFor();
    await shot(page, "dashboard-run");
    await page.goto(`${server.baseURL}/tokens/${tokenId}`);
    const approvalUrl = await page.locator("dd .copyable button[data-copy*='/approve/']").getAttribute("data-copy");

    // The approver has no session: the signed URL is all it takes.
    const approver = await browser.newContext({ viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
    const phone = await approver.newPage();
    await phone.goto(approvalUrl);
    await phone.getByRole("heading", { name: "Approval requested" }).waitFor();
    await shot(phone, "approval-page");
    await phone.getByLabel("Comment (optional)").fill("Looks good");
    await phone.getByRole("button", { name: "Approve" }).click();
    await phone.locator("#outcome").waitFor();
    assert.equal(await phone.textContent("#outcome h2"), "Approved");
    await shot(phone, "approval-answered");
    await phone.goto(`${server.baseURL}/tokens`);
    assert.match(phone.url(), /\/sign-in/, "the approval page opened nothing else");
    await approver.close();

    await driver.done("approval-1");
    await page.goto(`${server.baseURL}/runs/${run.id}`);
    await page.locator("#fields .status-completed").waitFor();
    const stored = await api(server.baseURL, "GET", `/api/v1/waitpoints/tokens/${tokenId}`);
    assert.equal(stored.completedVia, "APPROVAL_PAGE");
    assert.deepEqual(JSON.parse(stored.output).json, { status: "approved", comment: "Looks good" });
    await page.goto(`${server.baseURL}/runs`);
    await shot(page, "dashboard-runs");
  } finally {
    worker.stop();
    driver.stop();
  }
});

test("an open list shows new tokens by itself", async () => {
  await page.goto(`${server.baseURL}/tokens?tags=live`);
  await page.waitForFunction(() => document.body.dataset.live === "connected");
  const [token] = await tokens(1, { tags: ["live"], timeout: "1h" });
  await page.locator(`tr[data-id="${token.id}"]`).waitFor();
  await api(server.baseURL, "POST", `/api/v1/waitpoints/tokens/${token.id}/complete`, { data: 1 });
  await page.locator(`tr[data-id="${token.id}"] .status-completed`).waitFor();
  await page.goto(`${server.baseURL}/`);
  await shot(page, "dashboard-overview");
});

test("script in user text never runs", async () => {
  const payload = `<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>"'`;
  const [token] = await tokens(1, {
    tags: [payload.slice(0, 100)],
    idempotencyKey: payload,
    timeout: "1h",
    approval: { title: payload, description: payload, fields: [{ name: "f", label: payload, type: "text" }] },
  });
  await api(server.baseURL, "POST", "/api/v1/tasks/xss/trigger", { payload: { p: payload }, options: { tags: [payload.slice(0, 60)] } });
  const approvalUrl = (await api(server.baseURL, "POST", "/api/v1/waitpoints/tokens", {
    approval: { title: payload },
  })).approvalUrl;
  for (const target of ["/tokens", `/tokens/${token.id}`, "/runs", "/", approvalUrl]) {
    await page.goto(target.startsWith("http") ? target : `${server.baseURL}${target}`);
    assert.equal(await page.evaluate(() => window.__xss), undefined, `script ran on ${target}`);
    assert.equal(await page.locator("main img, main script").count(), 0, `markup from user text on ${target}`);
  }
  await page.goto(`${server.baseURL}/tokens/${token.id}`);
  assert.ok((await page.textContent("#fields")).includes(payload), "shown as text");
});
