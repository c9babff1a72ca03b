// #/upload and #/upload/<upload_id>: the third-party upload procedure of docs/product.md
// section 4, eight steps as the API has them (libs/contracts/uploads.py). Files go up in
// chunks the API checks against the storage quota; the upload id is kept in localStorage and
// the address, so an interrupted upload resumes from the bytes the catalog already holds.

import * as api from "../api.js";
import {
  chip,
  clearErrors,
  closeDialogs,
  confirmDialog,
  errorBox,
  field,
  fill,
  fmtBytes,
  fmtDate,
  fmtNumber,
  h,
  heading,
  liveValidate,
  notice,
  problemText,
  routeMissing,
  selectBox,
  showProblem,
  table,
  writeAttrs,
} from "../ui.js";

const STORE_KEY = "lockgate.upload";
const CHUNK = 1024 * 1024;
const STEPS = [
  ["files", "Files"],
  ["description", "Description"],
  ["requirements", "Requirements"],
  ["detection-rules", "Detection rules"],
  ["prerequisites", "Prerequisites"],
  ["command-line", "Command line"],
  ["return-codes", "Return codes"],
  ["summary", "Summary"],
];
/** The step's name in UploadSession.answered. */
const ANSWERED = {
  description: "description",
  requirements: "requirements",
  "detection-rules": "detection_rules",
  prerequisites: "prerequisites",
  "command-line": "command_line",
  "return-codes": "return_codes",
};
const OPEN = ["receiving", "received"];
const INSTALLER = /\.(msi|msp|exe)$/i;
const RULE_KINDS = [
  ["file_exists", "A file exists"],
  ["msi_product_code", "An MSI product code exists"],
  ["registry_key", "A registry key exists"],
];
const RULE_HINTS = {
  file_exists: "C:\\Program Files\\Vendor\\app.exe or %ProgramFiles%\\Vendor\\app.exe",
  msi_product_code: "{12345678-1234-1234-1234-123456789ABC}",
  registry_key: "HKLM\\SOFTWARE\\Vendor\\App",
};
const OUTCOMES = [
  ["success", "Success"],
  ["success_restart_required", "Success, restart required"],
  ["failure", "Failure"],
];
const SIZE_UNITS = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

const enc = encodeURIComponent;

function remembered() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

function remember(uploadId) {
  try {
    localStorage.setItem(STORE_KEY, uploadId);
  } catch {
    // private windows may refuse storage: resuming then goes by the address or the list
  }
}

function forget(uploadId) {
  try {
    if (!uploadId || localStorage.getItem(STORE_KEY) === uploadId) localStorage.removeItem(STORE_KEY);
  } catch {
    // nothing kept
  }
}

/** The installer kind: what the catalog read, else the installer's extension. */
function kindOf(session) {
  if (session.extracted && session.extracted.kind) return session.extracted.kind;
  const match = /\.([a-z]+)$/i.exec(session.files[0].path);
  return match ? match[1].toLowerCase() : "";
}

function asksDetection(session) {
  return !["msi", "msp"].includes(kindOf(session));
}

function applicable(session, step) {
  return step !== "detection-rules" || asksDetection(session);
}

/** Per declared path, the bytes the catalog holds: file_progress, else derived in order. */
function progressOf(session) {
  const found = new Map();
  if (Array.isArray(session.file_progress) && session.file_progress.length) {
    for (const item of session.file_progress) found.set(item.path, item.received_bytes);
    return found;
  }
  const complete = ["received", "committed"].includes(session.state);
  let left = session.received_bytes;
  for (const file of session.files) {
    const have = complete ? file.size : Math.min(file.size, left);
    found.set(file.path, have);
    left -= have;
  }
  return found;
}

function answered(session, step) {
  if (step === "files") return ["received", "committed"].includes(session.state);
  if (step === "summary") return session.state === "committed";
  return (session.answered || []).includes(ANSWERED[step]);
}

/** Where a session stands: the first step still to do. */
function firstStep(session) {
  if (session.state === "receiving") return "files";
  if (session.state !== "received") return "summary";
  for (const [step] of STEPS.slice(1, -1)) {
    if (applicable(session, step) && !answered(session, step)) return step;
  }
  return "summary";
}

function neighbour(session, step, direction) {
  const names = STEPS.map(([name]) => name);
  let index = names.indexOf(step) + direction;
  while (index > 0 && index < names.length - 1 && !applicable(session, names[index])) index += direction;
  return names[Math.max(0, Math.min(index, names.length - 1))];
}

/** A size typed as bytes or with a unit (500MB, 2GiB): bytes, null when empty, or the text
 * itself when it is no size (the API then names the field and what it allows). */
function parseSize(text) {
  const value = text.trim();
  if (!value) return null;
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(value);
  if (!match || !(match[2].toLowerCase() in SIZE_UNITS)) return value;
  return Math.floor(Number(match[1]) * SIZE_UNITS[match[2].toLowerCase()]);
}

function parseCode(text) {
  const value = text.trim();
  return /^-?\d+$/.test(value) ? Number(value) : value;
}

/** The base64 of bytes [start, end) of a file, read by the browser (no string building). */
function readChunk(file, start, end) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const text = String(reader.result);
      resolve(text.slice(text.indexOf(",") + 1));
    };
    reader.onerror = () => reject(reader.error || new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file.slice(start, end));
  });
}

function enumOf(doc, model, property, fallback) {
  try {
    const prop = doc.components.schemas[model].properties[property];
    const options = prop.enum || (prop.items && prop.items.enum);
    return options && options.length ? options : fallback;
  } catch {
    return fallback;
  }
}

export async function render(root, ctx) {
  const w = {
    ctx,
    root,
    session: null,
    step: "files",
    local: new Map(),
    halted: false,
    busy: false,
    doc: null,
    head: h("div"),
    nav: h("nav", { "aria-label": "Upload steps" }),
    body: h("div", { class: "wizard-body" }),
    extra: h("div"),
  };
  fill(root, w.head, w.nav, w.body, w.extra);
  w.doc = await api.schema().catch(() => null);
  const uploadId = ctx.params[0];
  if (uploadId) {
    try {
      w.session = await api.get(`/uploads/${enc(uploadId)}`);
    } catch (error) {
      if (error.status === 404) forget(uploadId);
      fill(
        w.body,
        errorBox(error),
        h("p", {}, h("a", { href: "#/upload", id: "upload-restart" }, "Start a new upload")),
      );
      drawHead(w);
      return () => {
        w.halted = true;
      };
    }
    if (OPEN.includes(w.session.state)) remember(w.session.upload_id);
    else forget(w.session.upload_id);
    w.step = firstStep(w.session);
  }
  draw(w);
  if (!uploadId) drawOpen(w);
  return () => {
    w.halted = true;
    closeDialogs();
  };
}

function drawHead(w) {
  const open = w.session && OPEN.includes(w.session.state);
  fill(
    w.head,
    heading(
      "Upload a third-party update",
      open
        ? h(
            "button",
            writeAttrs(w.ctx, { type: "button", id: "upload-cancel", class: "danger", onclick: () => cancel(w) }),
            "Cancel upload",
          )
        : null,
    ),
    w.session
      ? h(
          "p",
          { class: "help" },
          "Upload ",
          h("code", {}, w.session.upload_id),
          " · ",
          chip(w.session.state, stateKind(w.session.state)),
          w.session.expires_at ? ` · expires if left untouched ${fmtDate(w.session.expires_at)}` : "",
        )
      : h(
          "p",
          { class: "help" },
          "Third-party updates are added in eight steps (docs/product.md section 4); once stored they are approved like Microsoft updates.",
        ),
  );
}

function stateKind(state) {
  return { received: "good", committed: "good", receiving: "warn", refused: "bad", cancelled: "", expired: "" }[state] || "";
}

function drawSteps(w) {
  const s = w.session;
  const reachable = (step) => s && s.state === "received" && applicable(s, step);
  fill(
    w.nav,
    h(
      "ol",
      { class: "steps" },
      STEPS.map(([step, label], index) => {
        const current = step === w.step;
        const skipped = s && !applicable(s, step);
        const done = s && !skipped && answered(s, step);
        const text = `${index + 1}. ${label}${skipped ? ` (not asked for .${kindOf(s)})` : ""}`;
        return h(
          "li",
          {
            class: [done ? "done" : "", skipped ? "skipped" : ""].join(" ").trim(),
            "aria-current": current ? "step" : null,
            dataset: { step },
          },
          reachable(step) && !current && !w.busy
            ? h("button", { type: "button", class: "step-link", onclick: () => go(w, step) }, text)
            : text,
        );
      }),
    ),
  );
}

function draw(w) {
  drawHead(w);
  drawSteps(w);
  const views = {
    files: filesStep,
    description: describeStep,
    requirements: requirementsStep,
    "detection-rules": detectionStep,
    prerequisites: prerequisitesStep,
    "command-line": commandLineStep,
    "return-codes": returnCodesStep,
    summary: summaryStep,
  };
  fill(w.body, views[w.step](w));
}

function go(w, step) {
  w.step = step;
  draw(w);
  const title = w.body.querySelector("h2");
  if (title) {
    title.setAttribute("tabindex", "-1");
    title.focus();
  }
}

/** Back and Next of a step form (Next submits the form). */
function stepNav(w, step, nextLabel = "Next") {
  return h(
    "div",
    { class: "wizard-nav" },
    step !== "files"
      ? h("button", { type: "button", dataset: { action: "back" }, onclick: () => go(w, neighbour(w.session, step, -1)) }, "Back")
      : null,
    h("button", writeAttrs(w.ctx, { type: "submit", class: "primary", dataset: { action: "next" } }), nextLabel),
  );
}

// --- step 1: files ------------------------------------------------------------------------------

function filesStep(w) {
  const s = w.session;
  if (s && s.state !== "receiving") return receivedFiles(w);
  const error = h("div", { id: "upload-error", class: "field-error", role: "alert" });
  const progress = h("progress", { id: "upload-progress", max: 1, value: 0 });
  const percent = h("span", { id: "upload-percent", class: "percent" }, "0 %");
  const list = h("div", { id: "upload-files" });
  const total = h("p", { id: "upload-total" });
  const resuming = Boolean(s);
  const inputs = {
    main: h("input", writeAttrs(w.ctx, {
      id: "upload-file",
      name: "files",
      type: "file",
      multiple: true,
      accept: resuming ? null : ".msi,.msp,.exe",
    })),
    extra: h("input", writeAttrs(w.ctx, { id: "upload-extra", name: "extra_files", type: "file", multiple: true })),
    folder: h("input", writeAttrs(w.ctx, { id: "upload-folder", type: "file", webkitdirectory: true })),
  };
  const ui = { error, progress, percent, form: null };
  const form = h(
    "form",
    { id: "step-files", novalidate: true },
    h("h2", {}, "1. Files"),
    resuming
      ? [
          h(
            "p",
            {},
            "This upload was interrupted. Choose the same file(s) again: the upload continues from the bytes already received (each file's name and size must match).",
          ),
          declaredTable(s),
          field("The same file(s) again", inputs.main, "Select every file still to send; files already complete are not needed."),
          field("Files in subfolders (a folder)", inputs.folder, "Only if the upload declared files in a subfolder."),
        ]
      : [
          field(
            "Installer and other files",
            inputs.main,
            "One installer: a Windows Installer package (.msi), a patch (.msp) or a program (.exe). Other files of its folder may be selected with it.",
          ),
          field("More files from the installer's folder", inputs.extra),
          field("Or a folder from the installer's folder", inputs.folder, "Its files keep their paths below the installer's folder."),
        ],
    list,
    total,
    h("div", { class: "upload-progress" }, h("label", { for: "upload-progress" }, "Uploaded"), progress, percent),
    error,
    stepNav(w, "files", resuming ? "Continue upload" : "Upload"),
  );
  ui.form = form;
  const declared = () => pickedFiles(inputs);
  const show = () => {
    error.replaceChildren();
    if (resuming) {
      const problems = matchResume(w, inputs);
      fill(list, problems.length ? h("ul", { class: "errors" }, problems.map((p) => h("li", {}, p))) : null);
      if (!problems.length && w.local.size) sendAll(w, ui);
      return;
    }
    const { installer, extras, problem } = declared();
    const files = installer ? [installer, ...extras] : extras;
    const bytes = files.reduce((sum, item) => sum + item.file.size, 0);
    fill(
      list,
      files.length
        ? table(
            [
              { key: "path", label: "File", render: (item) => h("code", {}, item.path) },
              { key: "role", label: "Role", render: (item) => (item === installer ? chip("installer", "good") : "extra file") },
              { key: "size", label: "Size", num: true, render: (item) => fmtBytes(item.file.size) },
            ],
            files,
            { caption: "Files to upload" },
          )
        : null,
    );
    fill(
      total,
      files.length
        ? [h("strong", {}, `Total to upload: ${fmtBytes(bytes)}`), ` (${fmtNumber(bytes)} bytes): the size as uploaded (compressed), not once the installer is expanded.`]
        : "",
    );
    progress.max = Math.max(bytes, 1);
    progress.value = 0;
    percent.textContent = "0 %";
    if (problem) error.textContent = problem;
  };
  Object.values(inputs).forEach((input) => input.addEventListener("change", show));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (w.busy) return;
    if (resuming) {
      const problems = matchResume(w, inputs);
      if (problems.length) {
        error.textContent = problems.join(" ");
        return;
      }
      sendAll(w, ui);
      return;
    }
    if (w.session) {
      // Started here already (then interrupted): continue it, never a second upload.
      ui.error.replaceChildren();
      sendAll(w, ui);
      return;
    }
    const { installer, extras, problem } = declared();
    if (problem || !installer) {
      error.textContent = problem || "Choose the installer (.msi, .msp or .exe) first.";
      inputs.main.focus();
      return;
    }
    const empty = [installer, ...extras].find((item) => item.file.size === 0);
    if (empty) {
      error.textContent = `${empty.path} is empty (0 bytes): only files with content can be uploaded.`;
      return;
    }
    setBusy(w, form, true);
    try {
      w.session = await api.post("/uploads", {
        installer: { path: installer.path, size: installer.file.size },
        extra_files: extras.map((item) => ({ path: item.path, size: item.file.size })),
      });
    } catch (failure) {
      setBusy(w, form, false);
      error.textContent = problemText(failure);
      return;
    }
    for (const item of [installer, ...extras]) w.local.set(item.path, item.file);
    remember(w.session.upload_id);
    history.replaceState(history.state, "", `#/upload/${enc(w.session.upload_id)}`);
    w.extra.replaceChildren();
    Object.values(inputs).forEach((input) => {
      input.dataset.wasDisabled = "1"; // the files are declared: they stay as chosen
    });
    const next = form.querySelector("[data-action=next]");
    next.textContent = "Continue upload";
    next.dataset.wasDisabled = "";
    drawHead(w);
    await sendAll(w, ui);
  });
  if (resuming) {
    const have = progressOf(s);
    const sent = s.files.reduce((sum, file) => sum + (have.get(file.path) || 0), 0);
    setProgress(ui, sent, s.total_bytes);
  }
  return form;
}

/** Local files chosen: the installer (first .msi/.msp/.exe of #upload-file) and the rest. */
function pickedFiles(inputs) {
  const items = [];
  for (const file of inputs.main.files || []) items.push({ path: file.name, file });
  for (const file of inputs.extra.files || []) items.push({ path: file.name, file });
  for (const file of inputs.folder.files || []) items.push({ path: file.webkitRelativePath || file.name, file });
  const installer = items.find((item) => INSTALLER.test(item.path) && !item.path.includes("/")) || null;
  const extras = items.filter((item) => item !== installer);
  let problem = null;
  if (items.length && !installer) problem = "No installer among the files: choose one .msi, .msp or .exe.";
  return { installer, extras, problem };
}

/** Match the files chosen again to the declared ones still incomplete; the problems, if any. */
function matchResume(w, inputs) {
  const s = w.session;
  const have = progressOf(s);
  const chosen = [];
  for (const file of inputs.main.files || []) chosen.push({ path: file.name, file });
  for (const file of inputs.folder.files || []) chosen.push({ path: file.webkitRelativePath || file.name, file });
  const problems = [];
  for (const declared of s.files) {
    if ((have.get(declared.path) || 0) >= declared.size) continue;
    const base = declared.path.split("/").pop();
    const candidates = chosen.filter((item) => item.path === declared.path || item.path.endsWith(`/${declared.path}`) || item.file.name === base);
    if (!candidates.length) {
      if (!w.local.has(declared.path)) problems.push(`Choose ${declared.path} (${fmtNumber(declared.size)} bytes).`);
      continue;
    }
    const same = candidates.find((item) => item.file.size === declared.size);
    if (!same) {
      problems.push(
        `${declared.path} is ${fmtNumber(candidates[0].file.size)} bytes here but was declared ${fmtNumber(declared.size)} bytes: choose the same file.`,
      );
      continue;
    }
    w.local.set(declared.path, same.file);
  }
  return problems;
}

function declaredTable(s) {
  const have = progressOf(s);
  return table(
    [
      { key: "path", label: "File", render: (file) => h("code", {}, file.path) },
      { key: "size", label: "Size", num: true, render: (file) => fmtBytes(file.size) },
      {
        key: "received",
        label: "Received",
        num: true,
        render: (file) => {
          const got = have.get(file.path) || 0;
          return `${fmtBytes(got)} (${Math.floor((got * 100) / file.size)} %)`;
        },
      },
    ],
    s.files,
    { caption: "Declared files", rowId: (file) => file.path },
  );
}

function setProgress(ui, received, total) {
  ui.progress.max = Math.max(total, 1);
  ui.progress.value = received;
  const pct = total ? Math.floor((received * 100) / total) : 0;
  ui.percent.textContent = `${pct} % (${fmtBytes(received)} of ${fmtBytes(total)})`;
}

function setBusy(w, form, busy) {
  w.busy = busy;
  form.querySelectorAll("button, input, select, textarea").forEach((control) => {
    if (busy) {
      control.dataset.wasDisabled = control.disabled ? "1" : "";
      control.disabled = true;
    } else {
      control.disabled = control.dataset.wasDisabled === "1";
    }
  });
  form.setAttribute("aria-busy", busy ? "true" : "false");
  drawSteps(w);
}

/** Send every declared file from where the catalog stands, chunk by chunk. */
async function sendAll(w, ui) {
  if (w.sending) return;
  w.sending = true;
  try {
    await sendFiles(w, ui);
  } finally {
    w.sending = false;
  }
}

async function sendFiles(w, ui) {
  if (!w.busy) setBusy(w, ui.form, true);
  const uploadId = w.session.upload_id;
  let conflicts = 0;
  try {
    const have = progressOf(w.session);
    let sent = w.session.files.reduce((sum, file) => sum + (have.get(file.path) || 0), 0);
    setProgress(ui, sent, w.session.total_bytes);
    for (const file of w.session.files) {
      let offset = have.get(file.path) || 0;
      const local = w.local.get(file.path);
      while (offset < file.size) {
        if (w.halted) return;
        if (!local) throw new Error(`Choose ${file.path} again to continue.`);
        const end = Math.min(offset + CHUNK, file.size);
        const data = await readChunk(local, offset, end);
        if (w.halted) return;
        try {
          w.session = await api.post(`/uploads/${enc(uploadId)}/chunks`, { path: file.path, offset, data_b64: data });
        } catch (error) {
          // The catalog holds another number of bytes (a chunk answered after a lost reply):
          // continue from its offset.
          const at = error instanceof api.ApiProblem && error.status === 409 && /send offset (\d+)/.exec(error.detail);
          if (at && !w.halted && conflicts < 5) {
            conflicts += 1;
            sent += Number(at[1]) - offset;
            offset = Number(at[1]);
            continue;
          }
          throw error;
        }
        sent += end - offset;
        offset = end;
        setProgress(ui, w.session.received_bytes ?? sent, w.session.total_bytes);
      }
    }
  } catch (error) {
    if (w.halted) return;
    setBusy(w, ui.form, false);
    uploadFailed(w, ui, error);
    return;
  }
  if (w.halted) return;
  setBusy(w, ui.form, false);
  if (w.session.state === "received") {
    notice("Every byte arrived; the catalog read the installer's own description.", "ok");
    go(w, firstStep(w.session));
  } else {
    fill(ui.error, `The upload is ${w.session.state}: ${w.session.refusal || "not every byte arrived"}.`);
  }
}

function uploadFailed(w, ui, error) {
  const ended =
    error instanceof api.ApiProblem &&
    (error.status === 413 || error.title === "NotAnInstaller" || (error.status === 409 && error.field === "upload_id"));
  if (ended) {
    // Over the quota, or not an installer: the catalog refused the upload and dropped its
    // bytes; it cannot be resumed.
    forget(w.session.upload_id);
    const what = error.status === 413 ? "The storage quota is exceeded" : error.status === 409 ? "The upload has ended" : "The upload was refused";
    fill(
      ui.error,
      h("strong", {}, `${what}: `),
      error.detail || error.title,
      " ",
      h("a", { href: "#/upload", id: "upload-restart" }, "Start a new upload"),
    );
    api
      .get(`/uploads/${enc(w.session.upload_id)}`)
      .then((session) => {
        w.session = session;
        drawHead(w);
        drawSteps(w);
      })
      .catch(() => {});
    ui.form.querySelectorAll("button[type=submit], input[type=file]").forEach((control) => {
      control.disabled = true;
    });
    return;
  }
  fill(
    ui.error,
    problemText(error),
    " ",
    h(
      "button",
      writeAttrs(w.ctx, {
        type: "button",
        id: "upload-retry",
        onclick: async () => {
          try {
            w.session = await api.get(`/uploads/${enc(w.session.upload_id)}`);
          } catch (failure) {
            fill(ui.error, problemText(failure));
            return;
          }
          if (w.session.state !== "receiving") {
            go(w, firstStep(w.session));
            return;
          }
          ui.error.replaceChildren();
          sendAll(w, ui);
        },
      }),
      "Retry",
    ),
  );
}

function receivedFiles(w) {
  const s = w.session;
  const form = h(
    "form",
    { id: "step-files", novalidate: true },
    h("h2", {}, "1. Files"),
    h("p", {}, `Every file arrived: ${fmtBytes(s.total_bytes)} (${fmtNumber(s.total_bytes)} bytes) as uploaded.`),
    declaredTable(s),
    extractedPanel(s),
    s.state === "received" ? stepNav(w, "files") : null,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(w, neighbour(s, "files", 1));
  });
  return form;
}

function extractedPanel(s) {
  const ex = s.extracted;
  if (!ex) return null;
  const rows = [
    ["Installer type", ex.kind ? `.${ex.kind}` : null],
    ["Product name", ex.product_name],
    ["Version", ex.version],
    ["Manufacturer", ex.manufacturer],
    ["Product code", ex.product_code],
    ["Description", ex.description],
  ].filter(([, value]) => value);
  return h(
    "section",
    { class: "panel extracted", id: "upload-extracted" },
    h("h3", {}, "Read from the installer"),
    h("dl", { class: "props" }, rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
  );
}

// --- steps 2-7 ----------------------------------------------------------------------------------

/**
 * A step form: live validation of its body against the route, and Next sending it (PUT)
 * before moving on; the API's refusal goes under the field it names.
 */
function stepForm(w, step, number, title, children, body, { help = null, validateBody = null } = {}) {
  const path = step;
  const template = `/uploads/{upload_id}/${path}`;
  const error = h("div", { class: "form-error", role: "alert", id: `step-${step}-error` });
  const form = h(
    "form",
    { id: `step-${step}`, novalidate: true },
    h("h2", {}, `${number}. ${title}`),
    help ? h("p", { class: "help" }, help) : null,
    children,
    error,
    stepNav(w, step),
  );
  liveValidate(form, () => api.validate("PUT", template, (validateBody || body)(), true), { fallback: error });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (w.busy) return;
    clearErrors(form, error);
    setBusy(w, form, true);
    try {
      w.session = await api.put(`/uploads/${enc(w.session.upload_id)}/${path}`, body());
    } catch (failure) {
      setBusy(w, form, false);
      const input = showProblem(form, failure, error);
      if (input) input.focus();
      if (failure instanceof api.ApiProblem && failure.status === 409 && failure.field === "upload_id") {
        refreshSession(w);
      }
      return;
    }
    setBusy(w, form, false);
    go(w, neighbour(w.session, step, 1));
  });
  return form;
}

async function refreshSession(w) {
  try {
    w.session = await api.get(`/uploads/${enc(w.session.upload_id)}`);
    if (!OPEN.includes(w.session.state)) forget(w.session.upload_id);
    drawHead(w);
    drawSteps(w);
  } catch {
    // the error under the form says enough
  }
}

function suggestedTitle(ex) {
  if (!ex) return "";
  return [ex.product_name, ex.version].filter(Boolean).join(" ");
}

function describeStep(w) {
  const s = w.session;
  const ex = s.extracted || {};
  const title = h("input", { name: "title", value: s.title ?? suggestedTitle(ex), autocomplete: "off" });
  const description = h("textarea", { name: "description", rows: 4 });
  description.value = s.description ?? ex.description ?? "";
  const classes = enumOf(w.doc, "DescribeBody", "classification", [
    "Updates",
    "Critical Updates",
    "Security Updates",
    "Update Rollups",
    "Service Packs",
  ]);
  const classification = selectBox({ name: "classification" }, classes, s.classification || "Updates");
  const body = () => ({
    title: title.value.trim() || null,
    description: description.value,
    classification: classification.value,
  });
  return stepForm(
    w,
    "description",
    2,
    "Description",
    [
      extractedPanel(s),
      field("Name", title, "Read from the installer; change it if you like (at most 300 characters)."),
      field("Description", description, "At most 4000 characters."),
      field("Classification", classification),
    ],
    body,
  );
}

function requirementsStep(w) {
  const s = w.session;
  const arches = enumOf(w.doc, "SetRequirementsBody", "architecture", ["x86", "x64", "both"]);
  const labels = { x86: "32-bit (x86)", x64: "64-bit (x64)", both: "Both (any architecture, arm64 included)" };
  const architecture = selectBox(
    { name: "architecture", required: true },
    [["", "Choose…"], ...arches.map((arch) => [arch, labels[arch] || arch])],
    s.architecture || "",
  );
  const systems = h("input", {
    name: "operating_systems",
    value: (s.operating_systems || []).join(", "),
    placeholder: "Windows 10, Windows 11",
    autocomplete: "off",
  });
  const disk = h("input", { name: "min_free_disk_bytes", inputmode: "text", value: s.min_free_disk_bytes ?? "", placeholder: "e.g. 500MB" });
  const memory = h("input", { name: "min_memory_bytes", inputmode: "text", value: s.min_memory_bytes ?? "", placeholder: "e.g. 4GiB" });
  const echo = (input) => {
    const out = h("div", { class: "help size-echo", "aria-live": "polite" });
    const update = () => {
      const value = parseSize(input.value);
      out.textContent = typeof value === "number" ? `= ${fmtNumber(value)} bytes (${fmtBytes(value)})` : "";
    };
    input.addEventListener("input", update);
    update();
    return out;
  };
  const list = () =>
    systems.value
      .split(/[,\n]/)
      .map((name) => name.trim())
      .filter(Boolean);
  const body = () => ({
    architecture: architecture.value || null,
    operating_systems: list(),
    min_free_disk_bytes: parseSize(disk.value),
    min_memory_bytes: parseSize(memory.value),
  });
  const partial = () => {
    const all = body();
    if (!all.architecture) delete all.architecture;
    if (!all.operating_systems.length) delete all.operating_systems;
    return all;
  };
  const sizeHelp = "Bytes (0 to 2^50), or a size such as 500MB (powers of 1000) or 2GiB (powers of 1024); empty: no requirement. Computers that report less find the update not applicable.";
  return stepForm(
    w,
    "requirements",
    3,
    "Requirements",
    [
      field("Architecture", architecture),
      field("Operating systems", systems, "Names as agents report them, separated by commas, e.g. Windows 10, Windows 11."),
      field("Free disk space needed", disk, sizeHelp),
      echo(disk),
      field("Memory needed", memory, sizeHelp),
      echo(memory),
    ],
    body,
    { validateBody: partial },
  );
}

/** An editable list of detection rules (kind and value), inputs named rules.<n>.kind/value. */
function rulesEditor(initial, label) {
  const rules = initial.map((rule) => ({ kind: rule.kind, value: rule.value }));
  const box = h("div", { class: "rules-editor" });
  const read = () =>
    [...box.querySelectorAll(".rule-row")].map((row) => ({
      kind: row.querySelector("select").value,
      value: row.querySelector("input").value,
    }));
  const redraw = () => {
    fill(
      box,
      rules.length
        ? rules.map((rule, index) => {
            const kind = selectBox({ name: `rules.${index}.kind` }, RULE_KINDS, rule.kind);
            const value = h("input", { name: `rules.${index}.value`, value: rule.value, placeholder: RULE_HINTS[rule.kind] });
            kind.addEventListener("change", () => {
              value.placeholder = RULE_HINTS[kind.value];
            });
            return h(
              "fieldset",
              { class: "rule-row" },
              h("legend", {}, `${label} ${index + 1}`),
              field("Kind", kind),
              field("Value", value),
              h(
                "button",
                {
                  type: "button",
                  dataset: { action: "remove-rule" },
                  onclick: () => {
                    rules.splice(0, rules.length, ...read());
                    rules.splice(index, 1);
                    redraw();
                    box.dispatchEvent(new Event("input", { bubbles: true }));
                  },
                },
                `Remove ${label.toLowerCase()} ${index + 1}`,
              ),
            );
          })
        : null,
      h(
        "button",
        {
          type: "button",
          dataset: { action: "add-rule" },
          onclick: () => {
            rules.splice(0, rules.length, ...read());
            rules.push({ kind: "file_exists", value: "" });
            redraw();
            const inputs = box.querySelectorAll(".rule-row input");
            if (inputs.length) inputs[inputs.length - 1].focus();
          },
        },
        `Add ${label.toLowerCase()}`,
      ),
    );
  };
  redraw();
  return { box, read };
}

function detectionStep(w) {
  const s = w.session;
  const editor = rulesEditor(s.detection_rules || [], "Rule");
  return stepForm(
    w,
    "detection-rules",
    4,
    "Detection rules",
    [
      h(
        "p",
        {},
        "How an agent tells the update is already on a computer: any of these rules holds. With no rule, the update installs exactly once on each targeted computer.",
      ),
      editor.box,
    ],
    () => ({ rules: editor.read() }),
  );
}

function prerequisitesStep(w) {
  const s = w.session;
  const editor = rulesEditor(s.prerequisite_rules || [], "Rule");
  const initial = s.prerequisite_package ? "package" : (s.prerequisite_rules || []).length ? "rules" : "none";
  const choice = (value, label) =>
    h("label", { class: "choice" }, h("input", { type: "radio", name: "prerequisite", value, checked: value === initial }), ` ${label}`);
  const packageBox = h("div", { class: "prerequisite-package" });
  let packageInput = h("input", { name: "package", value: s.prerequisite_package || "", placeholder: "update id" });
  fill(packageBox, field("Software package managed here", packageInput, "The update id of a third-party update."));
  api
    .get("/catalog/updates", { origin: "third_party", limit: 1000 })
    .then((found) => {
      const options = [["", "Choose a package…"], ...found.updates.map((update) => [update.update_id, update.title])];
      const chosen = packageInput.value;
      packageInput = selectBox({ name: "package" }, options, chosen);
      fill(packageBox, field("Software package managed here", packageInput, "Another third-party update that must be installed first."));
      sync();
    })
    .catch(() => {});
  const rulesBox = h("div", {}, h("p", { class: "help" }, "Rules that must all hold on the computer."), editor.box);
  const modes = h(
    "fieldset",
    { class: "choices" },
    h("legend", {}, "Software that must already be present"),
    choice("none", "None"),
    choice("package", "A software package already managed here"),
    choice("rules", "Rules (a file, an MSI product code or a registry key)"),
  );
  const mode = () => (modes.querySelector("input:checked") || { value: "none" }).value;
  const sync = () => {
    packageBox.hidden = mode() !== "package";
    rulesBox.hidden = mode() !== "rules";
  };
  modes.addEventListener("change", sync);
  sync();
  const body = () => {
    const chosen = mode();
    return {
      package: chosen === "package" ? packageInput.value.trim() || null : null,
      rules: chosen === "rules" ? editor.read() : [],
    };
  };
  return stepForm(w, "prerequisites", 5, "Prerequisites", [modes, packageBox, rulesBox], body);
}

function commandLineStep(w) {
  const s = w.session;
  const exe = kindOf(s) === "exe";
  const args = h("input", {
    name: "arguments",
    value: s.command_line ?? "",
    placeholder: exe ? "/S or /quiet" : "/qn /norestart",
    autocomplete: "off",
    spellcheck: "false",
  });
  return stepForm(
    w,
    "command-line",
    6,
    "Command-line arguments",
    [
      field(
        "Arguments passed to the installer",
        args,
        exe
          ? "Required for an .exe: its silent switch, e.g. /S or /quiet. An update that cannot install silently cannot be installed by Lockgate."
          : "Passed to Windows Installer, e.g. /qn /norestart; may be left empty.",
      ),
    ],
    () => ({ arguments: args.value }),
  );
}

function returnCodesStep(w) {
  const s = w.session;
  const known = (s.return_codes || []).map((entry) => ({ code: String(entry.code), outcome: entry.outcome, fixed: true }));
  const added = [];
  const box = h("div", { class: "codes-editor" });
  const read = () =>
    [...box.querySelectorAll(".code-row")].map((row) => ({
      code: parseCode(row.querySelector("input").value),
      outcome: row.querySelector("select").value,
    }));
  const keep = () => {
    const values = read();
    values.forEach((value, index) => {
      const row = index < known.length ? known[index] : added[index - known.length];
      row.code = String(value.code);
      row.outcome = value.outcome;
    });
  };
  const redraw = () => {
    const rows = [...known, ...added];
    fill(
      box,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("caption", {}, "Return codes"),
          h("thead", {}, h("tr", {}, h("th", {}, "Code"), h("th", {}, "Means"), h("th", {}, ""))),
          h(
            "tbody",
            {},
            rows.map((row, index) => {
              const code = h("input", {
                name: `codes.${index}.code`,
                value: row.code,
                inputmode: "numeric",
                readonly: row.fixed,
                "aria-label": `Code ${index + 1}`,
                class: "code",
              });
              const outcome = selectBox({ name: `codes.${index}.outcome`, "aria-label": `Meaning of code ${index + 1}` }, OUTCOMES, row.outcome);
              const slot = `code-${index}`;
              code.id = `${slot}-code`;
              outcome.id = `${slot}-outcome`;
              return h(
                "tr",
                { class: "code-row" },
                h("td", {}, code, h("div", { class: "field-error", role: "alert", id: `${code.id}-error` })),
                h("td", {}, outcome, h("div", { class: "field-error", role: "alert", id: `${outcome.id}-error` })),
                h(
                  "td",
                  {},
                  row.fixed
                    ? h("span", { class: "help" }, "in the map")
                    : h(
                        "button",
                        {
                          type: "button",
                          dataset: { action: "remove-code" },
                          onclick: () => {
                            keep();
                            added.splice(index - known.length, 1);
                            redraw();
                          },
                        },
                        "Remove",
                      ),
                ),
              );
            }),
          ),
        ),
      ),
      h(
        "button",
        {
          type: "button",
          dataset: { action: "add-code" },
          onclick: () => {
            keep();
            added.push({ code: "", outcome: "success", fixed: false });
            redraw();
            const inputs = box.querySelectorAll("input.code");
            inputs[inputs.length - 1].focus();
          },
        },
        "Add a return code",
      ),
    );
    box.querySelectorAll("input, select").forEach((control) => control.setAttribute("aria-describedby", `${control.id}-error`));
  };
  redraw();
  return stepForm(
    w,
    "return-codes",
    7,
    "Return codes",
    [
      h(
        "p",
        {},
        "How the installer's exit code is read: by default 0 means success and 3010 success with a restart required; any code not in the map is a failure. Add codes, or change what one means.",
      ),
      box,
    ],
    () => ({ codes: read() }),
  );
}

// --- step 8: summary and commit ---------------------------------------------------------------

function summaryStep(w) {
  const s = w.session;
  const edit = (step) =>
    s.state === "received" && applicable(s, step)
      ? h("button", { type: "button", class: "link-button", dataset: { action: "edit", step }, onclick: () => go(w, step) }, "Change")
      : null;
  const rulesText = (rules, none) =>
    rules && rules.length ? h("ul", {}, rules.map((rule) => h("li", {}, `${rule.kind}: `, h("code", {}, rule.value)))) : none;
  const rows = [
    ["Files", h("ul", {}, s.files.map((file) => h("li", {}, h("code", {}, file.path), ` ${fmtBytes(file.size)}`))), "files"],
    ["Total size", `${fmtBytes(s.total_bytes)} (${fmtNumber(s.total_bytes)} bytes, as uploaded)`, null],
    ["Name", s.title || "–", "description"],
    ["Description", s.description || "–", "description"],
    ["Classification", s.classification || "–", "description"],
    ["Architecture", s.architecture || "not answered", "requirements"],
    ["Operating systems", (s.operating_systems || []).join(", ") || "any", "requirements"],
    ["Free disk space", s.min_free_disk_bytes == null ? "no requirement" : `${fmtNumber(s.min_free_disk_bytes)} bytes (${fmtBytes(s.min_free_disk_bytes)})`, "requirements"],
    ["Memory", s.min_memory_bytes == null ? "no requirement" : `${fmtNumber(s.min_memory_bytes)} bytes (${fmtBytes(s.min_memory_bytes)})`, "requirements"],
    [
      "Detection rules",
      asksDetection(s) ? rulesText(s.detection_rules, "none: installs exactly once per computer") : `not asked: a .${kindOf(s)} detects itself`,
      "detection-rules",
    ],
    [
      "Prerequisites",
      s.prerequisite_package ? h("code", {}, s.prerequisite_package) : rulesText(s.prerequisite_rules, "none"),
      "prerequisites",
    ],
    ["Command line", s.command_line ? h("code", {}, s.command_line) : "–", "command-line"],
    [
      "Return codes",
      h(
        "ul",
        {},
        (s.return_codes || []).map((entry) =>
          h("li", {}, h("code", {}, String(entry.code)), ` ${(OUTCOMES.find(([key]) => key === entry.outcome) || [null, entry.outcome])[1]}`),
        ),
      ),
      "return-codes",
    ],
  ];
  const error = h("div", { id: "upload-error", class: "form-error", role: "alert" });
  const missing = s.missing || [];
  const commit = h(
    "button",
    writeAttrs(w.ctx, {
      type: "button",
      id: "upload-commit",
      class: "primary",
      disabled: s.state !== "received" || missing.length > 0,
      title: missing.length ? `Missing: ${missing.join(", ")}` : null,
      onclick: async () => {
        commit.disabled = true;
        error.replaceChildren();
        try {
          const detail = await api.post(`/uploads/${enc(s.upload_id)}/commit`);
          forget(s.upload_id);
          try {
            w.session = await api.get(`/uploads/${enc(s.upload_id)}`);
          } catch {
            w.session = { ...s, state: "committed", update_id: detail.update.update_id, expires_at: null };
          }
          w.session.update_id = w.session.update_id || detail.update.update_id;
          w.session.title = detail.update.title;
          notice(`Stored ${detail.update.title}`, "ok");
          go(w, "summary");
        } catch (failure) {
          commit.disabled = false;
          fill(error, problemText(failure));
        }
      },
    }),
    "Commit upload",
  );
  const ended = {
    committed: () =>
      h(
        "p",
        { class: "banner info", id: "upload-done" },
        "Stored as the update ",
        s.update_id
          ? h("a", { href: `#/updates/${enc(s.update_id)}`, id: "upload-update-link" }, s.title || s.update_id)
          : s.title || "",
        ". It appears in All updates; approve it like any update.",
      ),
    refused: () => h("p", { class: "error-box" }, `This upload was refused: ${s.refusal || "no reason given"}.`),
    cancelled: () => h("p", { class: "banner" }, "This upload was cancelled: its bytes were dropped."),
    expired: () => h("p", { class: "banner" }, "This upload expired (nobody touched it): its bytes were dropped."),
  }[s.state];
  return h(
    "section",
    { id: "step-summary" },
    h("h2", {}, "8. Summary"),
    ended ? ended() : null,
    missing.length && s.state === "received"
      ? h("p", { class: "banner" }, "Still to answer before committing: ", missing.join(", "), ".")
      : null,
    h(
      "dl",
      { class: "props summary" },
      rows.map(([label, value, step]) => [h("dt", {}, label), h("dd", {}, value, step ? [" ", edit(step)] : null)]),
    ),
    error,
    h(
      "div",
      { class: "wizard-nav" },
      s.state === "received"
        ? h("button", { type: "button", dataset: { action: "back" }, onclick: () => go(w, neighbour(s, "summary", -1)) }, "Back")
        : null,
      s.state === "received" ? commit : null,
      OPEN.includes(s.state) ? null : h("a", { href: "#/upload", class: "button", id: "upload-restart" }, "Start another upload"),
    ),
  );
}

// --- cancel, and the unfinished uploads ---------------------------------------------------------

async function cancel(w, session = w.session) {
  const ok = await confirmDialog(
    "Cancel this upload?",
    "The bytes sent so far are dropped and the space they took is free at once. A cancelled upload cannot be resumed.",
    "Cancel upload",
    { danger: true },
  );
  if (!ok) return;
  const current = w.session && w.session.upload_id === session.upload_id;
  if (current) w.halted = true;
  try {
    const ended = await api.post(`/uploads/${enc(session.upload_id)}/cancel`);
    forget(session.upload_id);
    notice(`Upload ${session.upload_id} cancelled; its space is free.`, "ok");
    if (current) {
      w.session = ended;
      w.busy = false;
      w.step = "summary";
      draw(w);
    } else {
      drawOpen(w);
    }
  } catch (error) {
    if (current) w.halted = false;
    notice(problemText(error), "error");
  }
}

async function drawOpen(w) {
  const section = h("section", { id: "upload-open" }, h("h2", {}, "Unfinished uploads"));
  fill(w.extra, section);
  const kept = remembered();
  let uploads = null;
  try {
    uploads = (await api.get("/uploads", { states: OPEN })).uploads;
  } catch (error) {
    if (!routeMissing(error)) section.appendChild(errorBox(error));
  }
  if (uploads === null && kept) {
    // No list route: at least the upload this browser started.
    try {
      const one = await api.get(`/uploads/${enc(kept)}`);
      uploads = OPEN.includes(one.state) ? [one] : [];
      if (!uploads.length) forget(kept);
    } catch (error) {
      if (error.status === 404) forget(kept);
      uploads = [];
    }
  }
  if (uploads === null) {
    section.remove();
    return;
  }
  if (kept && !uploads.some((upload) => upload.upload_id === kept)) forget(kept);
  section.appendChild(
    table(
      [
        {
          key: "installer",
          label: "Installer",
          render: (u) => [h("code", {}, u.files[0].path), u.files.length > 1 ? ` + ${u.files.length - 1} files` : "", u.upload_id === kept ? [" ", chip("this browser", "")] : null],
        },
        { key: "size", label: "Size", num: true, render: (u) => fmtBytes(u.total_bytes) },
        {
          key: "received",
          label: "Received",
          num: true,
          render: (u) => `${u.total_bytes ? Math.floor((u.received_bytes * 100) / u.total_bytes) : 0} %`,
        },
        { key: "state", label: "State", render: (u) => chip(u.state, stateKind(u.state)) },
        { key: "title", label: "Name", render: (u) => u.title || "–" },
        { key: "created", label: "Started", render: (u) => fmtDate(u.created_at) },
        { key: "expires", label: "Expires", render: (u) => fmtDate(u.expires_at) },
        {
          key: "actions",
          label: "",
          render: (u) => [
            h("a", { href: `#/upload/${enc(u.upload_id)}`, class: "button", dataset: { action: "resume" } }, "Resume"),
            " ",
            h("button", writeAttrs(w.ctx, { type: "button", dataset: { action: "cancel" }, onclick: () => cancel(w, u) }), "Cancel"),
          ],
        },
      ],
      uploads,
      { rowId: (u) => u.upload_id, empty: "No unfinished upload." },
    ),
  );
}
