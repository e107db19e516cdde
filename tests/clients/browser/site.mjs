// Loads every page of the generated reference site (docs/reference) in headless Chromium from a
// local HTTP server, for tests/clients/test_reference_site.py:
//
//   node site.mjs BASE_URL CHROMIUM USER_DATA_DIR
//
// From index.html it follows every link within the site (breadth first), twice: with
// JavaScript off (each page must render its heading and content) and, for the search page,
// with JavaScript on (a query filters the list). Every link must resolve: the page answers
// 200 and a `#fragment` names an element of it. Prints a JSON summary; exits 1 on a problem.
import { chromium } from "playwright-core";

const [base, executablePath, userDataDir] = process.argv.slice(2);
const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const problems = [];
const context = await chromium.launchPersistentContext(userDataDir, { executablePath, headless: true, args: flags, javaScriptEnabled: false });
const pages = {};
try {
  const page = await context.newPage();
  const queue = [new URL("index.html", base).href];
  const seen = new Set(queue);
  const fragments = [];
  while (queue.length > 0) {
    const url = queue.shift();
    const response = await page.goto(url);
    if (!response || response.status() !== 200) {
      problems.push(`${url}: HTTP ${response ? response.status() : "no response"}`);
      continue;
    }
    const info = await page.evaluate(() => ({
      title: document.title,
      h1: document.querySelector("h1")?.textContent ?? "",
      text: document.body.innerText.length,
      ids: [...document.querySelectorAll("[id]")].map((e) => e.id),
      links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
      rows: document.querySelectorAll("table tr").length,
    }));
    const name = new URL(url).pathname.split("/").pop();
    pages[name] = { title: info.title, h1: info.h1, rows: info.rows, ids: info.ids };
    if (name.endsWith(".html") && (!info.h1 || info.text < 50)) problems.push(`${url}: renders no heading or no content without JavaScript`);
    for (const link of info.links) {
      const target = new URL(link);
      if (!target.href.startsWith(base)) continue;
      if (target.hash) fragments.push([url, target.href]);
      target.hash = "";
      target.search = "";
      if (!seen.has(target.href)) {
        seen.add(target.href);
        queue.push(target.href);
      }
    }
  }
  for (const [from, link] of fragments) {
    const target = new URL(link);
    const id = decodeURIComponent(target.hash.slice(1));
    const name = target.pathname.split("/").pop();
    if (!pages[name] || !pages[name].ids.includes(id)) problems.push(`${from}: the link ${link} names no element`);
  }
} finally {
  await context.close();
}
// The search page, with JavaScript: a query keeps the matching entries only.
const scripted = await chromium.launchPersistentContext(userDataDir + "-js", { executablePath, headless: true, args: flags });
let search = {};
try {
  const page = await scripted.newPage();
  const query = process.env.SEARCH_QUERY || "list_hardware";
  await page.goto(new URL(`search.html?q=${encodeURIComponent(query)}`, base).href);
  search = await page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    shown: [...document.querySelectorAll("#results li")].filter((li) => !li.hidden).map((li) => li.textContent.trim()),
    total: document.querySelectorAll("#results li").length,
  }));
} finally {
  await scripted.close();
}
console.log(JSON.stringify({ pages, problems, search }));
process.exit(problems.length > 0 ? 1 : 0);
