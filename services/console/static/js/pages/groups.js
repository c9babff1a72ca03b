// #/groups: the group tree under All computers (docs/product.md section 5): create, rename,
// move, delete; a group's computers (the fleet list, subgroups included) with adding and
// removing members; its approvals with why; its policy.

import * as api from "../api.js";
import {
  closeDialogs,
  chip,
  clearErrors,
  confirmDialog,
  debounce,
  dialog,
  errorBox,
  field,
  fill,
  fmtAgo,
  fmtDate,
  fmtNumber,
  h,
  heading,
  liveValidate,
  notice,
  problemText,
  replaceHash,
  routeMissing,
  selectBox,
  showProblem,
  table,
  writeAttrs,
} from "../ui.js";

const enc = encodeURIComponent;
const ROOT_ID = "00000000-0000-0000-0000-000000000001";
const ACTIONS = {
  required_install: "Required install",
  do_not_install: "Do not install",
  available_install: "Available install",
  uninstall: "Uninstall",
};
const DEADLINES = {
  none: "no deadline",
  as_soon_as_possible: "as soon as possible",
  custom: "custom",
  one_week: "one week",
  two_weeks: "two weeks",
  one_month: "one month",
};
const PAGE = 50;

function approvalText(approval) {
  if (!approval) return h("span", { class: "muted" }, "not approved");
  const deadline = approval.deadline && approval.deadline.kind !== "none"
    ? ` · by ${fmtDate(approval.deadline.at)} (${DEADLINES[approval.deadline.kind] || approval.deadline.kind})`
    : "";
  return [chip(ACTIONS[approval.action] || approval.action, approval.action === "required_install" ? "good" : approval.action === "uninstall" ? "warn" : ""), deadline];
}

export async function render(root, ctx) {
  const s = { groups: [], policies: [], selected: null };
  const tree = h("div", { class: "group-tree", id: "group-tree" });
  const detail = h("section", { id: "group-detail", class: "group-detail", "aria-live": "polite" });
  fill(
    root,
    heading(
      "Groups",
      h("button", writeAttrs(ctx, { type: "button", id: "group-new", class: "primary", disabled: true, onclick: () => create() }), "New group"),
    ),
    h(
      "p",
      { class: "help" },
      "Groups form a tree under All computers. An approval set on a group is inherited by the groups below it until one sets its own.",
    ),
    h("div", { class: "split" }, tree, detail),
  );

  const byId = (id) => s.groups.find((group) => group.group_id === id);
  const childrenOf = (id) => s.groups.filter((group) => group.parent_id === id);
  const descendants = (id) => {
    const found = new Set([id]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const group of s.groups) {
        if (group.parent_id && found.has(group.parent_id) && !found.has(group.group_id)) {
          found.add(group.group_id);
          grew = true;
        }
      }
    }
    return found;
  };
  const policyOf = (id) => s.policies.find((policy) => (policy.groups || []).includes(id)) || null;
  const label = (group) => group.path.join(" › ");

  async function load(selectName) {
    const [groups, policies] = await Promise.all([
      api.get("/groups"),
      api.get("/policies").catch(() => ({ policies: [] })),
    ]);
    s.groups = groups.groups;
    s.policies = policies.policies || [];
    const wanted = selectName || (s.selected && byId(s.selected.group_id) ? byId(s.selected.group_id).name : null) || ctx.query.get("group");
    s.selected =
      s.groups.find((group) => group.name === wanted || group.group_id === wanted) ||
      s.groups.find((group) => group.parent_id === null) ||
      s.groups[0] ||
      null;
    drawTree();
    drawDetail();
  }

  function drawTree() {
    const branch = (group) => {
      const kids = childrenOf(group.group_id);
      const current = s.selected && s.selected.group_id === group.group_id;
      return h(
        "li",
        { dataset: { group: group.name } },
        h(
          "button",
          {
            type: "button",
            class: "tree-item",
            "aria-current": current ? "true" : null,
            onclick: () => select(group),
          },
          h("span", { class: "tree-name" }, group.name),
          h(
            "span",
            { class: "tree-count" },
            `${fmtNumber(group.computers)} computer${group.computers === 1 ? "" : "s"}`,
            group.children ? ` · ${fmtNumber(group.children)} subgroup${group.children === 1 ? "" : "s"}` : "",
          ),
        ),
        kids.length ? h("ul", {}, kids.map(branch)) : null,
      );
    };
    const roots = s.groups.filter((group) => !group.parent_id || !byId(group.parent_id));
    fill(tree, h("h2", { class: "visually-hidden" }, "Group tree"), h("ul", { class: "tree" }, roots.map(branch)));
  }

  function select(group) {
    s.selected = group;
    replaceHash("#/groups", { group: group.name });
    drawTree();
    drawDetail();
    const current = tree.querySelector('[aria-current="true"]');
    if (current) current.focus();
  }

  function drawDetail() {
    const group = s.selected;
    if (!group) {
      fill(detail, h("p", { class: "muted" }, "No group."));
      return;
    }
    const isRoot = group.group_id === ROOT_ID || group.parent_id === null;
    const policy = policyOf(group.group_id);
    const members = h("div", { id: "group-members" });
    const approvals = h("div", { id: "group-approvals" });
    const rootTitle = isRoot ? "All computers is the root of the tree: it cannot be renamed, moved or deleted" : null;
    const rootAttrs = (attrs) => {
      const result = writeAttrs(ctx, attrs);
      if (isRoot) return { ...result, disabled: true, title: rootTitle };
      return result;
    };
    fill(
      detail,
      h(
        "div",
        { class: "page-head" },
        h("h2", {}, group.name),
        h(
          "div",
          { class: "actions" },
          h("button", writeAttrs(ctx, { type: "button", dataset: { action: "subgroup" }, onclick: () => create(group) }), "New subgroup"),
          h("button", rootAttrs({ type: "button", dataset: { action: "rename" }, onclick: () => rename(group) }), "Rename"),
          h("button", rootAttrs({ type: "button", dataset: { action: "move" }, onclick: () => move(group) }), "Move"),
          h("button", rootAttrs({ type: "button", class: "danger", dataset: { action: "delete" }, onclick: () => remove(group) }), "Delete"),
        ),
      ),
      h(
        "dl",
        { class: "props" },
        h("dt", {}, "Path"),
        h("dd", {}, label(group)),
        h("dt", {}, "Direct members"),
        h("dd", {}, fmtNumber(group.computers)),
        h("dt", {}, "Subgroups"),
        h("dd", {}, fmtNumber(group.children)),
        h("dt", {}, "Policy"),
        h("dd", {}, policy ? h("a", { href: "#/policies" }, policy.name) : h("span", { class: "muted" }, "none assigned here")),
      ),
      h("h3", {}, "Computers"),
      addForm(group, isRoot),
      members,
      h("h3", {}, "Approvals"),
      approvals,
    );
    loadMembers(group, members, isRoot);
    loadApprovals(group, approvals);
  }

  function addForm(group, isRoot) {
    const ids = h("input", writeAttrs(ctx, { name: "computers", autocomplete: "off", placeholder: "pc-0001, pc-0002" }));
    const find = h("input", { id: "group-find", type: "search", autocomplete: "off", placeholder: "host name or id" });
    const found = h("div", { class: "found", id: "group-found" });
    const error = h("div", { class: "form-error", role: "alert" });
    const add = h("button", writeAttrs(ctx, { type: "submit", class: "primary", dataset: { action: "add" } }), "Add to group");
    const form = h(
      "form",
      { id: "group-add", class: "inline-form", novalidate: true },
      field(
        `Add computers to ${group.name}`,
        ids,
        isRoot ? "Every computer belongs to All computers already." : "Computer ids, separated by commas or spaces.",
      ),
      field("Find computers", find, "Type the start of a host name or id, then pick."),
      found,
      error,
      add,
    );
    if (isRoot) {
      ids.disabled = true;
      add.disabled = true;
    }
    const parse = () => ids.value.split(/[\s,;]+/).map((id) => id.trim()).filter(Boolean);
    find.addEventListener(
      "input",
      debounce(async () => {
        const text = find.value.trim();
        if (!text) {
          found.replaceChildren();
          return;
        }
        try {
          const page = await api.get("/computers", { search: text, limit: 10 });
          fill(
            found,
            page.computers.length
              ? h(
                  "ul",
                  { class: "picks" },
                  page.computers.map((computer) =>
                    h(
                      "li",
                      {},
                      h(
                        "button",
                        writeAttrs(ctx, {
                          type: "button",
                          dataset: { action: "pick", id: computer.computer_id },
                          disabled: isRoot,
                          onclick: () => {
                            const chosen = new Set(parse());
                            chosen.add(computer.computer_id);
                            ids.value = [...chosen].join(", ");
                          },
                        }),
                        `${computer.hostname} (${computer.computer_id})`,
                      ),
                    ),
                  ),
                )
              : h("p", { class: "muted" }, "No computer starts so."),
          );
        } catch (failure) {
          fill(found, problemText(failure));
        }
      }, 300),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      const computers = parse();
      if (!computers.length) {
        error.textContent = "Give at least one computer id.";
        ids.focus();
        return;
      }
      add.disabled = true;
      try {
        const result = await api.post(`/groups/${enc(group.group_id)}/members`, { computers, member: true });
        notice(`${result.changed} computer${result.changed === 1 ? "" : "s"} added to ${group.name}.`, "ok");
        ids.value = "";
        found.replaceChildren();
        await load(group.name);
      } catch (failure) {
        showProblem(form, failure, error);
      } finally {
        add.disabled = !ctx.canWrite;
      }
    });
    return form;
  }

  async function loadMembers(group, box, isRoot) {
    const cursors = [null];
    const show = async (index) => {
      let page;
      try {
        page = await api.get("/computers", { group: group.group_id, cursor: cursors[index], limit: PAGE });
      } catch (error) {
        fill(box, routeMissing(error) ? h("p", { class: "muted" }, "The fleet list is not available.") : errorBox(error));
        return;
      }
      if (page.next_cursor) cursors[index + 1] = page.next_cursor;
      fill(
        box,
        h("p", { class: "help" }, "Computers in this group and its subgroups; only direct members can be removed here."),
        table(
          [
            { key: "host", label: "Host name", render: (c) => h("a", { href: `#/computers/${enc(c.computer_id)}` }, c.hostname || c.computer_id) },
            { key: "id", label: "Id", render: (c) => h("code", {}, c.computer_id) },
            { key: "groups", label: "Groups", render: (c) => c.groups.map((name) => chip(name, name === group.name ? "good" : "")) },
            { key: "contact", label: "Last contact", render: (c) => [fmtAgo(c.last_contact_at), c.not_reporting ? [" ", chip("not reporting", "bad")] : null] },
            {
              key: "actions",
              label: "",
              render: (c) => {
                const direct = c.groups.includes(group.name);
                return direct && !isRoot
                  ? h("button", writeAttrs(ctx, { type: "button", dataset: { action: "remove" }, onclick: () => removeMember(group, c) }), "Remove")
                  : h("span", { class: "muted" }, isRoot ? "" : "in a subgroup");
              },
            },
          ],
          page.computers,
          { rowId: (c) => c.computer_id, empty: "No computer in this group." },
        ),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", disabled: index === 0, onclick: () => show(index - 1) }, "‹ Previous"),
          h("span", {}, `Page ${index + 1}`),
          h("button", { type: "button", disabled: !page.next_cursor, onclick: () => show(index + 1) }, "Next ›"),
        ),
      );
    };
    fill(box, h("p", { class: "muted" }, "Loading…"));
    await show(0);
  }

  async function removeMember(group, computer) {
    try {
      const result = await api.post(`/groups/${enc(group.group_id)}/members`, { computers: [computer.computer_id], member: false });
      notice(result.changed ? `${computer.hostname} removed from ${group.name}.` : `${computer.hostname} was not a member of ${group.name}.`, "ok");
      await load(group.name);
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  async function loadApprovals(group, box) {
    fill(box, h("p", { class: "muted" }, "Loading…"));
    try {
      const found = await api.get(`/groups/${enc(group.group_id)}/approvals`);
      fill(
        box,
        table(
          [
            {
              key: "update",
              label: "Update",
              render: (a) => h("a", { href: `#/updates/${enc(a.update_id)}` }, a.kb ? `KB${a.kb} ` : "", a.title),
            },
            { key: "explicit", label: "Set here", render: (a) => (a.explicit ? approvalText(a.explicit) : h("span", { class: "muted" }, "inherits")) },
            { key: "effective", label: "Applies", render: (a) => approvalText(a.effective) },
            { key: "why", label: "Why", render: (a) => a.why },
          ],
          found.approvals,
          { rowId: (a) => a.update_id, empty: "No approval applies to this group." },
        ),
      );
    } catch (error) {
      fill(box, errorBox(error));
    }
  }

  function groupForm(id, fields, validateCall, submitCall, submitLabel) {
    const error = h("div", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, submitLabel);
    const form = h("form", { id, novalidate: true }, fields, error, h("div", { class: "form-actions" }, submit));
    if (validateCall) liveValidate(form, validateCall, { fallback: error });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      submit.disabled = true;
      try {
        await submitCall();
      } catch (failure) {
        const input = showProblem(form, failure, error);
        if (input) input.focus();
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function parentChoices(excluded = new Set()) {
    return s.groups.filter((group) => !excluded.has(group.group_id)).map((group) => [group.group_id, label(group)]);
  }

  function create(parent = null) {
    const name = h("input", { name: "name", required: true, autocomplete: "off" });
    const under = selectBox({ name: "parent" }, parentChoices(), (parent || s.selected || { group_id: ROOT_ID }).group_id);
    let opened = null;
    const form = groupForm(
      "group-form",
      [field("Name", name, "1-100 characters, no '/'; unique in the whole tree (any case)."), field("Parent group", under)],
      () => api.validate("POST", "/groups", name.value ? { name: name.value, parent: under.value } : { parent: under.value }, true),
      async () => {
        const made = await api.post("/groups", { name: name.value, parent: under.value });
        opened.close();
        notice(`Group ${made.name} created under ${made.path.slice(0, -1).join(" › ")}.`, "ok");
        await load(made.name);
      },
      "Create group",
    );
    opened = dialog("New group", form);
    name.focus();
  }

  function rename(group) {
    const name = h("input", { name: "name", value: group.name, required: true, autocomplete: "off" });
    let opened = null;
    const form = groupForm(
      "group-rename",
      [field("New name", name)],
      () => api.validate("PUT", "/groups/{group}/name", { name: name.value }, true),
      async () => {
        const changed = await api.put(`/groups/${enc(group.group_id)}/name`, { name: name.value });
        opened.close();
        notice(`Group ${group.name} is now ${changed.name}.`, "ok");
        await load(changed.name);
      },
      "Rename",
    );
    opened = dialog(`Rename ${group.name}`, form);
    name.select();
  }

  function move(group) {
    const under = selectBox({ name: "parent" }, parentChoices(descendants(group.group_id)), group.parent_id);
    let opened = null;
    const form = groupForm(
      "group-move",
      [field("New parent group", under, "The group moves with its whole subtree; its approvals are inherited from the new parent from then on.")],
      null,
      async () => {
        const moved = await api.put(`/groups/${enc(group.group_id)}/parent`, { parent: under.value });
        opened.close();
        notice(`Group ${moved.name} moved under ${moved.path.slice(0, -1).join(" › ")}.`, "ok");
        await load(moved.name);
      },
      "Move",
    );
    opened = dialog(`Move ${group.name}`, form);
    under.focus();
  }

  async function remove(group) {
    const ok = await confirmDialog(
      `Delete group ${group.name}?`,
      "Only an empty group can be deleted: no subgroup, no computer, and no rule targeting it.",
      "Delete group",
      { danger: true },
    );
    if (!ok) return;
    try {
      await api.del(`/groups/${enc(group.group_id)}`);
      notice(`Group ${group.name} deleted.`, "ok");
      const parent = byId(group.parent_id);
      s.selected = null;
      await load(parent ? parent.name : null);
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  try {
    await load();
    // Usable once the choices it offers (groups, products, settings) are loaded.
    root.querySelector("#group-new").disabled = !ctx.canWrite;
  } catch (error) {
    fill(tree, errorBox(error));
  }
  return closeDialogs;
}
