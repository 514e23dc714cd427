// The REST API as the console uses it: the token in a header on every call, never a cookie.
//
// The token arrives in the URL's fragment (/#token=...), which the browser never sends to any
// server; it is kept in this tab's sessionStorage (gone when the tab closes) and wiped from the
// address bar at once. Live updates read /api/events with fetch() rather than EventSource,
// because EventSource cannot send a header: putting the token in the event stream's URL would
// write it into logs and history, and a cookie would let any other site open in the browser
// ride on it.

const TOKEN_KEY = "dmemu-token";

export class ApiFailure extends Error {
  constructor(status, field, reason) {
    super(reason);
    this.status = status;
    this.field = field;
    this.reason = reason;
  }
}

export function takeToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const given = fragment.get("token");
  if (given !== null) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { "X-Dmemu-Token": token, ...extra } : { ...extra };
}

// A path's element part: AGENT/ELEMENT ids stay as they are (the slash is part of the route).
export function elementPath(ref) {
  return `/api/elements/${ref.split("/").map(encodeURIComponent).join("/")}`;
}

export function part(text) {
  return encodeURIComponent(String(text));
}

export async function call(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiFailure(0, null, `the server does not answer (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiFailure(response.status, null, `the server answered no JSON (HTTP ${response.status})`);
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiFailure(response.status, error.field ?? null, error.reason || `HTTP ${response.status}`);
  }
  return data;
}

export const get = (path, query) => call("GET", query ? `${path}?${query}` : path);
export const put = (path, body) => call("PUT", path, body);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

// Server-sent events read from a fetch() stream; reconnects after a pause when the stream ends.
// onEvent(type, data) gets each event ("ready" first after every (re)connection, when whatever
// was shown must be read again: changes made while away were not heard); onStatus(text) is
// "live", "connecting" or "refused".
export function listen(onEvent, onStatus) {
  let stopped = false;
  let controller = null;

  async function connect() {
    while (!stopped) {
      onStatus("connecting");
      controller = new AbortController();
      try {
        const response = await fetch("/api/events", { headers: headers(), cache: "no-store", signal: controller.signal });
        if (response.status === 401 || response.status === 403) {
          onStatus("refused");
          return;
        }
        if (response.ok && response.body) {
          await read(response.body.getReader());
        }
      } catch {
        // a dropped connection: try again below
      }
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
    }
  }

  function dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    if (type === "ready") onStatus("live");
    let parsed = null;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    onEvent(type, parsed);
  }

  connect();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
