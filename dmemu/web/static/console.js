// The console's frame: the DMS tree on the left, the open element card or a system view on the
// right, the alarm bar along the bottom, and one live event stream feeding whatever is shown.

import { ApiFailure, get, keepToken, listen, takeToken } from "./api.js";
import { debounced, h, plural, replace, throttled, timeText } from "./dom.js";
import { ElementCard } from "./element.js";
import { AlarmBar, AlarmConsole, AutomationView, SimulatorsView, TicketsView } from "./views.js";

const VIEWS = { alarms: AlarmConsole, tickets: TicketsView, automation: AutomationView, simulators: SimulatorsView };

class Console {
  constructor() {
    this.elements = [];
    this.shown = []; // the elements the search box lets through
    this.view = null; // what the main pane shows: an ElementCard or one of VIEWS
    this.selected = null; // the open element's ref
    this.main = document.getElementById("main");
    this.tree = document.getElementById("tree");
    this.search = document.getElementById("search");
    this.search.addEventListener("input", debounced(() => this.loadElements(), 150));
    for (const button of document.querySelectorAll(".views button")) {
      button.addEventListener("click", () => this.showView(button.dataset.view));
    }
    this.reloadElements = throttled(() => this.loadElements(), 300);
    // The clock tells no one its time: the top bar reads it again when anything happens (a
    // virtual clock moves only then), at most once a second, and every few seconds anyway.
    this.refreshSystemSoon = throttled(() => this.refreshSystem(), 1000);
  }

  async start() {
    let system;
    try {
      system = await get("/api/system");
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) return askToken(error.reason);
      replace(this.main, h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    this.system = system;
    this.showSystem();
    document.querySelector('[data-view="simulators"]').hidden = !system.simulators;
    await this.loadElements();
    this.alarmBar = new AlarmBar(this, document.getElementById("alarm-bar"));
    const live = document.getElementById("live");
    listen(
      (type, data) => this.onEvent(type, data),
      (status) => {
        live.textContent = { live: "live", connecting: "connecting…", refused: "token refused" }[status];
        live.className = `live live-${status}`;
      },
    );
    setInterval(() => this.refreshSystem(), 5000);
    if (!this.view) this.showView("elements"); // unless a person was quicker

  }

  async refreshSystem() {
    try {
      this.system = await get("/api/system");
      this.showSystem();
    } catch {
      // the live indicator says when the server is gone
    }
  }

  showSystem() {
    const system = this.system;
    replace(
      document.getElementById("system"),
      h("span", { text: `${plural(system.element_count, "element")} on ${plural(system.agents.length, "agent")}` }),
      h("span", { class: "clock", title: `${system.clock} clock`, text: `${timeText(system.now)} UTC${system.clock === "virtual" ? " (virtual)" : ""}` }),
    );
  }

  async loadElements() {
    const query = this.search.value.trim() ? new URLSearchParams({ search: this.search.value.trim() }).toString() : undefined;
    let all;
    let shown;
    try {
      [all, shown] = await Promise.all([get("/api/elements"), query ? get("/api/elements", query) : null]);
    } catch {
      return;
    }
    this.elements = all.elements;
    this.shown = shown ? shown.elements : all.elements;
    this.renderTree();
  }

  renderTree() {
    const agents = [...new Set(this.elements.map((element) => element.agent_id))].sort((a, b) => a - b);
    const groups = agents.map((agent) => {
      const mine = this.shown.filter((element) => element.agent_id === agent);
      return h(
        "li",
        { role: "treeitem", "aria-expanded": "true", "aria-label": `Agent ${agent}`, class: "agent" },
        h("div", { class: "agent-name", "aria-hidden": "true" }, h("span", { text: `DMA ${agent}` }), h("span", { class: "muted", text: String(mine.length) })),
        h("ul", { role: "group" }, mine.map((element) => this.treeItem(element))),
      );
    });
    const count = this.shown.length === this.elements.length ? plural(this.elements.length, "element") : `${this.shown.length} of ${plural(this.elements.length, "element")}`;
    replace(
      this.tree,
      h("p", { class: "tree-count", role: "status", "aria-label": "Elements shown", text: count }),
      h("ul", { role: "tree", "aria-label": "Elements" }, groups),
    );
  }

  treeItem(element) {
    const selected = element.ref === this.selected;
    const item = h(
      "li",
      { role: "treeitem", tabindex: selected ? "0" : "-1", "aria-selected": String(selected), "aria-label": `${element.name} (${element.ref}) ${element.state}`, class: "element", dataset: { ref: element.ref } },
      h("span", { class: `dot state-${element.state.toLowerCase()}`, "aria-hidden": "true" }),
      h("span", { class: "element-name", text: element.name }),
      h("span", { class: "element-meta", text: `${element.ref} · ${element.protocol}` }),
      h("span", { class: `state state-${element.state.toLowerCase()}`, text: element.state }),
    );
    item.addEventListener("click", () => this.openElement(element.ref));
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.openElement(element.ref);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const items = [...this.tree.querySelectorAll("li.element")];
        const next = items[items.indexOf(item) + (event.key === "ArrowDown" ? 1 : -1)];
        if (next) next.focus();
      }
    });
    if (!this.tree.querySelector("li.element[tabindex='0']") && !this.selected) item.tabIndex = 0;
    return item;
  }

  openElement(ref) {
    this.selected = ref;
    this.setView(new ElementCard(this, ref), "elements");
    this.renderTree();
  }

  elementChanged() {
    this.reloadElements();
  }

  showView(name) {
    if (name === "elements") {
      if (this.selected) this.openElement(this.selected);
      else if (this.system) this.setView(this.overview(), "elements");
      return;
    }
    this.setView(new VIEWS[name](this), name);
  }

  setView(view, name) {
    if (this.view && this.view.close) this.view.close();
    this.view = view;
    for (const button of document.querySelectorAll(".views button")) {
      if (button.dataset.view === name) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    replace(this.main, view.root);
  }

  // What the main pane shows before an element is opened: the system at a glance.
  overview() {
    const system = this.system;
    const root = h(
      "section",
      { class: "view overview", "aria-label": "Overview" },
      h("h2", { text: "DataMiner System" }),
      h(
        "dl",
        { class: "facts" },
        [
          ["dmemu", system.version],
          ["Clock", `${system.clock}, ${timeText(system.now)} UTC`],
          ["Agents", system.agents.map((agent) => `DMA ${agent.id} (${plural(agent.elements, "element")})`).join(", ")],
          ["Licences", system.licences.join(", ") || "none"],
          ["Automation scripts", system.scripts.join(", ") || "none"],
          ["Simulators", system.simulators ? "served with this DMS" : "none"],
        ].map(([name, value]) => h("div", {}, h("dt", { text: name }), h("dd", { text: value }))),
      ),
      h("p", { class: "muted", text: "Pick an element in the tree to open its card." }),
    );
    return { root, onEvent() {} };
  }

  onEvent(type, data) {
    if (type === "element" || type === "ready") this.reloadElements();
    this.refreshSystemSoon();
    if (this.alarmBar) this.alarmBar.onEvent(type, data);
    if (this.view && this.view.onEvent) this.view.onEvent(type, data);
  }
}

function askToken(reason) {
  const dialog = document.getElementById("login");
  const error = document.getElementById("login-error");
  error.textContent = reason || "";
  dialog.addEventListener(
    "close",
    () => {
      keepToken(document.getElementById("token").value.trim());
      location.reload();
    },
    { once: true },
  );
  dialog.showModal();
}

// A server without a token answers without one: ask for a token only when the API refuses (401).
takeToken();
new Console().start();
