// The console's HTTP API as the pages call it: the same /api/v1 routes as the CLI, signed in
// by the session cookie (HttpOnly, set by POST /api/v1/session), writes carrying the session's
// CSRF token and an Idempotency-Key so a retried click is applied once.

export const PREFIX = "/api/v1";

/** A refused or failed call: the API's problem document (title, status, detail, field). */
export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.field = problem.field || null;
    this.retryAfter = problem.retryAfter || null;
  }
}

let csrfToken = null;

/** Remember the session's CSRF token (from POST or GET /api/v1/session). */
export function setCsrf(token) {
  csrfToken = token;
}

function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

/** Query string from an object; arrays repeat the key, null/undefined/"" are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => search.append(key, String(item)));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * One API call. `path` is below /api/v1 ("/groups"); `body` is sent as JSON.
 * Resolves to the parsed JSON (or null for 204); rejects with ApiProblem.
 * Writes retry once on 503 (the console said its dependencies are back soon), with the same
 * Idempotency-Key so the service applies them once.
 */
export async function call(method, path, body, { idempotencyKey, signal } = {}) {
  const headers = { Accept: "application/json" };
  const writes = method !== "GET" && method !== "HEAD";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (writes) {
    if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
    headers["Idempotency-Key"] = idempotencyKey || newKey();
  }
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetch(PREFIX + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { title: response.statusText, detail: text.slice(0, 300) };
    }
    if (response.ok) return data;
    if (response.status === 503 && attempt < 2) {
      const wait = Number(response.headers.get("Retry-After") || "2");
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 5) * 1000));
      continue;
    }
    const problem = data || { title: response.statusText };
    problem.retryAfter = response.headers.get("Retry-After");
    const error = new ApiProblem(response.status, problem);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("lockgate:signed-out"));
    throw error;
  }
}

export const get = (path, params, options) => call("GET", path + query(params), undefined, options);
export const post = (path, body, options) => call("POST", path, body ?? {}, options);
export const put = (path, body, options) => call("PUT", path, body ?? {}, options);
export const patch = (path, body, options) => call("PATCH", path, body ?? {}, options);
export const del = (path, params, options) => call("DELETE", path + query(params), undefined, options);

/**
 * Check a form's body as the route would, without sending the command: the same message
 * and field the real call would give (POST /api/v1/validate). Resolves to null when valid,
 * else the ApiProblem. `template` is the route's path template, e.g.
 * "/uploads/{upload_id}/description".
 */
export async function validate(method, template, body, partial = true) {
  try {
    await call("POST", "/validate", { method, path: template, body, partial });
    return null;
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 422) return error;
    throw error;
  }
}

/** The signed-in session (name, role, csrf_token) or null. */
export async function session() {
  try {
    const found = await call("GET", "/session");
    setCsrf(found.csrf_token);
    return found;
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 401) return null;
    throw error;
  }
}

export async function signIn(token) {
  const found = await call("POST", "/session", { token });
  setCsrf(found.csrf_token);
  return found;
}

export async function signOut() {
  try {
    await call("DELETE", "/session");
  } finally {
    setCsrf(null);
  }
}

/** The generated OpenAPI document (ranges, descriptions and defaults of every model). */
let openapi = null;
export async function schema() {
  if (!openapi) openapi = await get("/openapi.json");
  return openapi;
}

/** A named schema from the OpenAPI document's components, its $refs left as they are. */
export async function model(name) {
  const doc = await schema();
  return (doc.components && doc.components.schemas && doc.components.schemas[name]) || null;
}
