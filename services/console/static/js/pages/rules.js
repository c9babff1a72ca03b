// #/rules: auto-approval rules (docs/product.md section 3): list, create, edit, delete, run,
// and what a run would approve (POST /rules/{rule}/run with dry_run) before running it.

import * as api from "../api.js";
import {
  closeDialogs,
  chip,
  clearErrors,
  confirmDialog,
  dialog,
  errorBox,
  field,
  fill,
  fmtDate,
  h,
  heading,
  liveValidate,
  notice,
  problemText,
  selectBox,
  showProblem,
  table,
  writeAttrs,
} from "../ui.js";

const enc = encodeURIComponent;
const DEADLINES = {
  none: "No deadline",
  as_soon_as_possible: "As soon as possible",
  one_week: "One week",
  two_weeks: "Two weeks",
  one_month: "One month",
};
const CLASSIFICATIONS = [
  "Critical Updates",
  "Security Updates",
  "Definition Updates",
  "Updates",
  "Update Rollups",
  "Service Packs",
  "Feature Packs",
  "Tools",
  "Drivers",
  "Upgrades",
];
const SEVERITIES = ["Low", "Moderate", "Important", "Critical"];

function enumOf(doc, model, property, fallback) {
  try {
    const prop = doc.components.schemas[model].properties[property];
    const options = prop.enum || (prop.items && prop.items.enum);
    return options && options.length ? options : fallback;
  } catch {
    return fallback;
  }
}

/** Whether the API takes dry_run on a rule run: without it, a "preview" would run the rule. */
function takesDryRun(doc) {
  try {
    const operation = doc.paths[`${api.PREFIX}/rules/{rule}/run`].post;
    let schema = operation.requestBody.content["application/json"].schema;
    // An optional body is anyOf [its model, null].
    const options = schema.anyOf || schema.oneOf || schema.allOf;
    if (options) schema = options.find((option) => option.$ref || option.properties) || schema;
    if (schema.$ref) schema = doc.components.schemas[schema.$ref.split("/").pop()];
    return Boolean(schema.properties && schema.properties.dry_run);
  } catch {
    return false;
  }
}

export async function render(root, ctx) {
  const s = { rules: [], groups: [], products: [], doc: null };
  const list = h("div", { id: "rules-list" });
  fill(
    root,
    heading(
      "Auto-approval rules",
      h("button", writeAttrs(ctx, { type: "button", id: "rule-new", class: "primary", disabled: true, onclick: () => edit(null) }), "New rule"),
    ),
    h(
      "p",
      { class: "help" },
      "A rule approves, for its groups, each new update whose product and classification it matches. A new rule only acts on updates published after it; run it to apply it to the updates already in the catalog. Deleting a rule keeps the approvals it made.",
    ),
    list,
  );

  const groupName = (id) => {
    const found = s.groups.find((group) => group.group_id === id);
    return found ? found.name : id;
  };

  async function load() {
    const [rules, groups, settings, doc] = await Promise.all([
      api.get("/rules"),
      api.get("/groups").catch(() => ({ groups: [] })),
      api.get("/catalog/settings").catch(() => null),
      api.schema().catch(() => null),
    ]);
    s.rules = rules.rules;
    s.groups = groups.groups;
    s.products = settings ? settings.available_products : [];
    s.doc = doc;
    draw();
  }

  function draw() {
    fill(
      list,
      table(
        [
          {
            key: "name",
            label: "Rule",
            render: (rule) => [h("strong", {}, rule.name), rule.description ? h("div", { class: "help" }, rule.description) : null],
          },
          {
            key: "matches",
            label: "Matches",
            render: (rule) =>
              h(
                "div",
                { class: "matches" },
                h("div", {}, "Products: ", rule.products.length ? rule.products.map((name) => chip(name)) : h("span", { class: "muted" }, "every product")),
                h("div", {}, "Classifications: ", rule.classifications.map((name) => chip(name))),
                rule.severities.length ? h("div", {}, "Severities: ", rule.severities.map((name) => chip(name))) : null,
                rule.title_contains ? h("div", {}, "Title contains: ", h("code", {}, rule.title_contains)) : null,
              ),
          },
          { key: "groups", label: "Groups", render: (rule) => rule.group_ids.map((id) => chip(groupName(id))) },
          { key: "deadline", label: "Deadline", render: (rule) => DEADLINES[rule.deadline] || rule.deadline },
          { key: "updated", label: "Changed", render: (rule) => fmtDate(rule.updated_at) },
          {
            key: "actions",
            label: "Actions",
            render: (rule) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "preview" }, onclick: () => preview(rule) }), "Preview"),
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "run" }, onclick: () => run(rule) }), "Run"),
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "edit" }, onclick: () => edit(rule) }), "Edit"),
                h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "delete" }, onclick: () => remove(rule) }), "Delete"),
              ),
          },
        ],
        s.rules,
        { rowId: (rule) => rule.rule_id, empty: "No rule yet: every update is approved by hand." },
      ),
    );
  }

  /** A group of checkboxes named `name`, with one error slot (under the first box's id). */
  function checks(legend, name, options, chosen, help) {
    const prefix = `${name}-${Math.random().toString(36).slice(2, 7)}`;
    const slot = `${prefix}-0-error`;
    const boxes = options.map(([value, label], index) =>
      h(
        "label",
        { class: "check-option" },
        h("input", {
          type: "checkbox",
          name,
          value,
          id: `${prefix}-${index}`,
          checked: chosen.includes(value),
          "aria-describedby": slot,
        }),
        ` ${label}`,
      ),
    );
    return h(
      "fieldset",
      { class: "checks" },
      h("legend", {}, legend),
      help ? h("div", { class: "help" }, help) : null,
      options.length ? h("div", { class: "check-list" }, boxes) : h("p", { class: "muted" }, "None to choose from."),
      h("div", { class: "field-error", role: "alert", id: slot }),
    );
  }

  function edit(rule) {
    const spec = rule || {
      name: "",
      description: "",
      products: [],
      classifications: [],
      severities: [],
      title_contains: null,
      group_ids: [],
      deadline: "none",
    };
    const name = h("input", { name: "name", value: spec.name, required: true, autocomplete: "off" });
    const description = h("textarea", { name: "description", rows: 2 });
    description.value = spec.description || "";
    const products = [...new Set([...s.products, ...spec.products])].sort();
    const classes = enumOf(s.doc, "RuleSpec", "classifications", CLASSIFICATIONS);
    const severities = enumOf(s.doc, "RuleSpec", "severities", SEVERITIES);
    const deadlines = enumOf(s.doc, "RuleSpec", "deadline", Object.keys(DEADLINES));
    const titleContains = h("input", { name: "title_contains", value: spec.title_contains || "", autocomplete: "off" });
    const deadline = selectBox({ name: "deadline" }, deadlines.map((kind) => [kind, DEADLINES[kind] || kind]), spec.deadline);
    const error = h("div", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, rule ? "Save rule" : "Create rule");
    const form = h(
      "form",
      { id: "rule-form", novalidate: true },
      field("Name", name),
      field("Description", description),
      checks("Product categories", "products", products.map((p) => [p, p]), spec.products, "None checked: every product."),
      checks("Classifications", "classifications", classes.map((c) => [c, c]), spec.classifications, "At least one."),
      checks("MSRC severities", "severities", severities.map((v) => [v, v]), spec.severities, "None checked: any severity."),
      field("Title contains", titleContains, "Only updates whose title contains this text (any case); empty: any title."),
      checks(
        "Groups",
        "groups",
        s.groups.map((group) => [group.group_id, group.path.join(" › ")]),
        spec.group_ids,
        "The groups the rule approves updates for (required install); at least one.",
      ),
      field("Deadline", deadline, "Counted from each approval the rule makes."),
      error,
      h("div", { class: "form-actions" }, save),
    );
    const checked = (key) => [...form.querySelectorAll(`input[name="${key}"]:checked`)].map((box) => box.value);
    const body = () => ({
      name: name.value.trim(),
      description: description.value,
      products: checked("products"),
      classifications: checked("classifications"),
      severities: checked("severities"),
      title_contains: titleContains.value.trim() || null,
      groups: checked("groups"),
      deadline: deadline.value,
    });
    const partial = () => {
      const all = body();
      if (!all.name) delete all.name;
      if (!all.classifications.length) delete all.classifications;
      if (!all.groups.length) delete all.groups;
      return all;
    };
    liveValidate(
      form,
      () =>
        rule
          ? api.validate("PUT", "/rules/{rule}", { definition: partial() }, true)
          : api.validate("POST", "/rules", { rule: partial() }, true),
      { fallback: error },
    );
    const opened = dialog(rule ? `Edit rule ${rule.name}` : "New auto-approval rule", form, [], { wide: true });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      save.disabled = true;
      try {
        const saved = rule
          ? await api.put(`/rules/${enc(rule.rule_id)}`, { definition: body() })
          : await api.post("/rules", { rule: body() });
        opened.close();
        notice(
          rule
            ? `Rule ${saved.name} saved; the approvals it made stay.`
            : `Rule ${saved.name} created: it approves updates published from now on. Run it for those already in the catalog.`,
          "ok",
        );
        await load();
      } catch (failure) {
        const input = showProblem(form, failure, error);
        if (input) input.focus();
      } finally {
        save.disabled = false;
      }
    });
    name.focus();
  }

  async function remove(rule) {
    const ok = await confirmDialog(
      `Delete rule ${rule.name}?`,
      "The rule stops approving new updates. Every approval it has already made stays in place.",
      "Delete rule",
      { danger: true },
    );
    if (!ok) return;
    try {
      await api.del(`/rules/${enc(rule.rule_id)}`);
      notice(`Rule ${rule.name} deleted; its approvals stay.`, "ok");
      await load();
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  /** Update views by id (for titles), read once when a result needs them. */
  let known = null;
  async function updatesById() {
    if (!known) {
      known = new Map();
      try {
        const found = await api.get("/updates", { limit: 10000 });
        for (const update of found.updates) known.set(update.update_id, update);
      } catch {
        // titles stay ids
      }
    }
    return known;
  }

  const ACTIONS = {
    required_install: "Required install",
    do_not_install: "Do not install",
    available_install: "Available install",
    uninstall: "Uninstall",
  };

  /** The updates a run approved (or would approve): from the dry run's approvals (update,
   * group and approval each), else by id with titles from the update list. */
  async function approvedList(result, rule) {
    const ids = result.updates_approved || [];
    if (!ids.length) return h("p", { class: "muted", id: "rule-result-empty" }, "No update: every matching update is approved already, or none matches.");
    const rows = new Map(ids.map((id) => [id, { update_id: id, kb: null, title: null, groups: [], approval: null }]));
    for (const state of result.approvals || []) {
      const row = rows.get(state.update_id) || { update_id: state.update_id, kb: null, title: null, groups: [], approval: null };
      row.kb = state.kb;
      row.title = state.title;
      row.groups.push(state.group_name);
      row.approval = row.approval || state.explicit || state.effective;
      rows.set(state.update_id, row);
    }
    for (const row of rows.values()) {
      if (!row.groups.length) row.groups = rule.group_ids.map(groupName);
    }
    if ([...rows.values()].some((row) => !row.title)) {
      const byId = await updatesById();
      for (const row of rows.values()) {
        const found = byId.get(row.update_id);
        if (!row.title && found) {
          row.title = found.title;
          row.kb = found.kb;
        }
      }
    }
    return h(
      "div",
      {},
      table(
        [
          { key: "kb", label: "KB", render: (u) => (u.kb ? `KB${u.kb}` : "–") },
          { key: "title", label: "Update", render: (u) => h("a", { href: `#/updates/${enc(u.update_id)}` }, u.title || u.update_id) },
          { key: "groups", label: "Groups", render: (u) => (u.groups.length ? u.groups.map((name) => chip(name)) : "–") },
          {
            key: "approval",
            label: "Approval",
            render: (u) =>
              u.approval
                ? [ACTIONS[u.approval.action] || u.approval.action, u.approval.deadline && u.approval.deadline.at ? ` by ${fmtDate(u.approval.deadline.at)}` : ""]
                : "–",
          },
        ],
        [...rows.values()],
        { rowId: (u) => u.update_id, caption: `${ids.length} update${ids.length === 1 ? "" : "s"}` },
      ),
      result.approvals_truncated ? h("p", { class: "help" }, "The list of approvals is cut short; the count covers every update.") : null,
    );
  }

  async function run(rule, { confirmed = false } = {}) {
    if (!confirmed) {
      const ok = await confirmDialog(
        `Run rule ${rule.name}?`,
        `It approves, for ${rule.group_ids.map(groupName).join(", ")}, every update already in the catalog that it matches (not superseded, expired or declined). Preview shows which first.`,
        "Run rule",
      );
      if (!ok) return;
    }
    let result;
    try {
      result = await api.post(`/rules/${enc(rule.rule_id)}/run`, {});
    } catch (error) {
      notice(problemText(error), "error");
      return;
    }
    const count = (result.updates_approved || []).length;
    notice(`Rule ${rule.name} approved ${count} update${count === 1 ? "" : "s"}.`, "ok");
    dialog(
      `Rule ${rule.name} ran`,
      h("div", { id: "rule-result" }, h("p", {}, `Approved ${count} update${count === 1 ? "" : "s"} (${result.explicit_changed} group approvals written).`), await approvedList(result, rule)),
      [],
      { wide: true },
    );
  }

  async function preview(rule) {
    if (!takesDryRun(s.doc)) {
      notice(
        "Preview is not available: this console's API does not take dry_run on a rule run yet (a preview would run the rule). Run it to apply it.",
        "error",
      );
      return;
    }
    let result;
    try {
      result = await api.post(`/rules/${enc(rule.rule_id)}/run`, { dry_run: true });
    } catch (error) {
      notice(problemText(error), "error");
      return;
    }
    const count = (result.updates_approved || []).length;
    dialog(
      `What a run of ${rule.name} would approve`,
      h(
        "div",
        { id: "rule-preview" },
        h(
          "p",
          {},
          count
            ? `Running it now would approve ${count} update${count === 1 ? "" : "s"} for ${rule.group_ids.map(groupName).join(", ")} (${DEADLINES[rule.deadline] || rule.deadline}). Nothing has been approved yet.`
            : "Running it now would approve nothing.",
        ),
        await approvedList(result, rule),
      ),
      [
        {
          label: "Run for real",
          kind: "primary",
          id: "run",
          disabled: !ctx.canWrite || count === 0,
          onclick: (close) => {
            close();
            run(rule, { confirmed: true });
          },
        },
      ],
      { wide: true },
    );
  }

  try {
    await load();
    // Usable once the choices it offers (groups, products, settings) are loaded.
    root.querySelector("#rule-new").disabled = !ctx.canWrite;
  } catch (error) {
    fill(list, errorBox(error));
  }
  return closeDialogs;
}
