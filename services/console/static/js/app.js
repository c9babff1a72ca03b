// The console's shell: sign-in, the menu, and a hash router that loads one page module at a
// time from ./pages/. Each page module exports `render(root, ctx)` and may return a cleanup
// function (to stop its refresh timer) when the operator leaves the page.
//
// ctx: { params: path segments after the page name, query: URLSearchParams,
//        session: { name, role, csrf_token, expires_at }, canWrite: boolean,
//        navigate(hash), reload() }

import * as api from "./api.js";
import { closeDialogs, errorBox, fill, h, notice, problemText } from "./ui.js";

const PAGES = [
  ["overview", "Overview"],
  ["updates", "All updates"],
  ["upload", "Upload"],
  ["rules", "Rules"],
  ["rollouts", "Rollouts"],
  ["groups", "Groups"],
  ["policies", "Policies"],
  ["computers", "Computers"],
  ["catalog", "Catalog"],
  ["dead-letters", "Dead letters"],
  ["audit", "Audit"],
];
/** Pages reached from another page, by the first path segment. */
const DETAIL_PAGES = { updates: "update", computers: "computer", upload: "upload" };

const state = { session: null, cleanup: null, generation: 0 };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function menu() {
  const nav = document.getElementById("menu");
  const { parts } = parseHash();
  const current = parts[0] || "overview";
  fill(
    nav,
    h(
      "ul",
      {},
      PAGES.map(([page, label]) =>
        h("li", {}, h("a", { href: `#/${page}`, "aria-current": page === current ? "page" : null }, label)),
      ),
    ),
  );
  nav.hidden = false;
  const who = document.getElementById("who");
  const { name, role } = state.session;
  fill(
    who,
    h("span", { class: `role ${role}`, title: role === "viewer" ? "read only" : "can change" }, role),
    h("span", { class: "name" }, name),
    h("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"),
  );
  who.hidden = false;
}

async function signOut() {
  try {
    await api.signOut();
  } catch (error) {
    notice(problemText(error), "error");
  }
  showSignIn();
}

function showSignIn(message) {
  state.session = null;
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  document.getElementById("menu").hidden = true;
  document.getElementById("who").hidden = true;
  const view = document.getElementById("view");
  const token = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
    placeholder: "lg_…",
  });
  const error = h("div", { id: "signin-error", class: "field-error", role: "alert" }, message || "");
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      id: "signin",
      class: "signin",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        try {
          state.session = await api.signIn(token.value.trim());
          token.value = "";
          // Setting the address routes (hashchange); otherwise route here, once.
          if (!location.hash || location.hash === "#/" || location.hash === "#/signin") navigate("#/overview");
          else route();
        } catch (failure) {
          error.textContent = problemText(failure);
          token.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", {}, "Sign in to Lockgate"),
    h(
      "p",
      { class: "help" },
      "Paste an API token. On a development checkout started with ",
      h("code", {}, "make run"),
      ", the admin token is in ",
      h("code", {}, "var/dev-token"),
      "; an admin makes more with ",
      h("code", {}, "lockgate tokens create"),
      ". The browser keeps only a session cookie, never the token.",
    ),
    h("label", { for: "token" }, "API token"),
    token,
    error,
    submit,
  );
  fill(view, form);
  token.focus();
}

async function route() {
  if (!state.session) {
    showSignIn();
    return;
  }
  const { parts, query } = parseHash();
  if (parts.length === 0) {
    location.replace("#/overview");
    return;
  }
  menu();
  const top = parts[0];
  const known = PAGES.some(([page]) => page === top);
  const module = parts.length > 1 && DETAIL_PAGES[top] ? DETAIL_PAGES[top] : top;
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  closeDialogs(); // a dialog belongs to the page that opened it
  const generation = ++state.generation;
  const view = document.getElementById("view");
  view.setAttribute("aria-busy", "true");
  if (!known) {
    fill(view, h("h1", {}, "Not found"), h("p", {}, `There is no page ${top}.`), h("a", { href: "#/overview" }, "Overview"));
    view.removeAttribute("aria-busy");
    return;
  }
  const ctx = {
    params: parts.slice(1),
    query,
    session: state.session,
    canWrite: state.session.role === "admin",
    navigate,
    reload: route,
  };
  try {
    const page = await import(`./pages/${module}.js`);
    // The operator went on to another page while this module loaded: that page owns the view.
    if (generation !== state.generation) return;
    const root = h("div", { class: `page page-${module}` });
    fill(view, root);
    const cleanup = await page.render(root, ctx);
    if (generation !== state.generation) {
      if (typeof cleanup === "function") cleanup();
      return;
    }
    state.cleanup = typeof cleanup === "function" ? cleanup : null;
  } catch (error) {
    if (generation === state.generation) fill(view, h("h1", {}, "This page failed"), errorBox(error));
  } finally {
    if (generation === state.generation) view.removeAttribute("aria-busy");
  }
  if (generation === state.generation) document.title = `${(PAGES.find(([p]) => p === top) || [top, top])[1]} · Lockgate`;
}

window.addEventListener("hashchange", route);
window.addEventListener("lockgate:signed-out", () => {
  if (state.session) showSignIn("Your session ended; sign in again.");
});

async function start() {
  try {
    state.session = await api.session();
  } catch (error) {
    fill(document.getElementById("view"), h("h1", {}, "The console does not answer"), errorBox(error));
    return;
  }
  route();
}

start();
