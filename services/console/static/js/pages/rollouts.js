// #/rollouts: updates rolled out ring by ring (docs/product.md, "Rollouts in rings"): each
// rollout's rings, its gate's latest figures and why it is held, an operator's go or cancel
// (asked first), and a form to start one. The rules are the approval service's; this page
// only calls /api/v1/rollouts.

import * as api from "../api.js";
import {
  chip,
  clearErrors,
  confirmDialog,
  dialog,
  errorBox,
  every,
  field,
  fill,
  fmtDate,
  h,
  heading,
  link,
  notice,
  problemText,
  selectBox,
  showProblem,
  table,
  writeAttrs,
} from "../ui.js";

const enc = encodeURIComponent;
const STATES = { running: "", held: "bad", completed: "good", cancelled: "" };
const DEADLINES = {
  none: "No deadline",
  as_soon_as_possible: "As soon as possible",
  one_week: "One week (from each ring's start)",
  two_weeks: "Two weeks (from each ring's start)",
  one_month: "One month (from each ring's start)",
};

function gateText(rollout) {
  const figures = rollout.gate_figures;
  const parts = [];
  if (rollout.held_because) parts.push(h("div", {}, chip("held", "bad"), ` ${rollout.held_because}`));
  if (figures) {
    parts.push(
      h(
        "div",
        { dataset: { verdict: figures.verdict } },
        `${figures.verdict} at ${fmtDate(figures.measured_at)}: ${figures.reported} reported, `,
        `${figures.installed} installed (${figures.installed_percent}%), ${figures.failed} failed (${figures.failed_percent}%)`,
      ),
      h("div", { class: "help" }, figures.why),
    );
  }
  if (rollout.next_ring_due_at) parts.push(h("div", { class: "help" }, `Next gate from ${fmtDate(rollout.next_ring_due_at)}`));
  return parts.length ? parts : h("span", { class: "muted" }, "–");
}

export function render(root, ctx) {
  const s = { rollouts: [], error: null };
  const list = h("div", { id: "rollouts-list" });
  fill(
    root,
    heading(
      "Rollouts",
      h("button", writeAttrs(ctx, { type: "button", id: "rollout-new", class: "primary", onclick: start }), "Start a rollout"),
    ),
    h(
      "p",
      { class: "help" },
      "A rollout approves an update for its first group at once, and for each next group once the delay is over and the gate passes over the groups so far: enough reports, enough installed, failures below the allowed share. A gate with too many failures holds the rollout until an operator gives go or cancels it.",
    ),
    list,
  );

  async function load() {
    try {
      const found = await api.get("/rollouts", { limit: 200 });
      s.rollouts = found.rollouts;
      s.error = null;
    } catch (error) {
      s.error = error;
    }
    draw();
  }

  function draw() {
    if (s.error) {
      fill(list, errorBox(s.error));
      return;
    }
    fill(
      list,
      table(
        [
          {
            key: "update",
            label: "Update",
            render: (r) => [link(`#/updates/${enc(r.update_id)}`, r.kb ? `KB${r.kb}` : r.update_id), h("div", { class: "help" }, r.title)],
          },
          { key: "state", label: "State", render: (r) => chip(r.state, STATES[r.state] || "") },
          {
            key: "rings",
            label: "Rings",
            render: (r) =>
              r.rings.map((ring) =>
                chip(`${ring.position}. ${ring.group_name}`, ring.started_at ? "good" : ""),
              ),
          },
          { key: "gate", label: "Gate", render: gateText },
          {
            key: "actions",
            label: "Actions",
            render: (r) =>
              r.state === "running" || r.state === "held"
                ? h(
                    "div",
                    { class: "row-actions" },
                    h("button", writeAttrs(ctx, { type: "button", dataset: { action: "go" }, onclick: () => decide(r, "go") }), "Go"),
                    h("button", writeAttrs(ctx, { type: "button", class: "danger", dataset: { action: "cancel" }, onclick: () => decide(r, "cancel") }), "Cancel"),
                  )
                : h("span", { class: "muted" }, fmtDate(r.finished_at)),
          },
        ],
        s.rollouts,
        { rowId: (r) => r.rollout_id, empty: "No rollout yet." },
      ),
    );
  }

  async function decide(rollout, what) {
    const reason = h("input", { name: "reason", autocomplete: "off" });
    const next = rollout.rings[rollout.rings_started];
    const body = h(
      "div",
      {},
      h(
        "p",
        {},
        what === "go"
          ? `Start ring ${next ? `${next.position} (${next.group_name})` : ""} now, whatever its delay and gate?`
          : "Start no further ring? The approvals already given stay.",
      ),
      field("Why", reason, "Kept in the rollout's event."),
    );
    const ok = await confirmDialog(
      what === "go" ? "Give go" : "Cancel the rollout",
      body,
      what === "go" ? "Go" : "Cancel rollout",
      { danger: what === "cancel" },
    );
    if (!ok) return;
    try {
      await api.post(`/rollouts/${enc(rollout.rollout_id)}/${what}`, { reason: reason.value });
      notice(what === "go" ? "The next ring has started." : "The rollout is cancelled.", "ok");
      await load();
    } catch (error) {
      notice(problemText(error), "error");
    }
  }

  function start() {
    const update = h("input", { name: "update", required: true, autocomplete: "off" });
    const rings = h("textarea", { name: "rings", rows: 3 });
    const action = selectBox({ name: "action" }, [["required_install", "Required install"], ["available_install", "Available install"]], "required_install");
    const deadline = selectBox({ name: "deadline" }, Object.entries(DEADLINES), "none");
    const number = (name, value, step) => h("input", { name, type: "number", value, step, min: 0 });
    const delay = number("gate.delay_hours", 24, "any");
    const installed = number("gate.min_installed_percent", 95, "any");
    const failed = number("gate.max_failed_percent", 2, "any");
    const reports = number("gate.min_reports", 10, 1);
    const error = h("div", { class: "form-error", role: "alert" });
    const save = h("button", { type: "submit", class: "primary", dataset: { action: "start" } }, "Start");
    const form = h(
      "form",
      { id: "rollout-form", novalidate: true },
      field("Update", update, "KB number or update id."),
      field("Rings", rings, "Group names or ids, one per line, first ring first (at least two)."),
      field("Action", action),
      field("Deadline", deadline),
      field("Delay (hours)", delay, "After each ring starts, before the next one may."),
      field("Installed at least (%)", installed),
      field("Failed below (%)", failed),
      field("Reports at least", reports, "Computers of the rings so far that reported on the update."),
      error,
      h("div", { class: "form-actions" }, save),
    );
    const opened = dialog("Start a rollout", form, [], { wide: true });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form, error);
      save.disabled = true;
      try {
        const made = await api.post("/rollouts", {
          update: update.value.trim(),
          rings: rings.value.split("\n").map((line) => line.trim()).filter(Boolean),
          action: action.value,
          deadline: { kind: deadline.value },
          gate: {
            delay_hours: Number(delay.value),
            min_installed_percent: Number(installed.value),
            max_failed_percent: Number(failed.value),
            min_reports: Number(reports.value),
          },
        });
        opened.close();
        notice(`Rollout started: ${made.rings[0].group_name} is approved.`, "ok");
        await load();
      } catch (failure) {
        const input = showProblem(form, failure, error);
        if (input) input.focus();
      } finally {
        save.disabled = false;
      }
    });
    update.focus();
  }

  return every(5000, load);
}
