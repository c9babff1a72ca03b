// #/audit: the console's audit log (GET /audit, services/console/app.py audit_log): every
// write and every refused request, newest first, filtered by who (token name or id), path
// prefix, HTTP status and command, in pages; the filters are kept in the address.

import * as api from "../api.js";
import {
  closeDialogs,
  chip,
  debounce,
  dialog,
  errorBox,
  field,
  fill,
  fmtAgo,
  fmtDate,
  h,
  pager,
  replaceHash,
  table,
} from "../ui.js";

const BASE = "#/audit";
const LIMITS = [50, 100, 200, 500];

function statusKind(status) {
  if (status >= 500) return "bad";
  if (status >= 400) return "warn";
  return "good";
}

export async function render(root, ctx) {
  const q = ctx.query;
  const state = {
    actor: q.get("actor") || "",
    path_prefix: q.get("path_prefix") || "",
    status: q.get("status") || "",
    command: q.get("command") || "",
    offset: Math.max(0, Number.parseInt(q.get("offset") || "0", 10) || 0),
    limit: LIMITS.includes(Number(q.get("limit"))) ? Number(q.get("limit")) : 100,
  };
  const results = h("div", { id: "audit-list" });
  const error = h("div", { class: "form-error", role: "alert", id: "audit-error" });
  const text = (name, label, help, attrs = {}) => {
    const input = h("input", { name, value: state[name], autocomplete: "off", spellcheck: "false", ...attrs });
    input.addEventListener(
      "input",
      debounce(() => {
        state[name] = input.value.trim();
        state.offset = 0;
        show();
      }, 300),
    );
    return field(label, input, help);
  };
  const limit = h(
    "select",
    {
      name: "limit",
      onchange: (event) => {
        state.limit = Number(event.target.value);
        state.offset = 0;
        show();
      },
    },
    LIMITS.map((value) => h("option", { value }, String(value))),
  );
  limit.value = String(state.limit);
  fill(
    root,
    h("div", { class: "page-head" }, h("h1", {}, "Audit log")),
    h(
      "p",
      { class: "help" },
      "Every change made through the API, and every refused request, with who made it, what was asked (secrets removed) and the answer.",
    ),
    h(
      "form",
      { id: "audit-filters", class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
      text("actor", "Who", "A token's name or id."),
      text("path_prefix", "Path starts with", "e.g. /api/v1/updates", { placeholder: "/api/v1/" }),
      text("status", "Status", "An HTTP status, e.g. 403.", { inputmode: "numeric", maxlength: 3 }),
      text("command", "Command", "e.g. approval.update.approve.v1"),
      field("Per page", limit),
    ),
    error,
    results,
  );

  let latest = 0;
  async function show() {
    const mine = ++latest;
    replaceHash(BASE, {
      actor: state.actor,
      path_prefix: state.path_prefix,
      status: state.status,
      command: state.command,
      offset: state.offset || null,
      limit: state.limit === 100 ? null : state.limit,
    });
    let log;
    try {
      log = await api.get("/audit", {
        actor: state.actor,
        path_prefix: state.path_prefix,
        status: state.status,
        command: state.command,
        offset: state.offset,
        limit: state.limit,
      });
    } catch (failure) {
      if (mine !== latest) return;
      fill(error, errorBox(failure));
      return;
    }
    if (mine !== latest) return;
    error.replaceChildren();
    fill(
      results,
      table(
        [
          { key: "at", label: "When", render: (e) => h("span", { title: fmtDate(e.at) }, fmtDate(e.at), h("div", { class: "help" }, fmtAgo(e.at))) },
          { key: "who", label: "Who", render: (e) => [e.token_name, e.role ? [" ", chip(e.role, e.role === "admin" ? "" : "warn")] : null] },
          { key: "request", label: "Request", render: (e) => [h("code", {}, `${e.method} ${e.path}`), e.command ? h("div", { class: "help" }, e.command) : null] },
          { key: "status", label: "Status", render: (e) => chip(String(e.status), statusKind(e.status)) },
          { key: "detail", label: "Detail", render: (e) => (e.detail ? h("span", { class: "detail" }, e.detail) : "–") },
          {
            key: "show",
            label: "",
            render: (e) => h("button", { type: "button", dataset: { action: "show" }, onclick: () => entry(e) }, "Show"),
          },
        ],
        log.entries,
        { rowId: (e) => String(e.seq), empty: "No entry matches the filters." },
      ),
      pager(state.offset, state.limit, log.total, (offset) => {
        state.offset = offset;
        show();
      }),
    );
  }

  function entry(e) {
    dialog(
      `Audit entry ${e.seq}`,
      h(
        "div",
        { id: "audit-entry" },
        h(
          "dl",
          { class: "props" },
          [
            ["When", fmtDate(e.at)],
            ["Who", `${e.token_name}${e.token_id ? ` (token ${e.token_id})` : ""}`],
            ["Role", e.role || "–"],
            ["Request", `${e.method} ${e.path}`],
            ["Command", e.command || "–"],
            ["Status", String(e.status)],
            ["Detail", e.detail || "–"],
            ["Correlation id", e.correlation_id],
          ].map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
        ),
        h("h3", {}, "What was asked"),
        h("pre", { class: "json" }, JSON.stringify(e.content, null, 2) ?? "null"),
      ),
      [],
      { wide: true },
    );
  }

  await show();
  return closeDialogs;
}
