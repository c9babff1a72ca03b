// #/overview: the fleet at a glance (docs/product.md sections 5 and 6). The "new updates to
// approve" notification only while a managed computer needs an update neither approved nor
// declined; until the first computer checks in, how to enrol one instead. Headline counts
// refresh every 5 s in place (the cards keep their nodes, so focus and scroll stay put).

import * as api from "../api.js";
import {
  COUNT_LABELS,
  card,
  chip,
  countCards,
  errorBox,
  every,
  fill,
  fmtAgo,
  fmtBytes,
  fmtNumber,
  h,
  heading,
  legend,
  lineChart,
  link,
  routeMissing,
  setCounts,
} from "../ui.js";
import { importsTable } from "./catalog.js";

const REFRESH_MS = 5000;
const NOT_REPORTING_LABEL = "Computers not reporting";
const SERIES = [
  ["installed", "Installed", "good"],
  ["needed", "Needed", "warn"],
  ["failed", "Failed", "bad"],
];
const UPLOAD_STATE_KIND = {
  receiving: "warn",
  received: "warn",
  committed: "good",
  refused: "bad",
  cancelled: "",
  expired: "",
};

function stamp() {
  return `Refreshed every ${REFRESH_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`;
}

/** The overview's numbers as the cards name them. */
function cardValues(report) {
  const values = { ...(report.totals || {}) };
  // The not-reporting card counts computers, not (computer, update) pairs.
  values.not_reporting = report.computers_not_reporting ?? 0;
  values.computers = report.computers;
  values.computers_past_deadline = report.computers_past_deadline ?? null;
  return values;
}

function countsSection(report) {
  const values = cardValues(report);
  const cards = countCards(values);
  const label = cards.querySelector('[data-count="not_reporting"] .card-label');
  if (label) label.textContent = NOT_REPORTING_LABEL;
  cards.prepend(card("computers", "Managed computers", values.computers, "", "#/computers"));
  cards.append(
    card(
      "computers_past_deadline",
      "Computers past a deadline",
      values.computers_past_deadline,
      "bad",
      "#/computers?past_deadline=1",
    ),
  );
  return h(
    "section",
    { id: "overview-counts", "aria-labelledby": "overview-counts-title" },
    h("h2", { id: "overview-counts-title" }, "Compliance"),
    h(
      "p",
      { class: "help" },
      `${COUNT_LABELS.filter(([key]) => key !== "not_reporting")
        .map(([, text]) => text)
        .join(", ")}: computers per update, summed over every reported update. ` +
        `${NOT_REPORTING_LABEL}: computers silent for longer than the setting (counted there only).`,
    ),
    cards,
    h("p", { class: "help", id: "overview-updated" }, stamp()),
  );
}

function banners(report) {
  const enrolment = h(
    "div",
    { class: "banner info", id: "enrolment-banner", role: "note", hidden: !report.enrolment },
    h("pre", { class: "prewrap" }, report.enrolment || ""),
  );
  const newUpdates = h(
    "div",
    {
      class: "banner",
      id: "new-updates-banner",
      hidden: Boolean(report.enrolment) || !report.new_updates_to_approve,
    },
    h("strong", {}, "New updates to approve. "),
    "Managed computers need updates that are neither approved nor declined. ",
    link("#/updates?filter=new", "Review new updates"),
  );
  return { enrolment, newUpdates };
}

/** Update the banners in place after a refresh. */
function refreshBanners(nodes, report) {
  nodes.enrolment.hidden = !report.enrolment;
  const text = report.enrolment || "";
  const pre = nodes.enrolment.querySelector("pre");
  if (pre.textContent !== text) pre.textContent = text;
  nodes.newUpdates.hidden = Boolean(report.enrolment) || !report.new_updates_to_approve;
}

/** A section whose data comes from a route that may not be served yet. */
async function optional(title, id, load, draw) {
  const section = h("section", { id, class: "panel" }, h("h2", {}, title));
  try {
    const data = await load();
    section.append(draw(data));
  } catch (error) {
    section.append(routeMissing(error) ? h("p", { class: "muted" }, "Not available.") : errorBox(error));
  }
  return section;
}

function uploadsTable(uploads) {
  const columns = [
    {
      key: "title",
      label: "Upload",
      render: (row) => {
        const name = row.title || (row.files && row.files[0] ? row.files[0].path : row.upload_id);
        return link(`#/upload/${encodeURIComponent(row.upload_id)}`, name);
      },
    },
    { key: "state", label: "State", render: (row) => chip(row.state, UPLOAD_STATE_KIND[row.state] || "") },
    {
      key: "bytes",
      label: "Received",
      render: (row) => `${fmtBytes(row.received_bytes)} of ${fmtBytes(row.total_bytes)}`,
    },
    { key: "created_at", label: "Started", render: (row) => (row.created_at ? fmtAgo(row.created_at) : "–") },
    {
      key: "update_id",
      label: "Update",
      render: (row) =>
        row.update_id
          ? link(`#/updates/${encodeURIComponent(row.update_id)}`, "view")
          : row.refusal
            ? h("span", { class: "muted" }, row.refusal)
            : "–",
    },
  ];
  return simpleTable(columns, uploads, "No uploads yet.");
}

function simpleTable(columns, rows, empty) {
  return h(
    "div",
    { class: "table-wrap stack" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { class: column.num ? "num" : "" }, column.label)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((row) =>
              h(
                "tr",
                {},
                columns.map((column) =>
                  h("td", { class: column.num ? "num" : "", "data-label": column.label }, column.render(row)),
                ),
              ),
            )
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)),
      ),
    ),
  );
}

function deadLetters(list) {
  const queues = list.queues || [];
  const waiting = queues.reduce((sum, queue) => sum + queue.waiting, 0);
  if (!waiting) return h("p", { id: "dead-letters-waiting", class: "muted" }, "None waiting.");
  return h(
    "div",
    { id: "dead-letters-waiting" },
    h("p", {}, link("#/dead-letters", `${fmtNumber(waiting)} dead letter${waiting === 1 ? "" : "s"} waiting`)),
    h(
      "ul",
      {},
      queues.map((queue) =>
        h("li", { dataset: { queue: queue.queue } }, h("code", {}, queue.queue), `: ${fmtNumber(queue.waiting)}`),
      ),
    ),
  );
}

function history(data) {
  const points = (data.points || []).map((point) => ({
    at: point.at,
    values: Object.fromEntries(SERIES.map(([key]) => [key, point.counts ? point.counts[key] : 0])),
  }));
  return h(
    "div",
    { id: "compliance-history" },
    lineChart(points, SERIES, { title: "Installed, needed and failed over time" }),
    legend(SERIES),
  );
}

export async function render(root, ctx) {
  fill(root, heading("Overview"), h("p", { class: "muted" }, "Loading…"));
  let report;
  try {
    report = await api.get("/reports/overview", { offset: 0, limit: 1 });
  } catch (error) {
    fill(root, heading("Overview"), errorBox(error));
    return undefined;
  }
  const bannerNodes = banners(report);
  const counts = countsSection(report);
  const [imports, uploads, letters, chart] = await Promise.all([
    optional("Recent imports", "recent-imports", () => api.get("/catalog/imports", { limit: 5 }), (data) =>
      importsTable(data.imports || [], { compact: true }),
    ),
    optional("Recent uploads", "recent-uploads", () => api.get("/uploads", { limit: 5 }), (data) =>
      uploadsTable(data.uploads || []),
    ),
    optional("Dead letters", "dead-letters", () => api.get("/dead-letters", { limit: 1 }), deadLetters),
    optional("Compliance over time", "history", () => api.get("/reports/history", { limit: 500 }), history),
  ]);
  fill(
    root,
    heading("Overview", ctx.canWrite ? link("#/upload", "Upload an update", { class: "button" }) : null),
    bannerNodes.enrolment,
    bannerNodes.newUpdates,
    counts,
    h("div", { class: "grid overview-grid" }, chart, letters),
    h("div", { class: "grid" }, imports, uploads),
  );

  let first = true;
  return every(REFRESH_MS, async () => {
    if (first) {
      first = false; // render() just fetched these numbers
      return;
    }
    const fresh = await api.get("/reports/overview", { offset: 0, limit: 1 });
    if (!root.isConnected) return;
    setCounts(counts, cardValues(fresh));
    refreshBanners(bannerNodes, fresh);
    const updated = counts.querySelector("#overview-updated");
    if (updated) updated.textContent = stamp();
  });
}
