// #/updates/<id>: one update's properties (docs/product.md sections 2, 4 and 5), where it is
// approved and why, its counts (refreshed every 5 s in place), install successes and failures,
// and the computers it concerns. Tasks: approve, decline, pause, resume, roll back, expire, and
// for third-party updates edit (?edit=1; each field checked as typed by POST /api/v1/validate)
// and delete.

import * as api from "../api.js";
import {
  READ_ONLY,
  card,
  chip,
  clearErrors,
  confirmDialog,
  countCards,
  debounce,
  dialog,
  errorBox,
  every,
  field,
  fill,
  fmtBytes,
  fmtDate,
  fmtNumber,
  h,
  heading,
  link,
  notice,
  pager,
  problemText,
  routeMissing,
  setCounts,
  setFieldError,
  showProblem,
  table,
} from "../ui.js";
import { ACTION_LABELS, approvalText, openApproveDialog } from "./approve.js";
import { severityChip, stateChips } from "./updates.js";

const REFRESH_MS = 5000;
const ATTEMPTS_PAGE = 20;
const COMPUTERS_PAGE = 50;
const EDIT_TEMPLATE = "/catalog/updates/{update}";
const THIRD_PARTY_CLASSIFICATIONS = ["Updates", "Critical Updates", "Security Updates", "Update Rollups", "Service Packs"];
const OUTCOMES = {
  success: "Success",
  success_restart_required: "Success, restart required",
  failure: "Failure",
};
const OUTCOME_KIND = { success: "good", success_restart_required: "warn", failure: "bad" };
const RESTART = { never: "Never", may_request: "May request a restart", always: "Always restarts" };
const COMPUTER_STATES = [
  ["", "Every state"],
  ["installed", "Installed"],
  ["needed", "Needed"],
  ["failed", "Failed"],
  ["installed_pending_restart", "Pending restart"],
  ["not_applicable", "Not applicable"],
  ["no_status", "No status"],
  ["not_reporting", "Not reporting"],
];
const STATE_KIND = {
  installed: "good",
  needed: "warn",
  failed: "bad",
  installed_pending_restart: "warn",
  not_applicable: "",
  no_status: "",
};
const ARCHITECTURE = { x86: "32-bit (x86)", x64: "64-bit (x64)", both: "32-bit and 64-bit" };
const RULE_KIND = { file_exists: "File exists", msi_product_code: "MSI product code exists", registry_key: "Registry key exists" };

const enc = encodeURIComponent;
/** FastAPI's own 404 (no such route), as opposed to reporting's "unknown update". */
const routeMissing404 = (error) => error.detail === "Not Found";
const none = (text = "–") => h("span", { class: "muted" }, text);

/** A definition list from [label, value] pairs (null values left out). */
function props(pairs) {
  return h(
    "dl",
    { class: "props" },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}

function updateLink(ref, label) {
  return link(`#/updates/${enc(ref)}`, label || ref);
}

function kbLabel(kb) {
  return kb ? `KB${kb}` : null;
}

function externalLink(url) {
  return /^https?:\/\//i.test(url || "") ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url) : url || null;
}

function rulesList(rules) {
  if (!rules || !rules.length) return null;
  return h(
    "ul",
    { class: "plain" },
    rules.map((rule) => h("li", {}, `${RULE_KIND[rule.kind] || rule.kind}: `, h("code", {}, rule.value))),
  );
}

function returnCodesTable(codes) {
  return table(
    [
      { key: "code", label: "Return code", num: true, render: (row) => String(row.code) },
      { key: "outcome", label: "Means", render: (row) => chip(OUTCOMES[row.outcome] || row.outcome, OUTCOME_KIND[row.outcome] || "") },
    ],
    codes || [],
    { empty: "The default map: 0 success, 3010 success with a restart." },
  );
}

function properties(detail) {
  const u = detail.update;
  const supersededBy = (u.superseded_by || []).map((ref, index) =>
    updateLink(ref, u.superseded_by_kbs && u.superseded_by_kbs.length === u.superseded_by.length ? `KB${u.superseded_by_kbs[index]}` : ref),
  );
  const joinLinks = (links) => (links.length ? links.flatMap((node, i) => (i ? [", ", node] : [node])) : none("none"));
  return props([
    ["Title", u.title],
    ["KB", kbLabel(u.kb) || none()],
    ["Update id", h("code", {}, u.update_id)],
    ["Revision", String(u.revision)],
    ["Origin", u.origin === "third_party" ? "Third-party (uploaded)" : "Microsoft"],
    ["Classification", u.classification],
    ["Severity", severityChip(u.severity)],
    ["Released", fmtDate(u.release_date)],
    [
      "Products",
      u.products && u.products.length
        ? h("ul", { class: "plain" }, u.products.map((product) => h("li", {}, product.name, h("span", { class: "muted" }, ` (${product.family})`))))
        : none(),
    ],
    ["Product categories", (u.product_families || []).join(", ") || none()],
    ["CVEs", u.cves && u.cves.length ? u.cves.join(", ") : null],
    ["Restart", RESTART[u.restart] || u.restart],
    ["Fixed builds", u.fixed_builds && u.fixed_builds.length ? u.fixed_builds.join(", ") : null],
    ["Description", u.description ? h("div", { class: "prewrap" }, u.description) : null],
    ["More information", externalLink(u.url)],
    ["Size", u.size_bytes === null || u.size_bytes === undefined ? null : `${fmtBytes(u.size_bytes)} (${fmtNumber(u.size_bytes)} bytes)`],
    ["SHA-256", u.sha256 ? h("code", { class: "hash" }, u.sha256) : null],
    ["Supersedes", joinLinks((u.supersedes || []).map((ref) => updateLink(ref, /^\d+$/.test(ref) ? `KB${ref}` : ref)))],
    ["Superseded by", joinLinks(supersededBy)],
    ["Superseded", detail.superseded_at ? fmtDate(detail.superseded_at) : null],
    ["Expired", u.expired ? [chip("expired", "bad"), detail.expired_at ? ` ${fmtDate(detail.expired_at)}` : ""] : "No"],
    ["Offered to computers", u.offered === false ? [chip("not offered"), ` ${u.not_offered_because || ""}`] : "Yes"],
  ]);
}

function packageSection(u) {
  const p = u.package;
  if (!p) return null;
  return h(
    "section",
    { class: "panel", id: "update-package" },
    h("h2", {}, "Package"),
    props([
      ["Installer", [h("code", {}, p.installer), ` (${p.kind})`]],
      ["Architecture", ARCHITECTURE[p.architecture] || p.architecture],
      ["Operating systems", p.operating_systems && p.operating_systems.length ? p.operating_systems.join(", ") : "Any"],
      ["Free disk needed", p.min_free_disk_bytes === null || p.min_free_disk_bytes === undefined ? "No requirement" : fmtBytes(p.min_free_disk_bytes)],
      ["Memory needed", p.min_memory_bytes === null || p.min_memory_bytes === undefined ? "No requirement" : fmtBytes(p.min_memory_bytes)],
      [
        "Detection rules",
        rulesList(p.detection_rules) ||
          (p.kind === "exe" ? "Default: install once per computer" : `The installer's own detection${p.product_code ? ` (${p.product_code})` : ""}`),
      ],
      ["Product code", p.product_code ? h("code", {}, p.product_code) : null],
      [
        "Prerequisites",
        p.prerequisite_package || (p.prerequisite_rules && p.prerequisite_rules.length)
          ? [p.prerequisite_package ? h("div", {}, "Package ", updateLink(p.prerequisite_package)) : null, rulesList(p.prerequisite_rules)]
          : "None",
      ],
      ["Command line", p.command_line ? h("code", {}, p.command_line) : none("(no arguments)")],
    ]),
    h("h3", {}, "Files"),
    table(
      [
        { key: "path", label: "File", render: (row) => h("code", {}, row.path) },
        { key: "size", label: "Size", num: true, render: (row) => fmtBytes(row.size) },
        { key: "sha256", label: "SHA-256", render: (row) => (row.sha256 ? h("code", { class: "hash" }, row.sha256) : none()) },
      ],
      p.files || [],
    ),
  );
}

/** The edit form of a third-party update (PATCH /catalog/updates/{update}). */
function editForm(u, ctx) {
  const title = h("input", { id: "edit-title", value: u.title, maxlength: 300, required: true });
  const description = h("textarea", { id: "edit-description", rows: 4 }, u.description || "");
  const classification = h(
    "select",
    { id: "edit-classification" },
    THIRD_PARTY_CLASSIFICATIONS.map((name) => h("option", { value: name, selected: name === u.classification }, name)),
  );
  const commandLine = h("input", { id: "edit-command-line", value: (u.package && u.package.command_line) || "", spellcheck: "false" });
  const codesBody = h("tbody", {});
  const codesError = h("div", { class: "field-error", role: "alert", id: "edit-return-codes-error" });
  const formError = h("div", { class: "field-error", role: "alert", id: "edit-error" });
  const codeRows = [];

  const addCode = (code = "", outcome = "failure") => {
    const key = Math.random().toString(36).slice(2, 8);
    const codeInput = h("input", { type: "number", id: `rc-${key}`, value: String(code), step: 1, "aria-label": "Return code", class: "code" });
    const outcomeSelect = h(
      "select",
      { id: `ro-${key}`, "aria-label": "What the code means" },
      Object.entries(OUTCOMES).map(([value, label]) => h("option", { value, selected: value === outcome }, label)),
    );
    const error = h("div", { class: "field-error", role: "alert", id: `rc-${key}-error` });
    codeInput.setAttribute("aria-describedby", error.id);
    const row = { codeInput, outcomeSelect };
    const tr = h(
      "tr",
      {},
      h("td", { "data-label": "Code" }, codeInput, error),
      h("td", { "data-label": "Means" }, outcomeSelect),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            "aria-label": "Remove this return code",
            onclick: () => {
              codeRows.splice(codeRows.indexOf(row), 1);
              tr.remove();
              check();
            },
          },
          "Remove",
        ),
      ),
    );
    row.tr = tr;
    codeRows.push(row);
    codesBody.append(tr);
    codeInput.addEventListener("input", check);
    outcomeSelect.addEventListener("change", check);
    return row;
  };

  const original = {
    title: u.title,
    description: u.description || "",
    classification: u.classification,
    command_line: (u.package && u.package.command_line) || "",
    return_codes: JSON.stringify((u.return_codes || []).map(({ code, outcome }) => ({ code, outcome }))),
  };
  const codes = () =>
    codeRows.map((row) => ({
      code: row.codeInput.value === "" ? "" : Number(row.codeInput.value),
      outcome: row.outcomeSelect.value,
    }));
  /** Only what changed (EditUpdate: every field optional; return_codes is the full map). */
  const body = () => {
    const out = {};
    if (title.value !== original.title) out.title = title.value;
    if (description.value !== original.description) out.description = description.value;
    if (classification.value !== original.classification) out.classification = classification.value;
    if (commandLine.value !== original.command_line) out.command_line = commandLine.value;
    const map = codes();
    if (JSON.stringify(map) !== original.return_codes) out.return_codes = map;
    return out;
  };
  const inputs = { title, description, classification, command_line: commandLine };

  const clearErrors = () => {
    Object.values(inputs).forEach((input) => setFieldError(input, null));
    codeRows.forEach((row) => {
      row.codeInput.setAttribute("aria-invalid", "false");
      document.getElementById(`${row.codeInput.id}-error`).textContent = "";
    });
    codesError.textContent = "";
    formError.textContent = "";
  };
  /** Put a problem under the field it names (return_codes.<i>.code), else under the form. */
  const showProblem = (problem) => {
    const message = problem.detail || problemText(problem);
    const [name, index] = (problem.field || "").split(".");
    if (inputs[name]) {
      setFieldError(inputs[name], message);
      return inputs[name];
    }
    if (name === "return_codes") {
      const row = codeRows[Number(index)];
      if (row) {
        row.codeInput.setAttribute("aria-invalid", "true");
        document.getElementById(`${row.codeInput.id}-error`).textContent = message;
        return row.codeInput;
      }
      codesError.textContent = message;
      return null;
    }
    formError.textContent = problemText(problem);
    return null;
  };

  const check = debounce(async () => {
    const current = body();
    try {
      const problem = await api.validate("PATCH", EDIT_TEMPLATE, current, true);
      if (!form.isConnected) return;
      clearErrors();
      if (problem) showProblem(problem);
    } catch (failure) {
      console.warn("validate unavailable", failure);
    }
  }, 300);
  (u.return_codes || []).forEach((entry) => addCode(entry.code, entry.outcome));
  [title, description, commandLine].forEach((input) => input.addEventListener("input", check));
  classification.addEventListener("change", check);

  const save = h("button", { type: "submit", class: "primary", id: "edit-save", disabled: !ctx.canWrite, title: ctx.canWrite ? null : READ_ONLY }, "Save");
  const form = h(
    "form",
    { class: "panel", id: "update-edit", "aria-labelledby": "update-edit-title", novalidate: true },
    h("h2", { id: "update-edit-title" }, "Edit this third-party update"),
    field("Name", title),
    field("Description", description),
    field("Classification", classification),
    field("Command-line arguments", commandLine, "Passed to the installer, e.g. /q for a silent install."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Return codes"),
      h("p", { class: "help" }, "The full map: a code not listed is a failure."),
      h("div", { class: "table-wrap stack" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", {}, "Means"), h("th", {}, h("span", { class: "sr-only" }, "Remove")))), codesBody)),
      codesError,
      h("button", { type: "button", id: "edit-add-code", onclick: () => addCode("", "success").codeInput.focus() }, "Add a return code"),
    ),
    formError,
    h(
      "div",
      { class: "toolbar" },
      save,
      h("button", { type: "button", onclick: () => ctx.navigate(`#/updates/${enc(u.update_id)}`) }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = body();
    if (!Object.keys(changes).length) {
      formError.textContent = "Nothing changed.";
      return;
    }
    save.disabled = true;
    clearErrors();
    try {
      await api.patch(`/catalog/updates/${enc(u.update_id)}`, changes);
      notice("Update saved: a new revision goes to the computers.", "ok");
      ctx.navigate(`#/updates/${enc(u.update_id)}`);
    } catch (failure) {
      const target = showProblem(failure);
      if (target) target.focus();
      save.disabled = !ctx.canWrite;
    }
  });
  return form;
}

function attemptsTable(attempts) {
  return table(
    [
      { key: "computer_id", label: "Computer", render: (row) => link(`#/computers/${enc(row.computer_id)}`, row.computer_id) },
      { key: "return_code", label: "Return code", num: true, render: (row) => String(row.return_code) },
      { key: "outcome", label: "Outcome", render: (row) => chip(OUTCOMES[row.outcome] || row.outcome, OUTCOME_KIND[row.outcome] || "") },
      { key: "started_at", label: "Started", render: (row) => fmtDate(row.started_at) },
      { key: "finished_at", label: "Finished", render: (row) => fmtDate(row.finished_at) },
    ],
    attempts,
    { empty: "No failed install." },
  );
}

function computersTable(computers) {
  return table(
    [
      {
        key: "hostname",
        label: "Computer",
        render: (row) => [link(`#/computers/${enc(row.computer_id)}`, row.hostname || row.computer_id), row.hostname ? h("div", { class: "help" }, row.computer_id) : null],
      },
      {
        key: "state",
        label: "State",
        render: (row) => [chip(row.state.replaceAll("_", " "), STATE_KIND[row.state] || ""), row.not_reporting ? chip("not reporting", "bad") : null],
      },
      { key: "reported_at", label: "Reported", render: (row) => (row.reported_at ? fmtDate(row.reported_at) : none("never")) },
      { key: "last_return_code", label: "Last return code", num: true, render: (row) => (row.last_return_code === null || row.last_return_code === undefined ? "–" : String(row.last_return_code)) },
    ],
    computers,
    { rowId: (row) => row.computer_id, empty: "No computer in this state." },
  );
}

/** A pause of an approval in words: where, by whom, since when, why ("" when not paused). */
function pausedText(paused) {
  if (!paused) return "";
  const where = paused.group_name ? `on ${paused.group_name}` : "fleet-wide";
  return `paused ${where} by ${paused.paused_by}, ${fmtDate(paused.paused_at)}: ${paused.reason}`;
}

const CONTROLS = {
  pause: {
    title: "Pause this update",
    text: "No computer starts a new install of it where the pause holds (removals go on). Leave the group empty to pause it fleet-wide.",
    label: "Pause",
  },
  resume: {
    title: "Resume this update",
    text: "Installs go on. Leave the group empty to lift every pause of it; with a group, the pause set on that group.",
    label: "Resume",
  },
  rollback: {
    title: "Roll back this update",
    text: "Its approval becomes Uninstall: fleet-wide on every group approved for install, or on one group and what inherits from it.",
    label: "Roll back",
  },
};

/** The pause, resume or roll back dialog: an optional group, a required reason. */
function openControlDialog(verb, id, done) {
  const control = CONTROLS[verb];
  const group = h("input", { id: `${verb}-group`, name: "group", maxlength: 100, placeholder: "fleet-wide" });
  const reason = h("input", { id: `${verb}-reason`, name: "reason", maxlength: 500, required: true });
  const error = h("div", { class: "error-box", role: "alert", hidden: true });
  const form = h("div", {}, h("p", {}, control.text), field("Group (optional)", group), field("Reason", reason), error);
  const { element } = dialog(
    control.title,
    form,
    [
      {
        label: control.label,
        kind: verb === "resume" ? "primary" : "danger",
        id: `${verb}-confirm`,
        onclick: async (close) => {
          const body = { reason: reason.value };
          if (group.value.trim()) body.group = group.value.trim();
          clearErrors(form, error);
          error.hidden = true;
          try {
            const result = await api.post(`/updates/${enc(id)}/${verb}`, body);
            close();
            notice(result.changed ? `Done: ${fmtNumber(result.effective_changed)} group approvals changed.` : `Nothing changed: ${result.note}`, "ok");
            done();
          } catch (failure) {
            // Under the field the refusal names (group, reason), else below the fields.
            const under = showProblem(form, failure, error);
            error.hidden = under !== null;
            if (under) under.focus();
          }
        },
      },
    ],
  );
  element.querySelector(`#${verb}-reason`).focus();
}

function approvalsTable(groups) {
  return table(
    [
      { key: "group", label: "Group", render: (row) => row.group_name },
      { key: "explicit", label: "Set here", render: (row) => (row.explicit ? approvalText(row.explicit) : none("inherits")) },
      { key: "effective", label: "Applies", render: (row) => approvalText(row.effective) },
      { key: "why", label: "Why", render: (row) => row.why },
      { key: "paused", label: "Paused", render: (row) => pausedText(row.effective && row.effective.paused) },
    ],
    groups,
    { rowId: (row) => row.group_id, empty: "Not approved for any group." },
  );
}

export async function render(root, ctx) {
  const ref = ctx.params[0];
  fill(root, heading("Update"), h("p", { class: "muted" }, "Loading…"));
  let detail;
  try {
    detail = await api.get(`/catalog/updates/${enc(ref)}`);
  } catch (error) {
    fill(root, heading("Update"), errorBox(error), h("p", {}, link("#/updates", "All updates")));
    return undefined;
  }
  const u = detail.update;
  const id = u.update_id;
  const thirdParty = u.origin === "third_party";
  // Viewers see the properties only (the Edit button is disabled for them too).
  const editing = thirdParty && ctx.canWrite && ctx.query.get("edit") === "1";
  const path = `/reports/updates/${enc(id)}`;

  // --- tasks
  const button = (attrs, text, why = null) =>
    h("button", { type: "button", ...attrs, disabled: !ctx.canWrite || Boolean(why), title: !ctx.canWrite ? READ_ONLY : why }, text);
  const notApprovable = u.expired ? "Expired: it can no longer be approved" : u.offered === false ? `Not offered: ${u.not_offered_because || "outside the catalog settings"}` : null;
  const approveButton = button({ id: "approve-update", class: "primary" }, "Approve…", notApprovable);
  const declineButton = button({ id: "decline-update" }, "Decline");
  const expireButton = button({ id: "expire-update" }, "Expire", u.expired ? "Already expired" : null);
  const pauseButton = button({ id: "pause-update" }, "Pause…");
  const resumeButton = button({ id: "resume-update" }, "Resume…");
  const rollbackButton = button({ id: "rollback-update", class: "danger" }, "Roll back…");
  const editButton = thirdParty ? button({ id: "edit-update" }, "Edit") : null;
  const deleteButton = thirdParty ? button({ id: "delete-update", class: "danger" }, "Delete") : null;

  const stateSlot = h("p", { id: "update-states" });
  const approvalsSlot = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const countsSlot = h("section", { class: "panel", id: "update-report" }, h("h2", {}, "Computers per state"), h("p", { class: "muted" }, "Loading…"));
  const computersSlot = h("div", { id: "update-computers-list" });

  approveButton.addEventListener("click", () =>
    openApproveDialog([id], ctx, () => loadApprovals(), [kbLabel(u.kb) || u.title]),
  );
  declineButton.addEventListener("click", async () => {
    const sure = await confirmDialog(
      "Decline this update",
      "Declining drops every approval of the update, hides it from the default views and deletes its report data. " +
        "The Declined filter still finds it; it may be approved again later unless it expired.",
      "Decline",
      { danger: true },
    );
    if (!sure) return;
    try {
      const result = await api.post("/updates/decline", { updates: [id] });
      notice(`Declined; ${fmtNumber(result.effective_changed)} group approvals removed.`, "ok");
      ctx.reload();
    } catch (error) {
      notice(problemText(error), "error");
    }
  });
  expireButton.addEventListener("click", () => {
    const reason = h("input", { id: "expire-reason", value: "expired by an operator", maxlength: 500 });
    const error = h("div", { class: "error-box", role: "alert", hidden: true });
    const { element } = dialog(
      "Expire this update",
      h("div", {}, h("p", {}, "An expired update can no longer be approved. Its existing approvals and reports stay."), field("Reason", reason), error),
      [
        {
          label: "Expire",
          kind: "danger",
          id: "expire",
          onclick: async (close) => {
            try {
              await api.post(`/catalog/updates/${enc(id)}/expire`, { reason: reason.value });
              close();
              notice("Update expired.", "ok");
              ctx.reload();
            } catch (failure) {
              error.hidden = false;
              error.textContent = problemText(failure);
            }
          },
        },
      ],
    );
    element.querySelector("#expire-reason").focus();
  });
  pauseButton.addEventListener("click", () => openControlDialog("pause", id, () => loadApprovals()));
  resumeButton.addEventListener("click", () => openControlDialog("resume", id, () => loadApprovals()));
  rollbackButton.addEventListener("click", () => openControlDialog("rollback", id, () => loadApprovals()));
  if (editButton) editButton.addEventListener("click", () => ctx.navigate(`#/updates/${enc(id)}?edit=1`));
  if (deleteButton) {
    deleteButton.addEventListener("click", async () => {
      const sure = await confirmDialog(
        "Delete this update",
        `Delete “${u.title}”? Its approvals and report data go too, and its stored content is freed. This cannot be undone.`,
        "Delete",
        { danger: true },
      );
      if (!sure) return;
      try {
        const result = await api.del(`/catalog/updates/${enc(id)}`);
        notice(`Deleted “${u.title}” (${fmtBytes(result ? result.freed_bytes : 0)} freed).`, "ok");
        ctx.navigate("#/updates");
      } catch (error) {
        notice(problemText(error), "error");
      }
    });
  }

  // --- approvals per group
  async function loadApprovals() {
    try {
      const list = await api.get(`/updates/${enc(id)}/approvals`);
      fill(approvalsSlot, approvalsTable(list.groups || []));
    } catch (error) {
      fill(approvalsSlot, routeMissing(error) ? h("p", { class: "muted" }, "Not available.") : errorBox(error));
    }
  }

  // --- counts and failed attempts
  let attemptsOffset = 0;
  let countsNode = null;
  const installs = h("p", { id: "update-installs" });
  const attemptsSlot = h("div", {});
  const installsText = (report) =>
    `Installs reported: ${fmtNumber(report.successes)} succeeded, ${fmtNumber(report.failures)} failed.`;
  const countValues = (report) => ({ ...report.update.counts });
  async function loadReport() {
    try {
      const report = await api.get(path, { offset: attemptsOffset, limit: ATTEMPTS_PAGE });
      const counts = report.update.counts;
      if (!countsNode) {
        countsNode = h(
          "div",
          { id: "update-counts" },
          (() => {
            const cards = countCards(counts);
            cards.prepend(card("applies_to", "Applies to", counts.applies_to));
            return cards;
          })(),
        );
        fill(countsSlot, h("h2", {}, "Computers per state"), countsNode, installs, h("h3", {}, "Failed installs"), attemptsSlot);
      } else setCounts(countsNode, countValues(report));
      installs.textContent = installsText(report);
      fill(
        attemptsSlot,
        attemptsTable(report.failed_attempts || []),
        pager(attemptsOffset, ATTEMPTS_PAGE, report.failures, (offset) => {
          attemptsOffset = offset;
          loadReport();
        }),
      );
    } catch (error) {
      countsNode = null;
      const nothingYet = error.status === 404 && !routeMissing404(error);
      fill(
        countsSlot,
        h("h2", {}, "Computers per state"),
        nothingYet ? h("p", { class: "muted", id: "update-counts" }, "No computer has reported on this update, and no approval targets one, yet.") : errorBox(error),
      );
    }
  }

  // --- computers it concerns
  let computersOffset = 0;
  const stateSelect = h(
    "select",
    { id: "update-computers-state" },
    COMPUTER_STATES.map(([value, label]) => h("option", { value }, label)),
  );
  async function loadComputers() {
    const chosen = stateSelect.value;
    const params =
      chosen === "not_reporting"
        ? { not_reporting: true }
        : { state: chosen || null };
    try {
      const list = await api.get(`${path}/computers`, { ...params, offset: computersOffset, limit: COMPUTERS_PAGE });
      fill(
        computersSlot,
        computersTable(list.computers || []),
        pager(computersOffset, COMPUTERS_PAGE, list.total, (offset) => {
          computersOffset = offset;
          loadComputers();
        }),
      );
    } catch (error) {
      fill(computersSlot, routeMissing(error) ? h("p", { class: "muted" }, "Not available.") : errorBox(error));
    }
  }
  stateSelect.addEventListener("change", () => {
    computersOffset = 0;
    loadComputers();
  });

  // --- the update's states (new, approved, declined...), as All updates lists them
  async function loadStates() {
    try {
      const list = await api.get("/updates", {
        states: ["new", "approved", "declined", "superseded", "expired", "third_party", "not_offered"],
        search: u.kb || u.title.slice(0, 200),
        limit: 50,
      });
      const row = (list.updates || []).find((item) => item.update_id === id);
      if (row) fill(stateSlot, stateChips(row.states), row.states.length ? null : none("no state"));
    } catch (error) {
      console.warn("states unavailable", error);
    }
  }

  fill(
    root,
    h("p", { class: "crumbs" }, link("#/updates", "All updates"), " › ", kbLabel(u.kb) || "update"),
    heading(u.title, approveButton, declineButton, pauseButton, resumeButton, rollbackButton, expireButton, editButton, deleteButton),
    stateSlot,
    editing ? editForm(u, ctx) : null,
    h("section", { class: "panel", id: "update-properties" }, h("h2", {}, "Properties"), properties(detail)),
    packageSection(u),
    h("section", { class: "panel", id: "update-return-codes" }, h("h2", {}, "Return codes"), returnCodesTable(u.return_codes)),
    h(
      "section",
      { class: "panel", id: "update-approvals" },
      h("h2", {}, "Approval per group"),
      h("p", { class: "help" }, `Actions: ${Object.values(ACTION_LABELS).slice(0, 4).join(", ")}. A group inherits its parent's until it has do not install, required install or uninstall set itself.`),
      approvalsSlot,
    ),
    countsSlot,
    h(
      "section",
      { class: "panel", id: "update-computers" },
      h("h2", {}, "Computers"),
      field("Show computers", stateSelect),
      computersSlot,
    ),
  );
  if (editing) {
    const first = root.querySelector("#edit-title");
    if (first) first.focus();
  }
  await Promise.all([loadApprovals(), loadReport(), loadComputers(), loadStates()]);

  let first = true;
  return every(REFRESH_MS, async () => {
    if (first) {
      first = false;
      return;
    }
    if (!root.isConnected) return;
    if (!countsNode) {
      await loadReport(); // nothing reported at first: show the counts once there are some
      return;
    }
    const report = await api.get(path, { offset: 0, limit: 1 });
    setCounts(countsNode, countValues(report));
    installs.textContent = installsText(report);
  });
}
