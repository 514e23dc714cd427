// The system's other views: the alarm console (and the alarm bar along the bottom), tickets,
// automation runs and the simulators' faults and request log.

import { ApiFailure, del, get, post } from "./api.js";
import { SEVERITIES, h, plural, replace, severityClass, throttled, timeText } from "./dom.js";

function valueText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function propertiesText(properties) {
  return Object.entries(properties || {})
    .map(([name, value]) => `${name}: ${value}`)
    .join(", ");
}

function grid(label, headers, rows, empty) {
  return h(
    "div",
    { class: "grid-wrap" },
    h(
      "table",
      { class: "grid", "aria-label": label },
      h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col", text })))),
      h("tbody", {}, rows.length ? rows : h("tr", { class: "empty" }, h("td", { colspan: String(headers.length), text: empty }))),
    ),
  );
}

function cells(values) {
  return values.map((value) => (value instanceof Node ? h("td", {}, value) : h("td", { title: valueText(value), text: valueText(value) })));
}

// -- alarms ----------------------------------------------------------------------------------

export class AlarmConsole {
  constructor(app) {
    this.app = app;
    this.which = "active";
    this.openId = null;
    this.reloadSoon = throttled(() => this.reload(), 250);
    this.tabs = h(
      "div",
      { class: "tabs", role: "tablist", "aria-label": "Alarm lists" },
      [
        ["active", "Active alarms"],
        ["history", "History"],
      ].map(([which, label]) =>
        h("button", {
          role: "tab",
          class: "tab",
          "aria-selected": String(which === this.which),
          text: label,
          dataset: { which },
          onclick: () => this.show(which),
        }),
      ),
    );
    this.element = h("select", { "aria-label": "Alarm element filter" });
    this.severity = h(
      "select",
      { "aria-label": "Alarm severity filter" },
      h("option", { value: "", text: "Any severity" }),
      [...SEVERITIES].reverse().map((label) => h("option", { value: label, text: `${label} and worse` })),
    );
    this.element.addEventListener("change", () => this.reload());
    this.severity.addEventListener("change", () => this.reload());
    this.list = h("div", { class: "alarm-list" });
    this.detail = h("div", { class: "alarm-detail-slot" });
    this.root = h(
      "section",
      { class: "view alarms", "aria-label": "Alarm console" },
      h("h2", { text: "Alarm console" }),
      this.tabs,
      h("div", { class: "toolbar" }, h("label", {}, "Element ", this.element), h("label", {}, "Severity ", this.severity)),
      this.list,
      this.detail,
    );
    this.fillElements();
    this.reload();
  }

  fillElements() {
    const chosen = this.element.value;
    replace(
      this.element,
      h("option", { value: "", text: "All elements" }),
      this.app.elements.map((element) => h("option", { value: element.ref, text: `${element.name} (${element.ref})` })),
    );
    this.element.value = chosen;
  }

  show(which) {
    this.which = which;
    for (const tab of this.tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.which === which));
    this.reload();
  }

  async reload() {
    const query = new URLSearchParams();
    if (this.element.value) query.set("element", this.element.value);
    if (this.severity.value) query.set("severity", this.severity.value);
    let answer;
    try {
      answer = await get(this.which === "active" ? "/api/alarms" : "/api/alarms/history", query.toString());
    } catch (error) {
      replace(this.list, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const alarms = [...answer.alarms].reverse(); // the newest first
    const headers = [this.which === "active" ? "Severity" : "Worst severity", "Element", "Parameter", "Value", this.which === "active" ? "Opened" : "Cleared", "Last change", "Properties"];
    const rows = alarms.map((alarm) => {
      const severity = this.which === "active" ? alarm.severity : alarm.worst_severity;
      const tr = h(
        "tr",
        { class: `alarm ${severityClass(severity)}${alarm.active ? "" : " cleared"}`, tabindex: "0", "aria-label": `${severity} alarm on ${alarm.element_name}: ${alarm.parameter_name}` },
        cells([
          h("span", { class: "badge", text: severity }),
          alarm.element_name,
          alarm.row_key ? `${alarm.parameter_name} [${alarm.row_key}]` : alarm.parameter_name,
          alarm.display,
          timeText(this.which === "active" ? alarm.opened : alarm.cleared),
          timeText(alarm.last_change),
          propertiesText(alarm.properties),
        ]),
      );
      tr.addEventListener("click", () => this.openAlarm(alarm));
      tr.addEventListener("keydown", (event) => event.key === "Enter" && this.openAlarm(alarm));
      return tr;
    });
    replace(
      this.list,
      h("p", { class: "count", role: "status", text: plural(answer.count, this.which === "active" ? "active alarm" : "cleared alarm") }),
      grid(this.which === "active" ? "Active alarms" : "Alarm history", headers, rows, this.which === "active" ? "No active alarm." : "No cleared alarm is kept."),
    );
    const open = alarms.find((alarm) => alarm.id === this.openId);
    if (open) this.openAlarm(open);
  }

  openAlarm(alarm) {
    this.openId = alarm.id;
    const properties = Object.entries(alarm.properties || {});
    replace(
      this.detail,
      h(
        "section",
        { class: `alarm-detail ${severityClass(alarm.active ? alarm.severity : "normal")}`, role: "dialog", "aria-label": `Alarm ${alarm.id}` },
        h("header", {}, h("h3", { text: `Alarm ${alarm.id}: ${alarm.parameter_name} on ${alarm.element_name}` }), h("button", { type: "button", class: "close", "aria-label": "Close alarm", text: "×", onclick: () => this.closeAlarm() })),
        h(
          "dl",
          { class: "facts" },
          [
            ["Severity", alarm.severity],
            ["Worst severity", alarm.worst_severity],
            ["Element", `${alarm.element_name} (${alarm.element})`],
            ["Parameter", `${alarm.parameter_name} (${alarm.parameter_id})${alarm.row_key ? `, row ${alarm.row_key}` : ""}`],
            ["Value", alarm.display],
            ["Opened", timeText(alarm.opened)],
            ["Cleared", timeText(alarm.cleared) || "active"],
          ].map(([name, value]) => h("div", {}, h("dt", { text: name }), h("dd", { text: value }))),
        ),
        h("h4", { text: "Properties" }),
        properties.length
          ? h("dl", { class: "facts", "aria-label": "Alarm properties" }, properties.map(([name, value]) => h("div", {}, h("dt", { text: name }), h("dd", { text: value }))))
          : h("p", { class: "muted", text: "No properties." }),
        h("h4", { text: "Records" }),
        grid(
          "Alarm records",
          ["Time", "Severity", "Value", "Reason"],
          alarm.records.map((record) => h("tr", { class: severityClass(record.severity) }, cells([timeText(record.time), record.severity, record.display, record.reason]))),
          "No records.",
        ),
      ),
    );
  }

  closeAlarm() {
    this.openId = null;
    this.detail.replaceChildren();
  }

  onEvent(type) {
    if (type === "alarm" || type === "ready") this.reloadSoon();
    if (type === "element") this.fillElements();
  }
}

// The bar along the bottom: the active alarms, the newest first, their count per severity.
export class AlarmBar {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.reloadSoon = throttled(() => this.reload(), 250);
    this.reload();
  }

  async reload() {
    let answer;
    try {
      answer = await get("/api/alarms");
    } catch {
      return;
    }
    const counts = Object.fromEntries(SEVERITIES.map((label) => [label, 0]));
    for (const alarm of answer.alarms) counts[alarm.severity] = (counts[alarm.severity] || 0) + 1;
    const newest = [...answer.alarms].reverse();
    replace(
      this.root,
      h(
        "div",
        { class: "alarm-bar-head" },
        h("button", { type: "button", class: "link", text: "Alarm console", onclick: () => this.app.showView("alarms") }),
        h(
          "span",
          { class: "alarm-counts", role: "status", "aria-label": "Active alarm counts" },
          SEVERITIES.map((label) => h("span", { class: `chip ${severityClass(label)}${counts[label] ? "" : " zero"}`, title: label, text: `${label} ${counts[label]}` })),
        ),
      ),
      h(
        "ul",
        { class: "alarm-bar-list", "aria-label": "Active alarms" },
        newest.length
          ? newest.map((alarm) =>
              h(
                "li",
                { class: severityClass(alarm.severity) },
                h("span", { class: "badge", text: alarm.severity }),
                h("span", { class: "time", text: timeText(alarm.last_change) }),
                h("button", { type: "button", class: "link", text: alarm.element_name, onclick: () => this.app.openElement(alarm.element) }),
                h("span", { text: alarm.row_key ? `${alarm.parameter_name} [${alarm.row_key}]` : alarm.parameter_name }),
                h("span", { class: "value", text: alarm.display }),
                Object.keys(alarm.properties).length ? h("span", { class: "muted", text: propertiesText(alarm.properties) }) : null,
              ),
            )
          : h("li", { class: "muted", text: "No active alarm." }),
      ),
    );
  }

  onEvent(type) {
    if (type === "alarm" || type === "ready") this.reloadSoon();
  }
}

// -- tickets -----------------------------------------------------------------------------------

export class TicketsView {
  constructor(app) {
    this.app = app;
    this.reloadSoon = throttled(() => this.reload(), 250);
    this.list = h("div", {});
    this.root = h("section", { class: "view tickets", "aria-label": "Tickets" }, h("h2", { text: "Tickets" }), this.list);
    this.reload();
  }

  async reload() {
    let answer;
    try {
      answer = await get("/api/tickets");
    } catch (error) {
      replace(this.list, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const names = new Map(this.app.elements.map((element) => [element.ref, element.name]));
    const rows = [...answer.tickets].reverse().map((ticket) =>
      h(
        "tr",
        { class: `ticket state-${ticket.state.toLowerCase().replace(/\s+/g, "-")}` },
        cells([
          ticket.id,
          ticket.type,
          h("span", { class: "badge", text: ticket.state }),
          propertiesText(ticket.fields),
          ticket.elements.map((ids) => names.get(ids.join("/")) || ids.join("/")).join(", "),
          ticket.alarms.join(", "),
          timeText(ticket.created),
          timeText(ticket.updated),
        ]),
      ),
    );
    replace(
      this.list,
      h("p", { class: "count", role: "status", text: plural(answer.count, "ticket") }),
      grid("Tickets", ["ID", "Type", "State", "Fields", "Elements", "Alarms", "Created", "Updated"], rows, "No tickets."),
    );
  }

  onEvent(type) {
    if (type === "ticket" || type === "ready") this.reloadSoon();
  }
}

// -- automation --------------------------------------------------------------------------------

// What a person typed as a script's input: JSON when it reads as JSON, else the text itself.
function scriptInput(text) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class AutomationView {
  constructor(app) {
    this.app = app;
    this.scripts = h("div", { class: "scripts" });
    this.runs = h("div", {});
    this.root = h(
      "section",
      { class: "view automation", "aria-label": "Automation" },
      h("h2", { text: "Automation" }),
      h("h3", { text: "Scripts" }),
      this.scripts,
      h("h3", { text: "Runs" }),
      this.runs,
    );
    this.loadScripts();
    this.reload();
    // Runs tell no one when they end: while this view is shown, it looks every two seconds.
    this.timer = setInterval(() => this.reload(), 2000);
  }

  async loadScripts() {
    let answer;
    try {
      answer = await get("/api/automation/scripts");
    } catch (error) {
      replace(this.scripts, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    if (!answer.scripts.length) {
      replace(this.scripts, h("p", { class: "muted", text: "No script is registered." }));
      return;
    }
    replace(
      this.scripts,
      answer.scripts.map((name) => {
        const input = h("input", { type: "text", "aria-label": `Input for ${name}`, placeholder: 'input (JSON, e.g. {"port": 3}) or text', spellcheck: "false" });
        const message = h("span", { class: "field-error", role: "alert" });
        const form = h("form", { class: "script", "aria-label": `Script ${name}` }, h("strong", { text: name }), input, h("button", { type: "submit", text: "Run", "aria-label": `Run ${name}` }), message);
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          const value = scriptInput(input.value);
          try {
            const run = await post(`/api/automation/scripts/${encodeURIComponent(name)}/runs`, value === undefined ? undefined : { input: value });
            message.className = run.state === "failed" ? "field-error" : "field-note";
            message.textContent = `run ${run.id}: ${run.state}${run.error ? ` (${run.error})` : ""}`;
          } catch (error) {
            if (!(error instanceof ApiFailure)) throw error;
            message.className = "field-error";
            message.textContent = error.reason;
          }
          this.reload();
        });
        return form;
      }),
    );
  }

  async reload() {
    let answer;
    try {
      answer = await get("/api/automation/runs");
    } catch (error) {
      replace(this.runs, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const rows = [...answer.runs].reverse().map((run) =>
      h(
        "tr",
        { class: `run state-${run.state}` },
        cells([
          run.id,
          run.script,
          h("span", { class: "badge", text: run.state }),
          run.input,
          run.result,
          run.error,
          timeText(run.started),
          timeText(run.finished),
          run.logs.length
            ? h("details", {}, h("summary", { text: plural(run.logs.length, "log line") }), h("pre", { text: run.logs.map((entry) => `${timeText(entry.time)} ${entry.type}: ${entry.message}`).join("\n") }))
            : "",
        ]),
      ),
    );
    replace(
      this.runs,
      h("p", { class: "count", role: "status", text: plural(answer.count, "run") }),
      grid("Script runs", ["Run", "Script", "State", "Input", "Result", "Error", "Started", "Finished", "Log"], rows, "No script has run."),
    );
  }

  onEvent() {}

  close() {
    clearInterval(this.timer);
  }
}

// -- simulators --------------------------------------------------------------------------------

// The APIs listed are those the served simulators take (/api/simulators "apis"), "*" for every one.
function apiOptions(select, apis, everyText) {
  if (select.options.length === apis.length + 1) return; // filled already: keep what is chosen
  const chosen = select.value;
  replace(select, ...["*", ...apis].map((api) => h("option", { value: api === "*" ? select.dataset.every : api, text: api === "*" ? everyText : api })));
  select.value = chosen;
}
const FAULT_KINDS = ["status", "latency", "malformed", "truncated", "drop", "lost", "rate_limit"];

export class SimulatorsView {
  constructor(app) {
    this.app = app;
    this.summary = h("p", { class: "muted" });
    this.faults = h("div", {});
    this.requests = h("div", {});
    this.api = h("select", { "aria-label": "Request log API", dataset: { every: "" } }, h("option", { value: "", text: "every API" }));
    this.api.addEventListener("change", () => this.reloadRequests());
    this.root = h(
      "section",
      { class: "view simulators", "aria-label": "Simulators" },
      h("h2", { text: "Simulators" }),
      this.summary,
      h("h3", { text: "Faults" }),
      this.faultForm(),
      this.faults,
      h("h3", { text: "Request log" }),
      h(
        "div",
        { class: "toolbar" },
        h("label", {}, "API ", this.api),
        h("button", { type: "button", text: "Clear request log", onclick: async () => { await del("/api/simulators/requests"); this.reloadRequests(); } }),
      ),
      this.requests,
    );
    this.reload();
    // The simulators tell no one of their requests: while this view is shown, it looks every two seconds.
    this.timer = setInterval(() => this.reloadRequests(), 2000);
  }

  faultForm() {
    const api = h("select", { name: "api", "aria-label": "Fault API", dataset: { every: "*" } }, h("option", { value: "*", text: "* (every API)" }));
    this.faultApi = api;
    const kind = h("select", { name: "kind", "aria-label": "Fault kind" }, FAULT_KINDS.map((value) => h("option", { value, text: value })));
    const status = h("input", { type: "text", name: "status", "aria-label": "Fault status", value: "503", inputmode: "numeric", size: "4" });
    const latency = h("input", { type: "text", name: "latency", "aria-label": "Fault latency (s)", value: "0", inputmode: "decimal", size: "4" });
    const probability = h("input", { type: "text", name: "probability", "aria-label": "Fault probability", value: "1", inputmode: "decimal", size: "4" });
    const message = h("span", { class: "field-error", role: "alert" });
    const form = h(
      "form",
      { class: "fault-form", "aria-label": "Add a fault" },
      h("label", {}, "API ", api),
      h("label", {}, "Kind ", kind),
      h("label", {}, "Status ", status),
      h("label", {}, "Latency (s) ", latency),
      h("label", {}, "Probability ", probability),
      h("button", { type: "submit", text: "Add fault" }),
      h("button", { type: "button", text: "Clear faults", onclick: async () => { await del("/api/simulators/faults"); this.reload(); } }),
      message,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const number = (text) => (/^\s*[-+]?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : text);
      const fault = { api: api.value, kind: kind.value, status: number(status.value) };
      if (latency.value.trim() && Number(latency.value) !== 0) fault.latency = number(latency.value);
      if (probability.value.trim() && Number(probability.value) !== 1) fault.probability = number(probability.value);
      try {
        await post("/api/simulators/faults", fault);
        message.textContent = "";
      } catch (error) {
        if (!(error instanceof ApiFailure)) throw error;
        message.textContent = error.reason;
      }
      this.reload();
    });
    return form;
  }

  async reload() {
    let summary;
    let faults;
    try {
      [summary, faults] = await Promise.all([get("/api/simulators"), get("/api/simulators/faults")]);
    } catch (error) {
      replace(this.faults, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    this.summary.textContent = `Serving on ${summary.base_url}; ${plural(summary.requests, "request")} logged.`;
    apiOptions(this.faultApi, summary.apis, "* (every API)");
    apiOptions(this.api, summary.apis, "every API");
    const rows = faults.faults.map((fault) => {
      const { api, kind, status, ...rest } = fault;
      const more = Object.entries(rest)
        .filter(([name, value]) => value !== null && value !== undefined && !(name === "latency" && value === 0) && !(name === "probability" && value === 1))
        .map(([name, value]) => `${name} ${valueText(value)}`)
        .join(", ");
      return h("tr", { class: "fault" }, cells([api, kind, status, more]));
    });
    replace(this.faults, h("p", { class: "count", role: "status", "aria-label": "Fault count", text: plural(faults.faults.length, "fault") }), grid("Faults", ["API", "Kind", "Status", "Details"], rows, "No fault: every request is answered."));
    this.reloadRequests();
  }

  async reloadRequests() {
    const query = new URLSearchParams({ limit: "100" });
    if (this.api.value) query.set("api", this.api.value);
    let answer;
    try {
      answer = await get("/api/simulators/requests", query.toString());
    } catch (error) {
      replace(this.requests, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const rows = answer.requests.map((record) =>
      h(
        "tr",
        { class: record.status >= 400 || record.status === 0 ? "failed" : null },
        cells([record.number, timeText(record.time), record.api, record.method, record.path, record.status || "dropped", record.fault || ""]),
      ),
    );
    replace(
      this.requests,
      h("p", { class: "count", role: "status", text: `${plural(answer.count, "request")}${answer.count > answer.requests.length ? `, the newest ${answer.requests.length} shown` : ""}` }),
      grid("Request log", ["#", "Time", "API", "Method", "Path", "Status", "Fault"], rows, "No request yet."),
    );
  }

  onEvent() {}

  close() {
    clearInterval(this.timer);
  }
}
