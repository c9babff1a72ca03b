// #/computers: the fleet list (GET /computers, docs/product.md section 6): filters not
// reporting, failed, restart pending, past deadline, group (subgroups included) and a search,
// three sorts, cursor pages; all in the address (#/computers?past_deadline=1&group=Pilot).

import * as api from "../api.js";
import {
  chip,
  debounce,
  errorBox,
  field,
  fill,
  fmtAgo,
  fmtDate,
  fmtNumber,
  h,
  heading,
  replaceHash,
  selectBox,
  table,
} from "../ui.js";

const enc = encodeURIComponent;
const BASE = "#/computers";
const PAGE = 100;
const FLAGS = [
  ["not_reporting", "Not reporting"],
  ["failed", "Failed updates"],
  ["restart_pending", "Restart pending"],
  ["past_deadline", "Past deadline"],
];
const SORTS = [
  ["name", "Host name (A-Z)"],
  ["last_contact", "Longest silent first"],
  ["failed", "Most failed first"],
];
const COMPLIANCE = [
  ["installed", "installed", "good"],
  ["needed", "needed", "warn"],
  ["failed", "failed", "bad"],
  ["installed_pending_restart", "restart pending", "warn"],
  ["no_status", "no status", ""],
];

const truthy = (value) => value === "1" || value === "true";

export async function render(root, ctx) {
  const filters = {
    not_reporting: truthy(ctx.query.get("not_reporting")),
    failed: truthy(ctx.query.get("failed")),
    restart_pending: truthy(ctx.query.get("restart_pending")),
    past_deadline: truthy(ctx.query.get("past_deadline")),
    group: ctx.query.get("group") || "",
    search: ctx.query.get("search") || "",
    sort: SORTS.some(([key]) => key === ctx.query.get("sort")) ? ctx.query.get("sort") : "name",
  };
  let cursors = [null];
  let index = 0;
  let managed = null;
  const results = h("div", { id: "computers-list" });
  const count = h("p", { id: "computers-count", class: "help", "aria-live": "polite" });

  const flagBoxes = FLAGS.map(([key, label]) =>
    h(
      "label",
      { class: "check-option" },
      h("input", {
        type: "checkbox",
        name: key,
        checked: filters[key],
        onchange: (event) => {
          filters[key] = event.target.checked;
          restart();
        },
      }),
      ` ${label}`,
    ),
  );
  const group = selectBox(
    {
      name: "group",
      onchange: (event) => {
        filters.group = event.target.value;
        restart();
      },
    },
    [["", "Every group"]],
    "",
  );
  const search = h("input", {
    type: "search",
    name: "search",
    value: filters.search,
    placeholder: "start of a host name or id",
    autocomplete: "off",
  });
  search.addEventListener(
    "input",
    debounce(() => {
      filters.search = search.value.trim();
      restart();
    }, 300),
  );
  const sort = selectBox(
    {
      name: "sort",
      onchange: (event) => {
        filters.sort = event.target.value;
        restart();
      },
    },
    SORTS,
    filters.sort,
  );

  fill(
    root,
    heading("Computers"),
    h(
      "form",
      { id: "computers-filters", class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
      h("fieldset", { class: "flags" }, h("legend", {}, "Only computers"), flagBoxes),
      field("Group (subgroups included)", group),
      field("Search", search),
      field("Sort", sort),
    ),
    count,
    results,
  );

  api
    .get("/groups")
    .then((found) => {
      const options = found.groups.map((g) => [g.name, g.path.join(" › ")]);
      if (filters.group && !options.some(([name]) => name === filters.group)) options.push([filters.group, filters.group]);
      fill(group, [["", "Every group"], ...options].map(([value, text]) => h("option", { value }, text)));
      group.value = filters.group;
    })
    .catch(() => {
      if (filters.group) {
        group.appendChild(h("option", { value: filters.group }, filters.group));
        group.value = filters.group;
      }
    });

  function keep() {
    replaceHash(BASE, {
      not_reporting: filters.not_reporting ? 1 : null,
      failed: filters.failed ? 1 : null,
      restart_pending: filters.restart_pending ? 1 : null,
      past_deadline: filters.past_deadline ? 1 : null,
      group: filters.group,
      search: filters.search,
      sort: filters.sort === "name" ? null : filters.sort,
    });
  }

  function restart() {
    cursors = [null];
    index = 0;
    keep();
    show();
  }

  let latest = 0;
  async function show() {
    const mine = ++latest;
    results.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await api.get("/computers", {
        not_reporting: filters.not_reporting || null,
        failed: filters.failed || null,
        restart_pending: filters.restart_pending || null,
        past_deadline: filters.past_deadline || null,
        group: filters.group,
        search: filters.search,
        sort: filters.sort,
        cursor: cursors[index],
        limit: PAGE,
      });
    } catch (error) {
      if (mine === latest) {
        fill(results, errorBox(error));
        results.removeAttribute("aria-busy");
      }
      return;
    }
    if (mine !== latest) return;
    results.removeAttribute("aria-busy");
    if (index === 0 && page.managed !== null && page.managed !== undefined) managed = page.managed;
    if (page.next_cursor) cursors[index + 1] = page.next_cursor;
    const filtered = FLAGS.some(([key]) => filters[key]) || filters.group || filters.search;
    const first = index * PAGE + 1;
    const last = index * PAGE + page.computers.length;
    fill(
      count,
      managed !== null ? `${fmtNumber(managed)} managed computer${managed === 1 ? "" : "s"}` : "",
      page.computers.length
        ? `${managed !== null ? " · " : ""}showing ${fmtNumber(first)}–${fmtNumber(last)}${filtered ? " matching the filters" : ""}`
        : "",
    );
    fill(
      results,
      table(
        [
          {
            key: "hostname",
            label: "Host name",
            render: (c) => [h("a", { href: `#/computers/${enc(c.computer_id)}` }, c.hostname || c.computer_id), h("div", { class: "help" }, c.computer_id)],
          },
          { key: "groups", label: "Groups", render: (c) => (c.groups.length ? c.groups.map((name) => chip(name)) : "–") },
          {
            key: "os",
            label: "OS",
            render: (c) => [c.operating_system || "unknown", c.os_version ? h("div", { class: "help" }, c.os_version, c.architecture ? ` · ${c.architecture}` : "") : null],
          },
          { key: "agent", label: "Agent", render: (c) => c.agent_version || "–" },
          { key: "policy", label: "Policy", render: (c) => c.policy || h("span", { class: "muted" }, "no policy") },
          {
            key: "contact",
            label: "Last contact",
            render: (c) => [
              h("span", { title: fmtDate(c.last_contact_at) }, fmtAgo(c.last_contact_at)),
              c.not_reporting ? [" ", chip("not reporting", "bad")] : null,
            ],
          },
          {
            key: "compliance",
            label: "Approved updates",
            render: (c) =>
              h(
                "div",
                { class: "compliance" },
                COMPLIANCE.map(([key, label, kind]) =>
                  c.compliance[key] ? h("span", { class: `chip ${kind}`, dataset: { count: key } }, `${fmtNumber(c.compliance[key])} ${label}`) : null,
                ),
                COMPLIANCE.every(([key]) => !c.compliance[key]) ? h("span", { class: "muted" }, "none") : null,
              ),
          },
        ],
        page.computers,
        {
          rowId: (c) => c.computer_id,
          empty: filtered ? "No computer matches the filters." : "No computer is managed yet.",
          caption: "Fleet",
        },
      ),
      h(
        "div",
        { class: "pager" },
        h("button", { type: "button", id: "computers-previous", disabled: index === 0, onclick: () => { index -= 1; show(); } }, "‹ Previous"),
        h("span", {}, `Page ${index + 1}`),
        h("button", { type: "button", id: "computers-next", disabled: !page.next_cursor, onclick: () => { index += 1; show(); } }, "Next ›"),
      ),
    );
  }

  await show();
}
