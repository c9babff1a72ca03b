// Maintenance windows per group (docs/product.md section 1), shown on #/policies: installs
// and restarts not forced by a passed deadline happen only inside the windows of a
// computer's groups and their ancestors. Windows are written as operators say them
// ("tuesday 22:00-02:00", "second tuesday + 1 day, 22:00-02:00"); the scheduler checks them
// and its refusal names the window and what is allowed.

import * as api from "../api.js";
import {
  clearErrors,
  confirmDialog,
  dialog,
  errorBox,
  field,
  fill,
  fmtDate,
  h,
  notice,
  problemText,
  selectBox,
  showProblem,
  table,
  writeAttrs,
} from "../ui.js";

const enc = encodeURIComponent;
const EXAMPLES = "tuesday 22:00-02:00\nsecond tuesday + 1 day, 22:00-02:00";

/** The section: a table of the groups that have windows, and a button to set a group's. */
export async function windowsSection(container, ctx) {
  const s = { listed: [], groups: [] };
  const list = h("div", { id: "windows-list" });
  const add = h(
    "button",
    writeAttrs(ctx, { type: "button", id: "windows-set", disabled: true, onclick: () => edit(null) }),
    "Set a group's windows",
  );
  fill(
    container,
    h("h2", {}, "Maintenance windows"),
    h(
      "p",
      { class: "help" },
      "A computer's windows are those of its groups and of the groups above them. When it has any, installs and restarts happen only inside one, in the computer's local time: the policy's day and time when it falls inside a window, else the start of the next window. A passed deadline does not wait for a window.",
    ),
    h("div", { class: "form-actions" }, add),
    list,
  );

  const groupName = (id) => (s.groups.find((g) => g.group_id === id) || { name: id }).name;

  async function load() {
    const [found, groups] = await Promise.all([
      api.get("/maintenance-windows"),
      api.get("/groups").catch(() => ({ groups: [] })),
    ]);
    s.listed = found.groups;
    s.groups = groups.groups;
    draw();
  }

  function draw() {
    fill(
      list,
      table(
        [
          { key: "group", label: "Group", render: (g) => h("strong", {}, g.group_name) },
          {
            key: "windows",
            label: "Windows (local time)",
            render: (g) => h("ul", { class: "plain" }, g.texts.map((text) => h("li", {}, h("code", {}, text)))),
          },
          { key: "updated", label: "Changed", render: (g) => fmtDate(g.updated_at) },
          {
            key: "actions",
            label: "Actions",
            render: (g) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", writeAttrs(ctx, { type: "button", dataset: { action: "edit-windows" }, onclick: () => edit(g) }), "Edit"),
                h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "clear-windows" }, onclick: () => clear(g) }), "Clear"),
              ),
          },
        ],
        s.listed,
        { rowId: (g) => g.group_id, empty: "No group has maintenance windows: installs follow the policies' day and time." },
      ),
    );
  }

  function edit(current) {
    const group = current
      ? null
      : selectBox({ name: "group" }, s.groups.map((g) => [g.group_id, g.path ? g.path.join(" › ") : g.name]));
    const text = h("textarea", {
      name: "windows",
      rows: 4,
      spellcheck: "false",
      placeholder: EXAMPLES,
    });
    text.value = current ? current.texts.join("\n") : "";
    const error = h("div", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, "Save windows");
    const form = h(
      "form",
      { id: "windows-form", novalidate: true },
      group ? field("Group", group, "Its windows reach its computers and every group below it.") : null,
      field(
        "Windows",
        text,
        "One a line: weekly 'tuesday 22:00-02:00', or monthly 'second tuesday + 1 day, 22:00-02:00' (first, second, third, fourth or last weekday of the month, plus 0 to 14 days). An end before the start is the next day.",
      ),
      error,
      h("div", { class: "form-actions" }, save),
    );
    const opened = dialog(current ? `Windows of ${current.group_name}` : "Set a group's windows", form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      const windows = text.value.split("\n").map((line) => line.trim()).filter(Boolean);
      const groupId = current ? current.group_id : group.value;
      save.disabled = true;
      try {
        await api.put(`/groups/${enc(groupId)}/maintenance-windows`, { windows });
        opened.close();
        notice(`Maintenance windows of ${groupName(groupId)} saved.`, "ok");
        await load();
      } catch (failure) {
        showProblem(form, failure, error);
      } finally {
        save.disabled = false;
      }
    });
    (group || text).focus();
  }

  async function clear(current) {
    const ok = await confirmDialog(
      `Clear the windows of ${current.group_name}?`,
      "Its computers keep the windows of their other groups and of the groups above; with none left, installs follow the policy's day and time.",
      "Clear windows",
      { danger: true },
    );
    if (!ok) return;
    try {
      await api.del(`/groups/${enc(current.group_id)}/maintenance-windows`);
      notice(`${current.group_name} has no maintenance windows of its own now.`, "ok");
      await load();
    } catch (failure) {
      notice(problemText(failure), "error");
    }
  }

  try {
    await load();
    add.disabled = !ctx.canWrite;
  } catch (failure) {
    fill(list, errorBox(failure));
  }
}
