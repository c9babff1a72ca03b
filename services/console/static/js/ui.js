// Small DOM helpers every page uses. Text always goes in as text nodes (never innerHTML), so
// names and titles from the catalog or agents cannot inject markup.

import { ApiProblem } from "./api.js";

/**
 * Make an element: h("button", { class: "primary", onclick: fn, disabled: true }, "Save").
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` (listener), booleans set or
 * removed, anything else as an attribute. Children: nodes, strings, numbers, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) element.setAttribute(name, "");
    else if (name === "value" && "value" in element) element.value = value;
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A page heading with optional actions on the right. */
export function heading(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

/** What an error says to an operator: the API's detail, naming the field when it has one. */
export function problemText(error) {
  if (error instanceof ApiProblem) {
    const field = error.field ? ` (${error.field})` : "";
    return `${error.title || "Error"}${field}: ${error.detail || error.message}`;
  }
  return error && error.message ? error.message : String(error);
}

let noticeTimer = null;
/** A message in the page's live region: kind "ok", "error" or "info". */
export function notice(message, kind = "info") {
  const region = document.getElementById("notice");
  if (!region) return;
  fill(region, h("div", { class: `notice ${kind}` }, message));
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(() => region.replaceChildren(), 6000);
}

/** An inline error block (role=alert) for a failed call, or nothing. */
export function errorBox(error) {
  return h("div", { class: "error-box", role: "alert" }, problemText(error));
}

export function fmtNumber(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en");
}

export function fmtDate(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}

export function fmtAgo(value) {
  if (!value) return "never";
  const seconds = (Date.now() - new Date(value).getTime()) / 1000;
  if (seconds < 90) return "just now";
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A link to a page of the console: link("#/updates/KB123", "KB123"). */
export function link(href, text, attrs = {}) {
  return h("a", { href, ...attrs }, text);
}

/** A status chip: chip("failed", "bad"). */
export function chip(text, kind = "") {
  return h("span", { class: `chip ${kind}` }, text);
}

/**
 * A table. columns: [{ key, label, render(row) -> node|string, sort: "api sort key", num }].
 * Options: select (Set of ids, with rowId(row)) adds checkboxes; sort {key, descending} and
 * onSort(key) make sortable headers (buttons, so the keyboard reaches them); empty: text.
 */
export function table(columns, rows, options = {}) {
  const { select, rowId, onSelect, sort, onSort, empty = "Nothing to show.", caption } = options;
  const head = h(
    "tr",
    {},
    select
      ? h(
          "th",
          { class: "check" },
          h("input", {
            type: "checkbox",
            "aria-label": "Select all on this page",
            checked: rows.length > 0 && rows.every((row) => select.has(rowId(row))),
            onchange: (event) => {
              rows.forEach((row) =>
                event.target.checked ? select.add(rowId(row)) : select.delete(rowId(row)),
              );
              if (onSelect) onSelect();
            },
          }),
        )
      : null,
    columns.map((column) => {
      if (column.sort && onSort) {
        const active = sort && sort.key === column.sort;
        const arrow = active ? (sort.descending ? " ▼" : " ▲") : "";
        return h(
          "th",
          {
            class: column.num ? "num" : "",
            "aria-sort": active ? (sort.descending ? "descending" : "ascending") : "none",
          },
          h("button", { class: "sort", type: "button", onclick: () => onSort(column.sort) }, column.label + arrow),
        );
      }
      return h("th", { class: column.num ? "num" : "" }, column.label);
    }),
  );
  const body = rows.length
    ? rows.map((row) =>
        h(
          "tr",
          { dataset: rowId ? { id: rowId(row) } : {} },
          select
            ? h(
                "td",
                { class: "check" },
                h("input", {
                  type: "checkbox",
                  "aria-label": `Select ${rowId(row)}`,
                  checked: select.has(rowId(row)),
                  onchange: (event) => {
                    if (event.target.checked) select.add(rowId(row));
                    else select.delete(rowId(row));
                    if (onSelect) onSelect();
                  },
                }),
              )
            : null,
          columns.map((column) =>
            h("td", { class: column.num ? "num" : "", "data-label": column.label }, column.render ? column.render(row) : row[column.key]),
          ),
        ),
      )
    : [h("tr", {}, h("td", { colspan: columns.length + (select ? 1 : 0), class: "empty" }, empty))];
  return h("div", { class: "table-wrap stack" }, h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)));
}

/** Paging by offset: "1–100 of 2,345" with previous/next buttons. */
export function pager(offset, limit, total, onPage) {
  const last = Math.min(offset + limit, total);
  return h(
    "div",
    { class: "pager" },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Previous"),
    h("span", {}, total ? `${fmtNumber(offset + 1)}–${fmtNumber(last)} of ${fmtNumber(total)}` : "none"),
    h("button", { type: "button", disabled: last >= total, onclick: () => onPage(offset + limit) }, "Next ›"),
  );
}

/**
 * A modal dialog (<dialog>, so Escape closes it and focus stays inside). Returns
 * { element, close }. `body` is a node; actions: [{ label, kind, onclick(close) }].
 */
export function dialog(title, body, actions = [], { wide = false } = {}) {
  const element = h("dialog", { class: wide ? "wide" : "", "aria-label": title });
  const close = () => {
    element.close();
    element.remove();
  };
  element.addEventListener("close", () => element.remove());
  fill(
    element,
    h("h2", {}, title),
    h("div", { class: "dialog-body" }, body),
    h(
      "div",
      { class: "dialog-actions" },
      actions.map((action) =>
        h(
          "button",
          {
            type: "button",
            class: action.kind || "",
            disabled: action.disabled,
            dataset: action.id ? { action: action.id } : {},
            onclick: () => action.onclick(close),
          },
          action.label,
        ),
      ),
      h("button", { type: "button", onclick: close }, "Close"),
    ),
  );
  document.body.appendChild(element);
  element.showModal();
  return { element, close };
}

/** A labelled form field: field("Title", input, "help text") with an error slot. */
export function field(label, input, help = "") {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const error = h("div", { class: "field-error", role: "alert", id: `${id}-error` });
  input.setAttribute("aria-describedby", `${id}-error`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    help ? h("div", { class: "help" }, help) : null,
    error,
  );
}

/** Show (or clear, with null) the error under a field made by field(). */
export function setFieldError(input, message) {
  const slot = document.getElementById(`${input.id}-error`);
  if (slot) slot.textContent = message || "";
  input.setAttribute("aria-invalid", message ? "true" : "false");
}

/** Run `task` now and every `ms` until the returned stop() (pages return it for cleanup). */
export function every(ms, task) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await task();
    } catch (error) {
      console.warn("refresh failed", error);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const COUNT_LABELS = [
  ["installed", "Installed", "good"],
  ["needed", "Needed", "warn"],
  ["failed", "Failed", "bad"],
  ["installed_pending_restart", "Pending restart", "warn"],
  ["not_applicable", "Not applicable", ""],
  ["no_status", "No status", "muted"],
  ["not_reporting", "Not reporting", "bad"],
];

/** The seven compliance counts as cards (each with data-count="<state>" for tests). */
export function countCards(counts) {
  return h(
    "div",
    { class: "cards" },
    COUNT_LABELS.map(([key, label, kind]) =>
      h(
        "div",
        { class: `card ${kind}`, dataset: { count: key } },
        h("div", { class: "card-value" }, fmtNumber(counts ? counts[key] : 0)),
        h("div", { class: "card-label" }, label),
      ),
    ),
  );
}

/**
 * A small line chart of series over time, drawn as SVG (no library).
 * points: [{ at, values: { key: number } }]; series: [[key, label, cssClass]].
 */
export function lineChart(points, series, { height = 180, title = "" } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 640;
  const pad = { left: 44, right: 10, top: 10, bottom: 24 };
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title || "chart");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  if (points.length === 0) {
    add("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "No history yet");
    return svg;
  }
  const times = points.map((point) => new Date(point.at).getTime());
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  let top = 1;
  for (const point of points) for (const [key] of series) top = Math.max(top, point.values[key] || 0);
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  add("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), class: "axis" });
  add("text", { x: pad.left - 6, y: y(top) + 4, "text-anchor": "end", class: "tick" }, fmtNumber(top));
  add("text", { x: pad.left - 6, y: y(0) + 4, "text-anchor": "end", class: "tick" }, "0");
  add("text", { x: pad.left, y: height - 6, class: "tick" }, fmtDate(points[0].at));
  add("text", { x: width - pad.right, y: height - 6, "text-anchor": "end", class: "tick" }, fmtDate(points[points.length - 1].at));
  for (const [key, label, css] of series) {
    if (points.length === 1) {
      // One sample so far: a dot per series (a path of one point draws nothing).
      const dot = add("circle", { cx: x(times[0]), cy: y(points[0].values[key] || 0), r: 4, class: `dot ${css}` });
      const hint = document.createElementNS(ns, "title");
      hint.textContent = `${label}: ${fmtNumber(points[0].values[key] || 0)}`;
      dot.appendChild(hint);
      continue;
    }
    const path = points.map((point, i) => `${i ? "L" : "M"}${x(times[i]).toFixed(1)},${y(point.values[key] || 0).toFixed(1)}`).join(" ");
    const line = add("path", { d: path, class: `series ${css}` });
    const hint = document.createElementNS(ns, "title");
    hint.textContent = label;
    line.appendChild(hint);
  }
  return svg;
}

/** The legend for lineChart's series. */
export function legend(series) {
  return h("ul", { class: "legend" }, series.map(([, label, css]) => h("li", { class: css }, label)));
}

// --- Added for the overview, updates, update and catalog pages (shared with any page) ---

/** A card like countCards' (data-count="<key>"); with href the value is a link. */
export function card(key, label, value, kind = "", href = null) {
  const shown = fmtNumber(value);
  return h(
    "div",
    { class: `card ${kind}`, dataset: { count: key } },
    h("div", { class: "card-value" }, href ? h("a", { href }, shown) : shown),
    h("div", { class: "card-label" }, label),
  );
}

/**
 * Update the values of cards made by countCards/card in place (focus and the rest of the
 * page stay as they are): values is { key: number }; keys without a card are ignored.
 */
export function setCounts(container, values) {
  for (const [key, value] of Object.entries(values || {})) {
    const slot = container.querySelector(`[data-count="${CSS.escape(key)}"] .card-value`);
    if (!slot) continue;
    const target = slot.querySelector("a") || slot;
    const shown = fmtNumber(value);
    if (target.textContent !== shown) target.textContent = shown;
  }
}

/** fn delayed until `ms` after the last call (search boxes). */
export function debounce(fn, ms = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Put a page's state in the address without reloading it (history.replaceState fires no
 * hashchange): reload and Back from a detail page then find the same view.
 * replaceHash("#/updates", { filter: "new", offset: 0 }) leaves out null/""/undefined.
 */
export function replaceHash(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  const hash = text ? `${path}?${text}` : path;
  if (location.hash !== hash) history.replaceState(history.state, "", hash);
}

/** True when a GET route is not served (yet): 404 or 405 from the console itself. */
export function routeMissing(error) {
  return error instanceof ApiProblem && (error.status === 404 || error.status === 405);
}

/**
 * Ask before a change: resolves true when the operator confirms. `body` is a node or text;
 * `danger` paints the confirming button red.
 */
export function confirmDialog(title, body, confirmLabel, { danger = false } = {}) {
  return new Promise((resolve) => {
    let answered = false;
    const { element } = dialog(title, typeof body === "string" ? h("p", {}, body) : body, [
      {
        label: confirmLabel,
        kind: danger ? "danger" : "primary",
        id: "confirm",
        onclick: (close) => {
          answered = true;
          resolve(true);
          close();
        },
      },
    ]);
    element.addEventListener("close", () => {
      if (!answered) resolve(false);
    });
  });
}

/** The title to put on a write control a viewer cannot use. */
export const READ_ONLY = "Read only: your token is a viewer";

// --- Added for the upload, rules, groups, policies, computers, computer, audit and dead-letters
// pages (shared with any page) ---

/**
 * A <select>: options are values or [value, label] pairs; `value` is chosen once they are in
 * (h() would set it before the options exist).
 */
export function selectBox(attrs, options, value) {
  const element = h(
    "select",
    attrs,
    options.map((option) => {
      const [optionValue, label] = Array.isArray(option) ? option : [option, option];
      return h("option", { value: optionValue }, label);
    }),
  );
  if (value !== undefined && value !== null) element.value = String(value);
  return element;
}

/** Attributes of a write control: for a viewer it is disabled, titled READ_ONLY. */
export function writeAttrs(ctx, attrs = {}) {
  return ctx.canWrite ? attrs : { ...attrs, disabled: true, title: READ_ONLY };
}

/** An API problem's field as an input name: "body.rules[0].value" -> "rules.0.value". */
export function fieldName(field) {
  if (!field) return null;
  return String(field)
    .replace(/\[(\d+)\]/g, ".$1")
    .replace(/^(body|query|path)\./, "");
}

/**
 * Show an API problem under the input of `form` its field names (name="<field>", dotted for
 * nested fields; then without a wrapper's first segment, "rule.name" -> "name", then the
 * nearest enclosing field, "classifications.0" -> "classifications"), else in `fallback`.
 * Returns the input it went under, or null.
 */
export function showProblem(form, error, fallback) {
  const key = error && error.field ? fieldName(error.field) : null;
  let input = null;
  if (key) {
    const parts = key.split(".");
    const names = [];
    for (const start of [0, 1]) {
      for (let end = parts.length; end > start; end -= 1) names.push(parts.slice(start, end).join("."));
    }
    for (const name of names) {
      input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) break;
    }
  }
  if (input) {
    setFieldError(input, error.detail || problemText(error));
    if (fallback) fallback.replaceChildren();
  } else if (fallback) {
    fill(fallback, problemText(error));
  }
  return input;
}

/** Clear the errors showProblem put in a form (and its fallback slot). */
export function clearErrors(form, fallback) {
  form.querySelectorAll('[aria-invalid="true"]').forEach((input) => setFieldError(input, null));
  if (fallback) fallback.replaceChildren();
}

/**
 * Check a form as it is typed (debounced): `check()` resolves to an API problem or null
 * (api.validate(...)); the problem goes under its field. Only what this check showed is
 * cleared by its next answer, and a field the operator changes loses its error: a refusal
 * the form's submit showed stays until then. Submitting cancels a check still pending (its
 * answer would come after the submit's). Stops asking when the console has no validation
 * route (404/405): the real call still checks.
 */
export function liveValidate(form, check, { fallback = null, ms = 300 } = {}) {
  let latest = 0;
  let timer = null;
  let off = false;
  let marked = null;
  let markedFallback = false;
  const forget = () => {
    if (marked) setFieldError(marked, null);
    if (markedFallback && fallback) fallback.replaceChildren();
    marked = null;
    markedFallback = false;
  };
  const run = async () => {
    if (off) return;
    const mine = ++latest;
    let problem = null;
    try {
      problem = await check();
    } catch (error) {
      if (routeMissing(error)) off = true;
      return;
    }
    if (mine !== latest) return;
    forget();
    if (problem) {
      marked = showProblem(form, problem, fallback);
      markedFallback = !marked && Boolean(fallback);
    }
  };
  const schedule = (event) => {
    const changed = event && event.target;
    if (changed instanceof Element && changed.getAttribute("aria-invalid") === "true") setFieldError(changed, null);
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  form.addEventListener(
    "submit",
    () => {
      clearTimeout(timer);
      latest += 1;
      marked = null;
      markedFallback = false;
    },
    true,
  );
  return schedule;
}

/** Close every open dialog (a page's cleanup: a dialog left open would cover the next page). */
export function closeDialogs() {
  document.querySelectorAll("dialog[open]").forEach((element) => element.close());
}
