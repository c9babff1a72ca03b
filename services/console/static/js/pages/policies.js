// #/policies: agent update policies (docs/product.md section 1). Every setting's range,
// allowed values, meaning and recommended value come from the generated OpenAPI document
// (the PolicySettings model), so this page states no range of its own.

import * as api from "../api.js";
import {
  closeDialogs,
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
import { windowsSection } from "./windows.js";

const enc = encodeURIComponent;
const SETTINGS_MODEL = "PolicySettings";

function resolve(doc, schema) {
  if (schema && schema.$ref) return doc.components.schemas[schema.$ref.split("/").pop()];
  return schema;
}

/** One setting as the page shows it, from its JSON schema property. */
function settingOf(doc, key, prop) {
  const options = prop.anyOf || [];
  const nullable = options.some((option) => option.type === "null");
  const inner = resolve(doc, options.find((option) => option.type !== "null") || prop);
  const kind = inner.enum
    ? "enum"
    : inner.type === "integer" || inner.type === "number"
      ? "number"
      : inner.type === "boolean"
        ? "boolean"
        : inner.type === "object"
          ? "object"
          : "string";
  const fields =
    kind === "object"
      ? Object.entries(inner.properties || {}).map(([name, sub]) => settingOf(doc, name, resolve(doc, sub)))
      : [];
  return {
    key,
    title: prop.title || humanize(key),
    description: prop.description || inner.description || "",
    kind,
    nullable,
    enum: inner.enum || null,
    minimum: inner.minimum,
    maximum: inner.maximum,
    pattern: inner.pattern || null,
    default: "default" in prop ? prop.default : nullable ? null : undefined,
    fields,
  };
}

/** "agent_update_schedule" -> "Agent Update Schedule" (the schema's own titles read so). */
function humanize(key) {
  return key.replace(/_/g, " ").replace(/\b\w/g, (letter) => letter.toUpperCase());
}

function shown(value) {
  if (value === null || value === undefined) return "not configured";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return Object.values(value).join(" ");
  return String(value);
}

function allowed(setting) {
  if (setting.kind === "number") {
    const low = setting.minimum;
    const high = setting.maximum;
    if (low !== undefined && high !== undefined) return `${low} to ${high}`;
    if (low !== undefined) return `at least ${low}`;
    if (high !== undefined) return `at most ${high}`;
    return "a whole number";
  }
  if (setting.kind === "enum") return setting.enum.join(", ");
  if (setting.kind === "boolean") return "yes or no";
  if (setting.kind === "object") {
    const parts = setting.fields.map((sub) => `${sub.key} (${allowed(sub)})`).join(" and ");
    return setting.nullable ? `not configured, or ${parts}` : parts;
  }
  if (setting.pattern === "^([01][0-9]|2[0-3]):[0-5][0-9]$") return "00:00 to 23:59 (HH:MM)";
  return setting.pattern ? `text matching ${setting.pattern}` : "text";
}

export async function render(root, ctx) {
  const s = { policies: [], recommended: null, groups: [], settings: [] };
  const list = h("div", { id: "policies-list" });
  const ranges = h("div", { id: "policy-ranges" });
  const windows = h("section", { id: "maintenance-windows" });
  fill(
    root,
    heading(
      "Update policies",
      h("button", writeAttrs(ctx, { type: "button", id: "policy-new", class: "primary", disabled: true, onclick: () => edit(null) }), "New policy"),
    ),
    h(
      "p",
      { class: "help" },
      "A policy sets when agents look for updates, install them and restart Windows. Assign it to groups; a computer in several groups gets the policy of its nearest group. Computers with no policy use the recommended values. Create and assign policies before approving updates.",
    ),
    list,
    h("h2", {}, "Settings, their ranges and recommended values"),
    ranges,
    windows,
  );

  const groupOf = (id) => s.groups.find((group) => group.group_id === id);
  const groupName = (id) => (groupOf(id) ? groupOf(id).name : id);
  const recommendedOf = (setting) =>
    s.recommended && setting.key in s.recommended ? s.recommended[setting.key] : setting.default;

  async function load() {
    const [policies, groups, model, doc] = await Promise.all([
      api.get("/policies"),
      api.get("/groups").catch(() => ({ groups: [] })),
      api.model(SETTINGS_MODEL),
      api.schema(),
    ]);
    s.policies = policies.policies;
    s.recommended = policies.recommended;
    s.groups = groups.groups;
    if (!model) throw new Error(`The API document has no ${SETTINGS_MODEL} model.`);
    s.settings = Object.entries(model.properties).map(([key, prop]) => settingOf(doc, key, prop));
    draw();
  }

  function differences(policy) {
    return s.settings.filter(
      (setting) => JSON.stringify(policy.settings[setting.key] ?? null) !== JSON.stringify(recommendedOf(setting) ?? null),
    );
  }

  function draw() {
    fill(
      list,
      table(
        [
          { key: "name", label: "Policy", render: (p) => h("strong", {}, p.name) },
          {
            key: "groups",
            label: "Assigned to",
            render: (p) =>
              p.groups.length
                ? p.groups.map((id) =>
                    h(
                      "span",
                      { class: "chip assigned", dataset: { group: groupName(id) } },
                      groupName(id),
                      " ",
                      h(
                        "button",
                        writeAttrs(ctx, {
                          type: "button",
                          class: "chip-remove",
                          dataset: { action: "unassign" },
                          "aria-label": `Take ${p.name} away from ${groupName(id)}`,
                          title: ctx.canWrite ? `Take ${p.name} away from ${groupName(id)}` : undefined,
                          onclick: () => unassign(p, id),
                        }),
                        "×",
                      ),
                    ),
                  )
                : h("span", { class: "muted" }, "no group"),
          },
          {
            key: "settings",
            label: "Differs from recommended",
            render: (p) => {
              const changed = differences(p);
              return changed.length
                ? h("ul", { class: "plain" }, changed.map((setting) => h("li", {}, h("code", {}, setting.key), ` = ${shown(p.settings[setting.key])}`)))
                : h("span", { class: "muted" }, "all recommended");
            },
          },
          { key: "updated", label: "Changed", render: (p) => fmtDate(p.updated_at) },
          {
            key: "actions",
            label: "Actions",
            render: (p) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "edit" }, onclick: () => edit(p) }), "Edit"),
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "assign" }, onclick: () => assign(p) }), "Assign"),
                h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "delete" }, onclick: () => remove(p) }), "Delete"),
              ),
          },
        ],
        s.policies,
        { rowId: (p) => p.policy_id, empty: "No policy yet: every computer uses the recommended values." },
      ),
    );
    fill(
      ranges,
      table(
        [
          { key: "key", label: "Setting", render: (setting) => [h("strong", {}, setting.title), h("div", {}, h("code", {}, setting.key))] },
          { key: "description", label: "Meaning", render: (setting) => setting.description },
          { key: "allowed", label: "Allowed", render: (setting) => allowed(setting) },
          { key: "recommended", label: "Recommended", render: (setting) => shown(recommendedOf(setting)) },
        ],
        s.settings,
        { rowId: (setting) => setting.key },
      ),
    );
  }

  /** An input for one setting, named by its key (nested: key.field). */
  function input(setting, value, name = setting.key) {
    if (setting.kind === "boolean") {
      return h("input", { type: "checkbox", name, checked: Boolean(value), class: "toggle" });
    }
    if (setting.kind === "enum") return selectBox({ name }, setting.enum, value);
    if (setting.kind === "number") {
      return h("input", {
        type: "number",
        name,
        step: 1,
        min: setting.minimum,
        max: setting.maximum,
        value: value ?? "",
        inputmode: "numeric",
      });
    }
    return h("input", {
      type: "text",
      name,
      value: value ?? "",
      pattern: setting.pattern ? setting.pattern.replace(/^\^|\$$/g, "") : null,
      placeholder: setting.pattern && setting.pattern.includes(":") ? "HH:MM" : null,
      autocomplete: "off",
      spellcheck: "false",
    });
  }

  function help(setting) {
    return `${setting.description} Allowed: ${allowed(setting)}. Recommended: ${shown(recommendedOf(setting))}.`;
  }

  function settingField(setting, value) {
    if (setting.kind !== "object") {
      const control = input(setting, value);
      const wrapped = field(setting.title, control, help(setting));
      wrapped.dataset.setting = setting.key;
      if (setting.kind === "boolean") wrapped.classList.add("field-check");
      return { node: wrapped, read: () => readValue(setting, control) };
    }
    // A nullable group (agent_update_schedule): a box to configure it, then its fields.
    const configured = h("input", { type: "checkbox", name: setting.key, checked: value !== null && value !== undefined });
    const parts = setting.fields.map((sub) => {
      const fallback = sub.default ?? (sub.enum ? sub.enum[0] : "");
      const control = input(sub, value ? value[sub.key] : fallback, `${setting.key}.${sub.key}`);
      return { sub, control, node: field(sub.title, control, `Allowed: ${allowed(sub)}.`) };
    });
    const inner = h("div", { class: "nested" }, parts.map((part) => part.node));
    const sync = () => {
      inner.hidden = !configured.checked;
    };
    configured.addEventListener("change", sync);
    sync();
    const box = h(
      "fieldset",
      { class: "setting-group", dataset: { setting: setting.key } },
      h("legend", {}, setting.title),
      (() => {
        const wrapped = field(setting.nullable ? "Configured" : setting.title, configured, help(setting));
        wrapped.classList.add("field-check");
        return wrapped;
      })(),
      inner,
    );
    return {
      node: box,
      read: () =>
        configured.checked
          ? Object.fromEntries(parts.map((part) => [part.sub.key, readValue(part.sub, part.control)]))
          : null,
    };
  }

  function readValue(setting, control) {
    if (setting.kind === "boolean") return control.checked;
    if (setting.kind === "number") {
      const text = control.value.trim();
      // Anything but a whole number goes as typed: the API names the setting and what it allows.
      return /^-?\d+$/.test(text) ? Number(text) : text;
    }
    return control.value;
  }

  function edit(policy) {
    const current = policy ? policy.settings : {};
    const name = policy
      ? null
      : h("input", { name: "name", required: true, autocomplete: "off" });
    const fields = s.settings.map((setting) => ({
      setting,
      ...settingField(setting, setting.key in current ? current[setting.key] : recommendedOf(setting)),
    }));
    const error = h("div", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, policy ? "Save policy" : "Create policy");
    const reset = h(
      "button",
      {
        type: "button",
        dataset: { action: "recommended" },
        onclick: () => {
          for (const item of fields) {
            const value = recommendedOf(item.setting);
            const replaced = settingField(item.setting, value);
            item.node.replaceWith(replaced.node);
            item.node = replaced.node;
            item.read = replaced.read;
          }
          form.dispatchEvent(new Event("input"));
        },
      },
      "All recommended",
    );
    const values = () => Object.fromEntries(fields.map((item) => [item.setting.key, item.read()]));
    const changed = () => {
      const all = values();
      return Object.fromEntries(
        Object.entries(all).filter(([key, value]) => JSON.stringify(value) !== JSON.stringify(current[key] ?? null)),
      );
    };
    const form = h(
      "form",
      { id: "policy-form", novalidate: true },
      name ? field("Name", name, "Unique; at most 100 characters.") : null,
      h("div", { class: "settings-grid" }, fields.map((item) => item.node)),
      error,
      h("div", { class: "form-actions" }, reset, save),
    );
    // Ranges are the settings model's; checked as typed against the create route's model.
    liveValidate(
      form,
      () => {
        const body = { settings: values() };
        if (name && name.value) body.name = name.value;
        return api.validate("POST", "/policies", body, true);
      },
      { fallback: error },
    );
    const opened = dialog(policy ? `Edit policy ${policy.name}` : "New policy", form, [], { wide: true });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      save.disabled = true;
      try {
        if (policy) {
          const settings = changed();
          if (!Object.keys(settings).length) {
            opened.close();
            notice("Nothing changed.", "info");
            return;
          }
          await api.patch(`/policies/${enc(policy.policy_id)}`, { settings });
          notice(`Policy ${policy.name} saved.`, "ok");
        } else {
          const made = await api.post("/policies", { name: name.value.trim(), settings: values() });
          notice(`Policy ${made.name} created; assign it to groups.`, "ok");
        }
        opened.close();
        await load();
      } catch (failure) {
        const shownUnder = showProblem(form, failure, error);
        if (shownUnder) {
          shownUnder.focus();
        }
      } finally {
        save.disabled = false;
      }
    });
    (name || form.querySelector("input, select")).focus();
  }

  function assign(policy) {
    const holder = (groupId) => s.policies.find((p) => p.groups.includes(groupId));
    const group = selectBox(
      { name: "group" },
      s.groups.map((g) => {
        const has = holder(g.group_id);
        return [g.group_id, `${g.path.join(" › ")}${has ? ` (policy: ${has.name})` : ""}`];
      }),
    );
    const error = h("div", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, "Assign");
    const form = h(
      "form",
      { id: "policy-assign", novalidate: true },
      field("Group", group, "A group has at most one policy: assigning this one replaces the group's current policy."),
      error,
      h("div", { class: "form-actions" }, save),
    );
    const opened = dialog(`Assign ${policy.name}`, form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      save.disabled = true;
      try {
        await api.post(`/policies/${enc(policy.policy_id)}/assignments`, { group: group.value });
        opened.close();
        notice(`Policy ${policy.name} assigned to ${groupName(group.value)}.`, "ok");
        await load();
      } catch (failure) {
        showProblem(form, failure, error);
      } finally {
        save.disabled = false;
      }
    });
    group.focus();
  }

  async function unassign(policy, groupId) {
    const ok = await confirmDialog(
      `Take ${policy.name} away from ${groupName(groupId)}?`,
      "Its computers fall back to the policy of another of their groups, or to the recommended values.",
      "Unassign",
    );
    if (!ok) return;
    try {
      await api.del(`/groups/${enc(groupId)}/policy`);
      notice(`${groupName(groupId)} has no policy of its own now.`, "ok");
      await load();
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  async function remove(policy) {
    const ok = await confirmDialog(
      `Delete policy ${policy.name}?`,
      policy.groups.length
        ? `It is assigned to ${policy.groups.map(groupName).join(", ")}; their computers fall back to another policy or the recommended values.`
        : "It is assigned to no group.",
      "Delete policy",
      { danger: true },
    );
    if (!ok) return;
    try {
      await api.del(`/policies/${enc(policy.policy_id)}`);
      notice(`Policy ${policy.name} deleted.`, "ok");
      await load();
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  try {
    await load();
    // Usable once the choices it offers (groups, products, settings) are loaded.
    root.querySelector("#policy-new").disabled = !ctx.canWrite;
    await windowsSection(windows, ctx);
  } catch (error) {
    fill(list, errorBox(error));
  }
  return closeDialogs;
}
