// #/catalog: which Microsoft product categories and classifications are offered to computers
// (docs/product.md section 2), importing an MSRC security update document, and the recent
// imports. Third-party updates are always offered; the settings choose among Microsoft's.

import * as api from "../api.js";
import {
  READ_ONLY,
  errorBox,
  field,
  fill,
  fmtDate,
  fmtNumber,
  h,
  heading,
  notice,
  problemText,
  routeMissing,
} from "../ui.js";

const RESULT_FIELDS = [
  ["document_id", "Document"],
  ["updates_in_document", "Updates in the document"],
  ["advisories_in_document", "Advisories (not installable)"],
  ["published", "New to the catalog"],
  ["revised", "Revised (new revision)"],
  ["unchanged", "Unchanged"],
  ["superseded", "Newly superseded"],
  ["supersession_links", "Supersedence links"],
];

const changesText = (row) =>
  `${fmtNumber(row.published)} new, ${fmtNumber(row.revised)} revised, ${fmtNumber(row.unchanged)} unchanged, ` +
  `${fmtNumber(row.superseded)} newly superseded`;

/**
 * Recent imports (ImportRecord rows) as a table; the overview shows it too, `compact`
 * (three columns, for a half-width panel).
 */
export function importsTable(imports, { compact = false } = {}) {
  const columns = compact
    ? [
        ["Imported", (row) => fmtDate(row.imported_at)],
        ["Document", (row) => [h("div", {}, row.title || row.document_id), row.label ? h("div", { class: "help" }, row.label) : null]],
        ["Changes", changesText],
      ]
    : [
    ["Imported", (row) => fmtDate(row.imported_at)],
    [
      "Document",
      (row) => [h("div", {}, row.title || row.document_id), h("div", { class: "help" }, row.document_id)],
    ],
    ["From", (row) => row.label || h("span", { class: "muted" }, "–")],
    ["New", (row) => fmtNumber(row.published), true],
    ["Revised", (row) => fmtNumber(row.revised), true],
    ["Unchanged", (row) => fmtNumber(row.unchanged), true],
    ["Superseded", (row) => fmtNumber(row.superseded), true],
    ["Took", (row) => (row.duration_seconds === undefined ? "–" : `${Number(row.duration_seconds).toFixed(1)} s`), true],
      ];
  return h(
    "div",
    { class: "table-wrap stack" },
    h(
      "table",
      { class: "imports" },
      h("thead", {}, h("tr", {}, columns.map(([label, , num]) => h("th", { class: num ? "num" : "" }, label)))),
      h(
        "tbody",
        {},
        imports.length
          ? imports.map((row) =>
              h(
                "tr",
                { dataset: { importId: row.import_id ?? "" } },
                columns.map(([label, draw, num]) => h("td", { class: num ? "num" : "", "data-label": label }, draw(row))),
              ),
            )
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "No document imported yet.")),
      ),
    ),
  );
}

/** An ImportResult as a definition list. */
function importResult(result) {
  return h(
    "dl",
    { class: "props" },
    RESULT_FIELDS.map(([key, label]) => [
      h("dt", {}, label),
      h("dd", {}, typeof result[key] === "number" ? fmtNumber(result[key]) : String(result[key] ?? "–")),
    ]),
  );
}

function base64(bytes) {
  let text = "";
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + step));
  }
  return btoa(text);
}

async function gzipBase64(file) {
  if (typeof CompressionStream === "undefined") {
    throw new Error("This browser cannot compress (no CompressionStream); use `lockgate catalog import` instead.");
  }
  const packed = await new Response(file.stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
  return base64(new Uint8Array(packed));
}

function checkboxes(legendText, name, available, chosen, disabled) {
  const all = [...available, ...chosen.filter((item) => !available.includes(item))];
  return h(
    "fieldset",
    { class: "choices", dataset: { choices: name } },
    h("legend", {}, legendText),
    all.length
      ? all.map((item) =>
          h(
            "label",
            { class: "choice" },
            h("input", {
              type: "checkbox",
              name,
              value: item,
              checked: chosen.includes(item),
              disabled,
              title: disabled ? READ_ONLY : null,
            }),
            ` ${item}`,
          ),
        )
      : h("p", { class: "muted" }, "None known yet: import a document first."),
  );
}

function settingsForm(view, ctx) {
  const form = h("form", { id: "catalog-settings" });
  const error = h("div", { class: "field-error", role: "alert", id: "settings-error" });
  const draw = (current) => {
    const save = h(
      "button",
      { type: "submit", class: "primary", id: "settings-save", disabled: !ctx.canWrite, title: ctx.canWrite ? null : READ_ONLY },
      "Save settings",
    );
    fill(
      form,
      h(
        "p",
        { class: "help" },
        "A Microsoft update is offered when its classification and at least one of its product " +
          "categories are chosen. Updates not offered stay in the catalog, hidden from the default " +
          "views, and cannot be approved; their approvals are kept. Third-party updates are always offered.",
      ),
      h(
        "div",
        { class: "grid" },
        checkboxes("Product categories", "products", current.available_products || [], current.settings.products, !ctx.canWrite),
        checkboxes(
          "Classifications",
          "classifications",
          current.available_classifications || [],
          current.settings.classifications,
          !ctx.canWrite,
        ),
      ),
      error,
      h("div", { class: "toolbar" }, save),
    );
  };
  draw(view);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
    const body = { products: chosen("products"), classifications: chosen("classifications") };
    const button = form.querySelector("#settings-save");
    button.disabled = true;
    error.textContent = "";
    try {
      const saved = await api.put("/catalog/settings", body);
      draw(saved);
      notice("Catalog settings saved: the updates they move are offered or withdrawn.", "ok");
    } catch (failure) {
      error.textContent = problemText(failure);
      button.disabled = !ctx.canWrite;
    }
  });
  return form;
}

function importForm(ctx, onImported) {
  const input = h("input", {
    type: "file",
    id: "msrc-file",
    accept: ".xml,application/xml,text/xml",
    disabled: !ctx.canWrite,
    title: ctx.canWrite ? null : READ_ONLY,
  });
  const button = h(
    "button",
    { type: "button", id: "msrc-import", class: "primary", disabled: true, title: ctx.canWrite ? null : READ_ONLY },
    "Import",
  );
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  input.addEventListener("change", () => {
    button.disabled = !ctx.canWrite || !input.files.length;
    fill(result);
  });
  button.addEventListener("click", async () => {
    const file = input.files[0];
    if (!file) return;
    button.disabled = true;
    input.disabled = true;
    fill(result, h("p", { class: "muted" }, `Importing ${file.name}…`));
    try {
      const content = await gzipBase64(file);
      const answer = await api.post("/catalog/imports", { source: "msrc", content_gzip_b64: content, label: file.name });
      fill(result, h("h3", {}, `Imported ${file.name}`), importResult(answer));
      notice(`Imported ${answer.document_id}: ${answer.published} new, ${answer.revised} revised.`, "ok");
      onImported();
    } catch (failure) {
      fill(result, errorBox(failure));
    } finally {
      input.disabled = !ctx.canWrite;
      button.disabled = !ctx.canWrite || !input.files.length;
    }
  });
  return h(
    "div",
    {},
    h(
      "p",
      { class: "help" },
      "An MSRC CVRF security update document (XML), e.g. the month's release. Importing the same " +
        "document again changes nothing. The browser compresses it before sending.",
    ),
    field("MSRC document", input),
    h("div", { class: "toolbar" }, button),
    result,
  );
}

export async function render(root, ctx) {
  fill(root, heading("Catalog"), h("p", { class: "muted" }, "Loading…"));
  const settingsPanel = h("section", { class: "panel", id: "settings" }, h("h2", {}, "Offered to computers"));
  const importsPanel = h("section", { class: "panel", id: "recent-imports" }, h("h2", {}, "Recent imports"));
  const listSlot = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  importsPanel.append(listSlot);

  const loadImports = async () => {
    try {
      const data = await api.get("/catalog/imports", { limit: 20 });
      fill(listSlot, importsTable(data.imports || []));
    } catch (error) {
      fill(listSlot, routeMissing(error) ? h("p", { class: "muted" }, "Not available.") : errorBox(error));
    }
  };

  const importPanel = h(
    "section",
    { class: "panel", id: "import" },
    h("h2", {}, "Import an MSRC document"),
    importForm(ctx, loadImports),
  );

  try {
    settingsPanel.append(settingsForm(await api.get("/catalog/settings"), ctx));
  } catch (error) {
    settingsPanel.append(errorBox(error));
  }
  await loadImports();
  fill(root, heading("Catalog"), settingsPanel, importPanel, importsPanel);
  return undefined;
}
