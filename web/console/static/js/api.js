// Calls to the service's API from the page: the session cookie goes along by itself.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `the service answered ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

/** fetch a path and return its JSON (null for 204); throws ApiError for 4xx/5xx. */
export async function api(path, { method = "GET", json, form } = {}) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
export const LIVE = ["created", "queued", "started", "preprocessing", "transcribing", "evaluating"];
export const STATUSES = [...LIVE, ...TERMINAL];

/** The notice line at the top of the page (read out by screen readers). */
export function notify(text) {
  document.getElementById("notice").textContent = text;
}

/** An element with attributes and children, for building rows without innerHTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

export function fillStatuses(select) {
  for (const status of STATUSES) select.append(el("option", { value: status, text: status }));
}

export function when(iso) {
  return new Date(iso).toLocaleString();
}
