// #/updates: "All updates" (docs/product.md section 5). Filters (needed/new, approved,
// declined, failed, superseded, expired, third-party, not offered), a search box, sortable
// columns and pages of 100, all kept in the address (#/updates?filter=approved&q=...&sort=
// title&desc=0&offset=100) so reload and Back find the same view. Tasks apply to a selection:
// approve (with a preview of what each group inherits), decline, and for third-party updates
// edit and delete; upload starts the procedure of section 4.

import * as api from "../api.js";
import {
  READ_ONLY,
  chip,
  confirmDialog,
  debounce,
  errorBox,
  field,
  fill,
  fmtDate,
  fmtNumber,
  h,
  heading,
  link,
  notice,
  pager,
  problemText,
  replaceHash,
  table,
} from "../ui.js";
import { openApproveDialog } from "./approve.js";

const PAGE_SIZE = 100;
const BASE = "#/updates";
const SORTS = ["release_date", "title", "kb", "classification", "severity", "approved_groups"];
/** Sorts whose first click shows the highest first (newest, most severe, most groups). */
const DESCENDING_FIRST = new Set(["release_date", "severity", "approved_groups"]);
/** [filter value in the address, label, states sent to GET /updates] ("failed" asks reporting). */
export const FILTERS = [
  ["all", "All (default view)", []],
  ["new", "Needed (new)", ["new"]],
  ["approved", "Approved", ["approved"]],
  ["declined", "Declined", ["declined"]],
  ["failed", "Failed", null],
  ["superseded", "Superseded", ["superseded"]],
  ["expired", "Expired", ["expired"]],
  ["third_party", "Third-party", ["third_party"]],
  ["not_offered", "Not offered", ["not_offered"]],
];
const STATE_KIND = {
  new: "warn",
  approved: "good",
  declined: "",
  superseded: "",
  expired: "bad",
  third_party: "",
  not_offered: "",
};
const STATE_LABEL = { third_party: "third-party", not_offered: "not offered" };
const SEVERITY_KIND = { Critical: "bad", Important: "warn", Moderate: "", Low: "" };

export function stateChips(states) {
  return (states || []).map((state) => chip(STATE_LABEL[state] || state, STATE_KIND[state] || ""));
}

export function severityChip(severity) {
  return severity ? chip(severity, SEVERITY_KIND[severity] || "") : h("span", { class: "muted" }, "–");
}

/** The page's state from the address, defaults filled in. */
function readState(query) {
  let filter = query.get("filter") || "all";
  if (filter === "third-party") filter = "third_party";
  if (!FILTERS.some(([value]) => value === filter)) filter = "all";
  const sort = SORTS.includes(query.get("sort")) ? query.get("sort") : "release_date";
  const desc = query.has("desc") ? query.get("desc") !== "0" : DESCENDING_FIRST.has(sort);
  const offset = Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0);
  return { filter, q: query.get("q") || "", sort, desc, offset };
}

function writeState(state) {
  replaceHash(BASE, {
    filter: state.filter === "all" ? null : state.filter,
    q: state.q || null,
    sort: state.sort === "release_date" ? null : state.sort,
    desc: state.sort === "release_date" && state.desc ? null : state.desc ? "1" : "0",
    offset: state.offset || null,
  });
}

const KB = (row) => (row.kb ? `KB${row.kb}` : h("span", { class: "muted" }, "–"));
const TITLE = (row) => link(`#/updates/${encodeURIComponent(row.update_id)}`, row.title);

const UPDATE_COLUMNS = [
  { key: "kb", label: "KB", sort: "kb", render: KB },
  { key: "title", label: "Title", sort: "title", render: TITLE },
  { key: "classification", label: "Classification", sort: "classification" },
  { key: "severity", label: "Severity", sort: "severity", render: (row) => severityChip(row.severity) },
  { key: "release_date", label: "Released", sort: "release_date", render: (row) => fmtDate(row.release_date).slice(0, 10) },
  { key: "states", label: "States", render: (row) => stateChips(row.states) },
  { key: "approved_groups", label: "Approved groups", sort: "approved_groups", num: true, render: (row) => fmtNumber(row.approved_groups) },
];

const FAILED_COLUMNS = [
  { key: "kb", label: "KB", render: KB },
  { key: "title", label: "Title", render: TITLE },
  { key: "classification", label: "Classification" },
  { key: "failed", label: "Failed computers", num: true, render: (row) => chip(fmtNumber(row.counts.failed), "bad") },
  { key: "applies_to", label: "Applies to", num: true, render: (row) => fmtNumber(row.counts.applies_to) },
  {
    key: "states",
    label: "States",
    render: (row) => [
      row.approved ? chip("approved", "good") : chip("not approved", "warn"),
      row.superseded ? chip("superseded") : null,
    ],
  },
];

export async function render(root, ctx) {
  const state = readState(ctx.query);
  const selected = new Set();
  /** What the page has seen of each update (origin decides edit/delete). */
  const known = new Map();
  let generation = 0;

  const writeControl = (attrs, text) =>
    h("button", { type: "button", ...attrs, disabled: true, title: ctx.canWrite ? null : READ_ONLY }, text);
  const approveButton = writeControl({ id: "approve-selected", class: "primary" }, "Approve…");
  const declineButton = writeControl({ id: "decline-selected" }, "Decline");
  const editButton = writeControl({ id: "edit-selected" }, "Edit");
  const deleteButton = writeControl({ id: "delete-selected", class: "danger" }, "Delete");
  const clearButton = h("button", { type: "button", id: "clear-selection", disabled: true }, "Clear selection");
  const selectionText = h("span", { id: "selection-count", class: "muted", "aria-live": "polite" }, "None selected");
  const upload = ctx.canWrite
    ? link("#/upload", "Upload", { class: "button", id: "upload-link" })
    : h("button", { type: "button", id: "upload-link", disabled: true, title: READ_ONLY }, "Upload");

  const filterSelect = h(
    "select",
    { id: "update-filter" },
    FILTERS.map(([value, label]) => h("option", { value, selected: value === state.filter }, label)),
  );
  const search = h("input", {
    id: "update-search",
    type: "search",
    value: state.q,
    placeholder: "Title or KB",
    autocomplete: "off",
    spellcheck: "false",
  });
  const sortSelect = h(
    "select",
    { id: "update-sort" },
    UPDATE_COLUMNS.filter((column) => column.sort).map((column) =>
      h("option", { value: column.sort, selected: column.sort === state.sort }, column.label),
    ),
  );
  const directionSelect = h(
    "select",
    { id: "update-direction" },
    h("option", { value: "1", selected: state.desc }, "Highest first"),
    h("option", { value: "0", selected: !state.desc }, "Lowest first"),
  );
  const status = h("p", { id: "update-status", class: "muted", role: "status" });
  const results = h("div", { id: "update-results" });
  const gate = h("div", {});

  const selectedRows = () => [...selected].map((id) => known.get(id) || { update_id: id });
  const isThirdParty = (row) => row.origin === "third_party";

  function refreshToolbar() {
    const rows = selectedRows();
    const count = rows.length;
    selectionText.textContent = count ? `${fmtNumber(count)} selected` : "None selected";
    const can = ctx.canWrite && count > 0;
    approveButton.disabled = !can;
    declineButton.disabled = !can;
    editButton.disabled = !(ctx.canWrite && count === 1 && isThirdParty(rows[0]));
    deleteButton.disabled = !(can && rows.every(isThirdParty));
    clearButton.disabled = count === 0;
    if (ctx.canWrite) {
      editButton.title = editButton.disabled ? "Select exactly one third-party update" : "";
      deleteButton.title = deleteButton.disabled && count ? "Only third-party updates can be deleted" : "";
    }
  }

  /** Still the page on screen (a debounced search may fire after the operator left). */
  const showing = () => root.isConnected && /^#\/updates(\?|$)/.test(location.hash);

  async function load({ focus } = {}) {
    if (!showing()) return;
    const mine = ++generation;
    writeState(state);
    status.textContent = "Loading…";
    results.setAttribute("aria-busy", "true");
    let rows;
    let total;
    let columns;
    try {
      if (state.filter === "failed") {
        const report = await api.get("/reports/overview", {
          failed: true,
          search: state.q,
          offset: state.offset,
          limit: PAGE_SIZE,
        });
        rows = report.updates;
        total = report.total;
        columns = FAILED_COLUMNS;
      } else {
        const states = FILTERS.find(([value]) => value === state.filter)[2];
        const list = await api.get("/updates", {
          states,
          search: state.q,
          sort: state.sort,
          descending: state.desc,
          offset: state.offset,
          limit: PAGE_SIZE,
        });
        rows = list.updates;
        total = list.total;
        columns = UPDATE_COLUMNS;
      }
    } catch (error) {
      if (mine !== generation) return;
      results.removeAttribute("aria-busy");
      status.textContent = "";
      fill(results, errorBox(error));
      return;
    }
    if (mine !== generation || !root.isConnected) return;
    if (rows.length === 0 && total > 0 && state.offset > 0) {
      // The address pointed past the end (the list shrank): show its last page instead.
      state.offset = Math.max(0, Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE);
      load({ focus });
      return;
    }
    for (const row of rows) {
      const previous = known.get(row.update_id);
      known.set(row.update_id, { ...previous, ...row, origin: row.origin || (previous && previous.origin) });
    }
    const label = FILTERS.find(([value]) => value === state.filter)[1];
    status.textContent = `${fmtNumber(total)} update${total === 1 ? "" : "s"}${state.filter === "all" ? "" : ` (${label.toLowerCase()})`}${state.q ? ` matching “${state.q}”` : ""}.`;
    const sortable = state.filter !== "failed";
    fill(
      results,
      table(columns, rows, {
        select: selected,
        rowId: (row) => row.update_id,
        onSelect: refreshToolbar,
        sort: sortable ? { key: state.sort, descending: state.desc } : null,
        onSort: sortable ? sortBy : null,
        caption: null,
        empty: state.q ? "No update matches the search." : "No update in this view.",
      }),
      pager(state.offset, PAGE_SIZE, total, (offset) => {
        state.offset = offset;
        load({ focus: "pager" });
      }),
    );
    // Label the row checkboxes by KB and title rather than the update id.
    results.querySelectorAll("tbody tr[data-id]").forEach((tr) => {
      const row = known.get(tr.dataset.id);
      const box = tr.querySelector("td.check input");
      if (row && box) box.setAttribute("aria-label", `Select ${row.kb ? `KB${row.kb} ` : ""}${row.title}`);
    });
    results.removeAttribute("aria-busy");
    refreshToolbar();
    if (focus === "sort") {
      const active = results.querySelector('th[aria-sort="ascending"] button, th[aria-sort="descending"] button');
      if (active) active.focus();
    } else if (focus === "pager") {
      const buttons = [...results.querySelectorAll(".pager button")];
      const target = buttons.find((button) => !button.disabled);
      if (target) target.focus();
    }
  }

  function sortBy(key) {
    if (state.sort === key) state.desc = !state.desc;
    else {
      state.sort = key;
      state.desc = DESCENDING_FIRST.has(key);
    }
    sortSelect.value = state.sort;
    directionSelect.value = state.desc ? "1" : "0";
    state.offset = 0;
    load({ focus: "sort" });
  }

  filterSelect.addEventListener("change", () => {
    state.filter = filterSelect.value;
    state.offset = 0;
    load();
  });
  const searchNow = debounce(() => {
    const value = search.value.trim();
    if (value === state.q) return;
    state.q = value;
    state.offset = 0;
    load();
  }, 300);
  search.addEventListener("input", searchNow);
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      searchNow();
    }
  });
  sortSelect.addEventListener("change", () => {
    state.sort = sortSelect.value;
    state.desc = DESCENDING_FIRST.has(state.sort);
    directionSelect.value = state.desc ? "1" : "0";
    state.offset = 0;
    load();
  });
  directionSelect.addEventListener("change", () => {
    state.desc = directionSelect.value === "1";
    state.offset = 0;
    load();
  });
  clearButton.addEventListener("click", () => {
    selected.clear();
    results.querySelectorAll('input[type="checkbox"]').forEach((box) => {
      box.checked = false;
    });
    refreshToolbar();
  });

  approveButton.addEventListener("click", () => {
    const rows = selectedRows();
    openApproveDialog(
      rows.map((row) => row.update_id),
      ctx,
      () => load(),
      rows.map((row) => (row.kb ? `KB${row.kb}` : row.title || row.update_id)),
    );
  });

  declineButton.addEventListener("click", async () => {
    const ids = [...selected];
    const confirmed = await confirmDialog(
      `Decline ${ids.length} update${ids.length === 1 ? "" : "s"}`,
      h(
        "div",
        {},
        h(
          "p",
          {},
          "Declining drops every approval of these updates, hides them from the default views and ",
          h("strong", {}, "deletes their report data"),
          ". The Declined filter still finds them; they may be approved again later unless they expired.",
        ),
        selectionList(selectedRows()),
      ),
      "Decline",
      { danger: true },
    );
    if (!confirmed) return;
    declineButton.disabled = true;
    try {
      const result = await api.post("/updates/decline", { updates: ids });
      notice(
        `Declined ${fmtNumber(result.declined.length)} update${result.declined.length === 1 ? "" : "s"}; ` +
          `${fmtNumber(result.effective_changed)} group approval${result.effective_changed === 1 ? "" : "s"} removed.`,
        "ok",
      );
      selected.clear();
      await load();
    } catch (error) {
      notice(problemText(error), "error");
      refreshToolbar();
    }
  });

  editButton.addEventListener("click", () => {
    const [id] = [...selected];
    ctx.navigate(`#/updates/${encodeURIComponent(id)}?edit=1`);
  });

  deleteButton.addEventListener("click", async () => {
    const rows = selectedRows();
    const confirmed = await confirmDialog(
      `Delete ${rows.length} third-party update${rows.length === 1 ? "" : "s"}`,
      h(
        "div",
        {},
        h("p", {}, "Deleting removes the update, its approvals and its report data, and frees its stored content. It cannot be undone."),
        selectionList(rows),
      ),
      "Delete",
      { danger: true },
    );
    if (!confirmed) return;
    deleteButton.disabled = true;
    const failures = [];
    let freed = 0;
    let deleted = 0;
    for (const row of rows) {
      try {
        const result = await api.del(`/catalog/updates/${encodeURIComponent(row.update_id)}`);
        deleted += 1;
        freed += (result && result.freed_bytes) || 0;
        selected.delete(row.update_id);
      } catch (error) {
        failures.push(`${row.title || row.update_id}: ${problemText(error)}`);
      }
    }
    if (failures.length) notice(`Deleted ${deleted}; not deleted: ${failures.join("; ")}`, "error");
    else notice(`Deleted ${deleted} update${deleted === 1 ? "" : "s"} (${fmtNumber(freed)} bytes freed).`, "ok");
    await load();
  });

  fill(
    root,
    heading("All updates", upload),
    gate,
    h(
      "div",
      { class: "filters", id: "update-controls" },
      field("Show", filterSelect),
      field("Search", search),
      h("div", { class: "narrow-only sort-controls" }, field("Sort by", sortSelect), field("Order", directionSelect)),
    ),
    h(
      "div",
      { class: "toolbar", role: "toolbar", "aria-label": "Tasks for the selected updates" },
      approveButton,
      declineButton,
      editButton,
      deleteButton,
      clearButton,
      selectionText,
    ),
    status,
    results,
  );

  // The update views appear only once a computer is managed (docs/product.md section 5).
  try {
    const overview = await api.get("/reports/overview", { offset: 0, limit: 1 });
    if (overview.enrolment) {
      fill(
        gate,
        h("div", { class: "banner info", id: "enrolment-banner", role: "note" }, h("pre", { class: "prewrap" }, overview.enrolment)),
      );
      fill(results);
      status.textContent = "";
      root.querySelector("#update-controls").hidden = true;
      root.querySelector('[role="toolbar"]').hidden = true;
      return undefined;
    }
  } catch (error) {
    // Reporting unreachable: list the updates anyway; the list says if it fails too.
    console.warn("overview unavailable", error);
  }
  await load();
  return undefined;
}

/** The updates a confirmation is about (at most 20 named). */
function selectionList(rows) {
  const shown = rows.slice(0, 20);
  return h(
    "ul",
    { class: "selection-list" },
    shown.map((row) => h("li", {}, row.kb ? `KB${row.kb} ` : "", row.title || row.update_id)),
    rows.length > shown.length ? h("li", { class: "muted" }, `and ${rows.length - shown.length} more`) : null,
  );
}
