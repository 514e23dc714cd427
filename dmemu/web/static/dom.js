// Small DOM helpers: the console builds its elements with h() rather than HTML strings, so no
// text from the DMS (names, values, error messages) is ever parsed as markup.

export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "value") node.value = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// Epoch seconds as the engine shows a DateTime: "2026-01-01 00:00:00" (UTC).
export function timeText(epoch) {
  if (epoch === null || epoch === undefined || epoch === "") return "";
  const date = new Date(Number(epoch) * 1000);
  if (Number.isNaN(date.getTime())) return String(epoch);
  return date.toISOString().slice(0, 19).replace("T", " ");
}

export function plural(count, noun) {
  return `${count.toLocaleString("en")} ${noun}${count === 1 ? "" : "s"}`;
}

// A call at most every `wait` ms, the last one always made: live updates come in bursts.
export function throttled(call, wait) {
  let timer = null;
  let pending = false;
  return function run() {
    if (timer !== null) {
      pending = true;
      return;
    }
    call();
    timer = setTimeout(() => {
      timer = null;
      if (pending) {
        pending = false;
        run();
      }
    }, wait);
  };
}

export function debounced(call, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => call(...args), wait);
  };
}

export const SEVERITIES = ["Critical", "Major", "Minor", "Warning"];

export function severityClass(label) {
  return `severity-${String(label || "normal").toLowerCase()}`;
}
