// #/computers/<id>: one computer: its report (reporting), its plan (scheduler: policy in
// force, install times) and its approvals resolved across its groups with why (approval).

import * as api from "../api.js";
import {
  chip,
  countCards,
  errorBox,
  fill,
  fmtAgo,
  fmtDate,
  fmtNumber,
  h,
  heading,
  table,
} from "../ui.js";

const enc = encodeURIComponent;
const PAGE = 200;
const STATE_KIND = {
  installed: "good",
  installed_pending_restart: "warn",
  needed: "warn",
  failed: "bad",
  not_applicable: "",
  no_status: "",
  unknown: "",
};
const STATE_LABEL = {
  installed_pending_restart: "restart pending",
  not_applicable: "not applicable",
  no_status: "no status",
};
const ACTIONS = {
  required_install: "Required install",
  do_not_install: "Do not install",
  available_install: "Available install",
  uninstall: "Uninstall",
};

const stateChip = (state) => chip(STATE_LABEL[state] || state, STATE_KIND[state] || "");
const updateLink = (id, kb, title) => h("a", { href: `#/updates/${enc(id)}` }, kb ? `KB${kb} ` : "", title || id);

function deadlineText(deadline) {
  if (!deadline || deadline.kind === "none" || !deadline.at) return h("span", { class: "muted" }, "none");
  return fmtDate(deadline.at);
}

function section(id, title) {
  const body = h("div", { class: "section-body" }, h("p", { class: "muted" }, "Loading…"));
  return { node: h("section", { id, class: "panel" }, h("h2", {}, title), body), body };
}

export async function render(root, ctx) {
  const computerId = ctx.params[0];
  const title = h("div");
  const report = section("computer-report", "Updates reported");
  const plan = section("computer-plan", "Plan");
  const approvals = section("computer-approvals", "Approvals and why");
  fill(
    root,
    h("p", {}, h("a", { href: "#/computers" }, "‹ Computers")),
    title,
    report.node,
    plan.node,
    approvals.node,
  );
  fill(title, heading(computerId));

  let hostname = null;
  const setTitle = (name, extra) => {
    hostname = name || hostname;
    fill(title, heading(hostname ? `${hostname}` : computerId), extra || null);
  };

  /** Update titles by id, from the report and the plan (approvals carry only ids and KBs). */
  const titles = new Map();
  let offset = 0;
  async function loadReport() {
    let found;
    try {
      found = await api.get(`/reports/computers/${enc(computerId)}`, { offset, limit: PAGE });
    } catch (error) {
      fill(report.body, errorBox(error));
      return;
    }
    for (const update of found.updates) titles.set(update.update_id, update.title);
    setTitle(
      null,
      h(
        "p",
        { class: "help", id: "computer-contact" },
        h("code", {}, computerId),
        " · last contact ",
        h("span", { title: fmtDate(found.last_contact_at) }, fmtAgo(found.last_contact_at)),
        found.not_reporting ? [" ", chip("not reporting", "bad")] : null,
      ),
    );
    fill(
      report.body,
      found.not_reporting
        ? h("p", { class: "banner" }, "This computer is not reporting: the states below are the last it reported, and it is counted as not reporting only.")
        : null,
      countCards(found.totals),
      table(
        [
          { key: "update", label: "Update", render: (u) => updateLink(u.update_id, u.kb, u.title) },
          { key: "state", label: "State", render: (u) => stateChip(u.state) },
          { key: "reported", label: "Reported", render: (u) => (u.reported_at ? h("span", { title: fmtDate(u.reported_at) }, fmtAgo(u.reported_at)) : h("span", { class: "muted" }, "never")) },
          { key: "code", label: "Last return code", num: true, render: (u) => (u.last_return_code === null || u.last_return_code === undefined ? "–" : String(u.last_return_code)) },
        ],
        found.updates,
        { rowId: (u) => u.update_id, empty: "No update reported on or approved for this computer." },
      ),
      offset > 0 || found.updates.length === PAGE
        ? h(
            "div",
            { class: "pager" },
            h("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); loadReport(); } }, "‹ Previous"),
            h("span", {}, `${fmtNumber(offset + 1)}–${fmtNumber(offset + found.updates.length)}`),
            h("button", { type: "button", disabled: found.updates.length < PAGE, onclick: () => { offset += PAGE; loadReport(); } }, "Next ›"),
          )
        : null,
    );
  }

  async function loadPlan() {
    let found;
    try {
      found = await api.get(`/computers/${enc(computerId)}/plan`);
    } catch (error) {
      fill(plan.body, errorBox(error));
      return;
    }
    for (const item of found.items) titles.set(item.update_id, item.title);
    const settings = Object.entries(found.settings || {});
    fill(
      plan.body,
      found.policy_conflict ? h("p", { class: "banner" }, `Policy conflict: ${found.policy_conflict}`) : null,
      h(
        "dl",
        { class: "props" },
        h("dt", {}, "Policy"),
        h("dd", {}, found.policy_id ? h("a", { href: "#/policies" }, found.policy_name) : found.policy_name),
        h("dt", {}, "Time zone"),
        h("dd", {}, found.timezone),
        h("dt", {}, "Next install window"),
        h("dd", {}, found.next_window ? fmtDate(found.next_window) : "–"),
        h("dt", {}, "Agent update"),
        h(
          "dd",
          {},
          found.agent_update
            ? `version ${found.agent_update.version} at ${fmtDate(found.agent_update.install_at)}${found.agent_update.prompt_restart ? ", then a restart prompt" : ""}`
            : "up to date",
        ),
        h("dt", {}, "Computed"),
        h("dd", {}, fmtDate(found.computed_at)),
      ),
      h(
        "details",
        { class: "settings" },
        h("summary", {}, "Settings in force"),
        h(
          "dl",
          { class: "props" },
          settings.map(([key, value]) => [
            h("dt", {}, h("code", {}, key)),
            h("dd", {}, value === null ? "not configured" : typeof value === "object" ? Object.values(value).join(" ") : String(value)),
          ]),
        ),
      ),
      table(
        [
          { key: "update", label: "Update", render: (item) => updateLink(item.update_id, item.kb, item.title) },
          { key: "action", label: "Action", render: (item) => [ACTIONS[item.action] || item.action, item.optional ? [" ", chip("optional")] : null] },
          { key: "state", label: "State", render: (item) => stateChip(item.state) },
          { key: "deadline", label: "Deadline", render: (item) => (item.deadline ? fmtDate(item.deadline) : h("span", { class: "muted" }, "none")) },
          { key: "install", label: "Install at", render: (item) => (item.install_at ? fmtDate(item.install_at) : h("span", { class: "muted" }, "nothing to do")) },
          { key: "restart", label: "Restart", render: (item) => item.restart },
          { key: "args", label: "Command line", render: (item) => (item.command_line ? h("code", {}, item.command_line) : "–") },
        ],
        found.items,
        { rowId: (item) => item.update_id, empty: "Nothing approved for this computer.", caption: "Approved updates, as the scheduler plans them" },
      ),
    );
  }

  async function loadApprovals(before) {
    let found;
    try {
      found = await api.get(`/computers/${enc(computerId)}/approvals`);
    } catch (error) {
      fill(approvals.body, errorBox(error));
      return;
    }
    await before;
    if (found.hostname) setTitle(found.hostname, title.querySelector("#computer-contact"));
    fill(
      approvals.body,
      h(
        "p",
        {},
        "Groups: ",
        found.groups.map((group) => h("a", { href: `#/groups?group=${enc(group.name)}`, class: "chip" }, group.path.join(" › "))),
      ),
      table(
        [
          { key: "update", label: "Update", render: (a) => updateLink(a.update_id, a.kb, titles.get(a.update_id)) },
          { key: "action", label: "Action", render: (a) => ACTIONS[a.action] || a.action },
          { key: "deadline", label: "Deadline", render: (a) => deadlineText(a.deadline) },
          { key: "why", label: "Why", render: (a) => (a.from_groups.length ? `from ${a.from_groups.join(", ")}` : "–") },
          { key: "conflict", label: "Conflict", render: (a) => (a.conflict ? chip(a.conflict, "warn") : "–") },
        ],
        found.approvals,
        { rowId: (a) => a.update_id, empty: "No approval applies to this computer." },
      ),
    );
  }

  const first = Promise.all([loadReport(), loadPlan()]);
  await Promise.all([first, loadApprovals(first)]);
}
