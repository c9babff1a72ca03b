// The approve dialog (docs/product.md section 5), used by #/updates and #/updates/<id>: pick
// groups in the tree, an action and a deadline for each, preview what every chosen group and
// every group below it would then have and why (POST /updates/approve with dry_run), then
// approve the same choices and see what changed.

import * as api from "../api.js";
import { READ_ONLY, dialog, fill, fmtDate, fmtNumber, h, notice, problemText, table } from "../ui.js";

export const ACTION_LABELS = {
  required_install: "Required install",
  do_not_install: "Do not install",
  available_install: "Available install",
  uninstall: "Uninstall",
  inherit: "Inherit from the parent group",
};
export const DEADLINE_LABELS = {
  none: "None",
  as_soon_as_possible: "As soon as possible",
  custom: "Custom date and time",
  one_week: "One week",
  two_weeks: "Two weeks",
  one_month: "One month",
};
const WITH_DEADLINE = new Set(["required_install", "uninstall"]);

/** "2026-03-01T12:00" (a datetime-local value) as ISO 8601 with the browser's offset then. */
export function localIso(value) {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return null;
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  const base = value.length === 16 ? `${value}:00` : value;
  return `${base}${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}

/** An approval (action and deadline) in words, or "not approved". */
export function approvalText(approval) {
  if (!approval) return "not approved";
  const action = ACTION_LABELS[approval.action] || approval.action;
  const deadline = approval.deadline;
  if (!deadline || deadline.kind === "none" || !WITH_DEADLINE.has(approval.action)) return action;
  const when = deadline.at ? fmtDate(deadline.at) : DEADLINE_LABELS[deadline.kind] || deadline.kind;
  return `${action}, by ${when}`;
}

/** Group rows (parent_id) as a tree: [{ group, children }], children by name. */
export function groupTree(groups) {
  const nodes = new Map(groups.map((group) => [group.group_id, { group, children: [] }]));
  const roots = [];
  for (const node of nodes.values()) {
    const parent = node.group.parent_id && nodes.get(node.group.parent_id);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  const byName = (a, b) => a.group.name.localeCompare(b.group.name);
  const sort = (list) => {
    list.sort(byName);
    list.forEach((node) => sort(node.children));
  };
  sort(roots);
  return roots;
}

function previewTable(rows) {
  const wrap = table(
    [
      { key: "update", label: "Update", render: (row) => (row.kb ? `KB${row.kb}` : row.title) },
      { key: "group", label: "Group", render: (row) => row.group_name },
      { key: "effective", label: "Would have", render: (row) => approvalText(row.effective) },
      { key: "why", label: "Why", render: (row) => row.why },
    ],
    rows,
    { empty: "Nothing to show." },
  );
  const element = wrap.querySelector("table");
  element.id = "approve-preview";
  rows.forEach((row, index) => {
    const tr = element.tBodies[0].rows[index];
    if (!tr) return;
    tr.dataset.group = row.group_name;
    tr.dataset.update = row.update_id;
    if (row.explicit) tr.classList.add("explicit");
  });
  return wrap;
}

/**
 * Open the dialog for `updateIds`; `onDone(result)` runs after a saved approval.
 * `labels` (optional) name the updates in the dialog (KB numbers or titles).
 */
export async function openApproveDialog(updateIds, ctx, onDone, labels = null) {
  const ids = [...updateIds];
  const error = h("div", { class: "error-box", role: "alert", id: "approve-error", hidden: true });
  const treeSlot = h("div", { class: "approve-tree" }, h("p", { class: "muted" }, "Loading groups…"));
  const previewSlot = h("div", { id: "approve-preview-slot", "aria-live": "polite" });
  const named = labels && labels.length ? labels : ids;
  const body = h(
    "div",
    { class: "approve" },
    h(
      "p",
      {},
      `Approve ${ids.length} update${ids.length === 1 ? "" : "s"}: `,
      named.slice(0, 8).join(", "),
      named.length > 8 ? ` and ${named.length - 8} more` : "",
      ".",
    ),
    h(
      "p",
      { class: "help" },
      "Tick the groups, then an action and a deadline for each. A group's action is inherited by every group " +
        "below it until one has do not install, required install or uninstall set itself. Preview shows what " +
        "each group would have and why; Approve saves it.",
    ),
    treeSlot,
    error,
    previewSlot,
  );
  /** The body last previewed (JSON), and whether previews are possible at all. */
  let previewed = null;
  let previewUnavailable = false;
  const rows = [];

  const { element } = dialog(
    `Approve ${ids.length === 1 ? "update" : `${ids.length} updates`}`,
    body,
    [
      { label: "Preview", id: "preview", disabled: true, onclick: () => preview() },
      { label: "Approve", id: "approve", kind: "primary", disabled: true, onclick: () => approve() },
    ],
    { wide: true },
  );
  const previewButton = element.querySelector('[data-action="preview"]');
  const approveButton = element.querySelector('[data-action="approve"]');
  if (!ctx.canWrite) {
    previewButton.title = READ_ONLY;
    approveButton.title = READ_ONLY;
  }

  const showError = (failure) => {
    error.hidden = !failure;
    error.textContent = failure ? (typeof failure === "string" ? failure : problemText(failure)) : "";
  };

  /** The request body from the form, or a message saying what is missing. */
  function request() {
    const groups = [];
    for (const row of rows) {
      if (!row.box.checked) continue;
      const action = row.action.value;
      const choice = { group: row.group.group_id, action };
      if (WITH_DEADLINE.has(action) && row.deadline.value !== "none") {
        if (row.deadline.value === "custom") {
          const at = localIso(row.at.value);
          if (!at) return { problem: `Give the custom deadline's date and time for ${row.group.name}.`, focus: row.at };
          choice.deadline = { kind: "custom", at };
        } else choice.deadline = { kind: row.deadline.value };
      }
      groups.push(choice);
    }
    if (!groups.length) return { problem: "Tick at least one group." };
    return { body: { updates: ids, groups } };
  }

  function changed() {
    const { body: current } = request();
    const same = previewed !== null && current && JSON.stringify(current) === previewed;
    previewButton.disabled = !ctx.canWrite || !current;
    approveButton.disabled = !ctx.canWrite || !current || !(same || previewUnavailable);
    if (previewed !== null && !same) {
      const stale = previewSlot.querySelector(".preview-state");
      if (stale) stale.textContent = "The choices changed since this preview: preview again before approving.";
    }
  }

  async function preview() {
    const built = request();
    if (built.problem) {
      showError(built.problem);
      if (built.focus) built.focus.focus();
      return;
    }
    showError(null);
    previewButton.disabled = true;
    approveButton.disabled = true;
    fill(previewSlot, h("p", { class: "muted" }, "Working out the preview…"));
    try {
      const result = await api.post("/updates/approve", { ...built.body, dry_run: true });
      previewed = JSON.stringify(built.body);
      fill(
        previewSlot,
        h("h3", {}, "Preview"),
        h(
          "p",
          { class: "preview-state" },
          `Approving would write ${fmtNumber(result.explicit_changed)} explicit approval${result.explicit_changed === 1 ? "" : "s"} ` +
            `and change what applies to ${fmtNumber(result.effective_changed)} (group, update) pair${result.effective_changed === 1 ? "" : "s"}.`,
        ),
        h("p", { class: "help" }, "Bold rows are set on the group itself; the others inherit."),
        previewTable(result.preview || []),
        result.preview_truncated ? h("p", { class: "help" }, "The preview stops here; the counts above cover everything.") : null,
      );
      previewSlot.scrollIntoView({ block: "nearest" });
    } catch (failure) {
      fill(previewSlot);
      if (failure.status === 422 && /dry_run/.test(`${failure.field || ""} ${failure.detail || ""}`)) {
        previewUnavailable = true;
        showError("This system cannot preview approvals yet; Approve saves the choices directly.");
      } else showError(failure);
    } finally {
      changed();
    }
  }

  async function approve() {
    const built = request();
    if (built.problem) {
      showError(built.problem);
      return;
    }
    showError(null);
    previewButton.disabled = true;
    approveButton.disabled = true;
    try {
      const result = await api.post("/updates/approve", built.body);
      fill(
        previewSlot,
        h(
          "div",
          { class: "banner info", id: "approve-result", role: "status" },
          h("strong", {}, "Approved. "),
          `${fmtNumber(result.explicit_changed)} explicit approval${result.explicit_changed === 1 ? "" : "s"} written; ` +
            `what applies changed for ${fmtNumber(result.effective_changed)} (group, update) pair${result.effective_changed === 1 ? "" : "s"}.`,
        ),
      );
      previewed = null;
      notice(`Approved ${ids.length} update${ids.length === 1 ? "" : "s"}.`, "ok");
      if (onDone) onDone(result);
    } catch (failure) {
      showError(failure);
    } finally {
      // After a save, approving again needs a fresh preview (previewed is cleared).
      changed();
    }
  }

  function groupItem(node) {
    const { group } = node;
    const key = group.group_id.replace(/[^\w-]/g, "");
    const box = h("input", { type: "checkbox", id: `ag-${key}`, dataset: { group: group.name }, disabled: !ctx.canWrite });
    const action = h(
      "select",
      { id: `aa-${key}`, dataset: { actionFor: group.name }, "aria-label": `Action for ${group.name}` },
      Object.entries(ACTION_LABELS)
        .filter(([value]) => value !== "inherit" || group.parent_id)
        .map(([value, label]) => h("option", { value }, label)),
    );
    const deadline = h(
      "select",
      { id: `ad-${key}`, dataset: { deadlineFor: group.name }, "aria-label": `Deadline for ${group.name}` },
      Object.entries(DEADLINE_LABELS).map(([value, label]) => h("option", { value }, label)),
    );
    const at = h("input", {
      type: "datetime-local",
      id: `at-${key}`,
      dataset: { deadlineAtFor: group.name },
      "aria-label": `Custom deadline for ${group.name} (your local time)`,
      hidden: true,
    });
    const choice = h(
      "div",
      { class: "group-choice", hidden: true },
      h("label", { for: action.id }, "Action"),
      action,
      h("label", { for: deadline.id }, "Deadline"),
      deadline,
      at,
    );
    const sync = () => {
      choice.hidden = !box.checked;
      const timed = WITH_DEADLINE.has(action.value);
      deadline.disabled = !timed;
      if (!timed) deadline.value = "none";
      deadline.title = timed ? "" : "Only required install and uninstall have a deadline";
      at.hidden = !(timed && deadline.value === "custom");
      changed();
    };
    box.addEventListener("change", sync);
    action.addEventListener("change", sync);
    deadline.addEventListener("change", sync);
    at.addEventListener("input", changed);
    rows.push({ group, box, action, deadline, at, sync });
    return h(
      "li",
      { dataset: { groupId: group.group_id } },
      h(
        "label",
        { for: box.id, class: "group-name" },
        box,
        ` ${group.name}`,
        typeof group.computers === "number"
          ? h("span", { class: "muted" }, ` (${fmtNumber(group.computers)} computer${group.computers === 1 ? "" : "s"})`)
          : null,
      ),
      choice,
      node.children.length ? h("ul", {}, node.children.map(groupItem)) : null,
    );
  }

  try {
    const { groups } = await api.get("/groups");
    fill(treeSlot, h("ul", { class: "tree" }, groupTree(groups).map(groupItem)));
    rows.forEach((row) => row.sync());
    const first = rows[0];
    if (first) first.box.focus();
  } catch (failure) {
    fill(treeSlot);
    showError(failure);
  }
  return element;
}
